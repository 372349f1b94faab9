// SplitModel: the parts shared by zoo and TorchScript models (shape probing, input checks,
// exception-to-Status conversion). See split_model.h.
#include "common/split_model.h"

#include <sstream>
#include <utility>

#include <torch/cuda.h>
#include <torch/torch.h>

namespace splitinfer {
std::string ShapeString(at::IntArrayRef sizes) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < sizes.size(); ++i) os << (i ? "," : "") << sizes[i];
  os << "]";
  return os.str();
}

std::string BatchShapeString(const std::vector<int64_t>& sample_shape) {
  std::ostringstream os;
  os << "[N";
  for (int64_t d : sample_shape) os << "," << d;
  os << "]";
  return os.str();
}

int64_t SplitModel::input_bytes() const {
  int64_t n = 1;
  for (int64_t d : input_shape()) n *= d;
  return n * static_cast<int64_t>(sizeof(float));
}

void SplitModel::ProbeShapes(const std::vector<int64_t>& input_shape) {
  c10::InferenceMode guard;
  std::vector<int64_t> batch_shape{1};
  batch_shape.insert(batch_shape.end(), input_shape.begin(), input_shape.end());
  at::Tensor x = torch::zeros(batch_shape, torch::dtype(torch::kFloat32).device(device_));

  boundary_shapes_.assign(1, input_shape);
  for (size_t i = 0; i < units_.size(); ++i) {
    x = RunRange(x, i, i + 1);
    std::vector<int64_t> shape(x.sizes().begin() + 1, x.sizes().end());
    units_[i].output_shape = shape;
    units_[i].output_bytes = (x.numel() / x.size(0)) * static_cast<int64_t>(sizeof(float));
    boundary_shapes_.push_back(std::move(shape));
  }
}

Status SplitModel::CheckBoundaryInput(size_t boundary, at::IntArrayRef sizes) const {
  if (boundary > num_units()) {
    return InvalidArgumentError("boundary " + std::to_string(boundary) + " of " + name_ +
                                " is out of range [0, " + std::to_string(num_units()) + "]");
  }
  const std::vector<int64_t>& want = boundary_shape(boundary);
  bool match = sizes.size() == want.size() + 1 && sizes[0] >= 1;
  for (size_t i = 0; match && i < want.size(); ++i) match = sizes[i + 1] == want[i];
  if (!match) {
    return InvalidArgumentError("boundary " + std::to_string(boundary) + " of " + name_ +
                                " expects " + BatchShapeString(want) + ", got " +
                                ShapeString(sizes));
  }
  return Status::Ok();
}

Status SplitModel::CheckRangeInput(const at::Tensor& x, size_t from, size_t to) const {
  if (!x.defined()) return InvalidArgumentError("input tensor of " + name_ + " is undefined");
  if (from > to || to > num_units()) {
    return InvalidArgumentError("range (" + std::to_string(from) + ", " + std::to_string(to) +
                                "] of " + name_ + " is not within [0, " +
                                std::to_string(num_units()) + "]");
  }
  if (x.scalar_type() != at::kFloat) {
    return InvalidArgumentError(std::string("input of ") + name_ + " must be float32, got " +
                                c10::toString(x.scalar_type()));
  }
  return CheckBoundaryInput(from, x.sizes());
}

Result<at::Tensor> SplitModel::RunRangeChecked(const at::Tensor& x, size_t from, size_t to) const {
  SPLITINFER_RETURN_IF_ERROR(CheckRangeInput(x, from, to));
  try {
    c10::InferenceMode guard;
    return RunRange(x.to(device_), from, to);
  } catch (const c10::OutOfMemoryError& e) {
    return ResourceExhaustedError("running " + name_ + " units " + std::to_string(from + 1) + ".." +
                                  std::to_string(to) + ": " + e.what_without_backtrace());
  } catch (const c10::Error& e) {
    // The input was validated above, so LibTorch failing here is our bug, not the caller's.
    return InternalError("running " + name_ + " units " + std::to_string(from + 1) + ".." +
                         std::to_string(to) + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return InternalError("running " + name_ + " units " + std::to_string(from + 1) + ".." +
                         std::to_string(to) + ": " + e.what());
  }
}

at::Device PreferredDevice() {
  return torch::cuda::is_available() ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
}

std::string DeviceName(const at::Device& d) { return d.str(); }

void SynchronizeDevice(const at::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize(d.index());
}

}  // namespace splitinfer
