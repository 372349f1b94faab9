// SplitModel: a neural network seen as a chain of split units u = 1..N (SPEC section 1).
// Boundary k means "units 1..k ran"; RunRange(x, k, N) finishes from boundary k.
//
// Two kinds exist: models of the built-in zoo (model_zoo.h), built from a seed so that the device
// and the edge construct bit-identical weights without shipping weight files, and TorchScript
// modules whose top-level children form the chain (torchscript_model.h).
//
// Thread safety: after construction a SplitModel is immutable and in eval mode. RunRange may be
// called from several threads at once (each call holds c10::InferenceMode; forward() of eval-mode
// modules mutates no module state). To() must not race with RunRange.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "common/layer_shape.h"
#include "common/status.h"

namespace splitinfer {

// What the profiler and the cost model need to know about one unit.
struct UnitInfo {
  std::string name;                   // e.g. "stem", "layer1.0", "classifier"
  std::vector<int64_t> output_shape;  // without the batch dimension
  int64_t output_bytes = 0;           // float32 bytes of one sample's output
  int64_t param_bytes = 0;            // bytes of the unit's parameters and buffers
  int64_t flops = -1;                 // multiply-adds x 2 for one sample; -1 when unknown
  std::vector<LayerShape> layers;     // its convolution and linear layers; empty when unknown
};

class SplitModel {
 public:
  virtual ~SplitModel() = default;

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  size_t num_units() const { return units_.size(); }
  const UnitInfo& unit(size_t i) const { return units_.at(i); }  // i in [0, N)
  const std::vector<UnitInfo>& units() const { return units_; }
  // Shape of one sample (no batch dimension) at boundary k in [0, N]: the input at k = 0.
  const std::vector<int64_t>& boundary_shape(size_t k) const { return boundary_shapes_.at(k); }
  const std::vector<int64_t>& input_shape() const { return boundary_shapes_.front(); }
  int64_t input_bytes() const;
  const at::Device& device() const { return device_; }

  // Runs units from+1 .. to on x (boundaries, 0 <= from <= to <= N). x must be on device().
  // Throws what LibTorch throws; callers at a boundary use RunRangeChecked.
  virtual at::Tensor RunRange(const at::Tensor& x, size_t from, size_t to) const = 0;

  // Validates boundary and x's shape (batch dimension first, any batch size >= 1) against the
  // model, moves x to device(), runs, and turns a LibTorch exception into a Status.
  // Errors: kInvalidArgument for a bad range, an undefined or non-float32 x, or a wrong shape;
  // kResourceExhausted when LibTorch runs out of memory; kInternal for any other exception
  // (the input was valid, so that is a bug or a broken module).
  Result<at::Tensor> RunRangeChecked(const at::Tensor& x, size_t from, size_t to) const;
  // The input checks of RunRangeChecked alone (kInvalidArgument as described there), for
  // subclasses' own checked entry points (BranchyModel::RunWithExits).
  Status CheckRangeInput(const at::Tensor& x, size_t from, size_t to) const;
  // kInvalidArgument unless boundary <= N and sizes == [n >= 1, boundary_shape(boundary)...],
  // e.g. "boundary 3 of resnet18 expects [N,64,8,8], got [1,3,32,32]".
  Status CheckBoundaryInput(size_t boundary, at::IntArrayRef sizes) const;

  // Moves the weights to `device` (cpu or cuda). Not thread-safe against RunRange.
  virtual void To(const at::Device& device) = 0;

 protected:
  SplitModel(std::string name, uint32_t version) : name_(std::move(name)), version_(version) {}
  // Runs a zero batch of one sample through every unit on device() (the CPU while a model is
  // being built) and fills boundary_shapes_ and the shape and byte fields of units_ (units_
  // must hold N entries with names set). Throws what RunRange throws.
  void ProbeShapes(const std::vector<int64_t>& input_shape);

  std::string name_;
  uint32_t version_;
  std::vector<UnitInfo> units_;
  std::vector<std::vector<int64_t>> boundary_shapes_;
  at::Device device_{at::kCPU};
};

// Picks the compute device: CUDA when torch::cuda::is_available(), else CPU.
at::Device PreferredDevice();
// "cpu", "cuda:0".
std::string DeviceName(const at::Device& d);
// Waits until queued work on `d` has finished (a no-op on the CPU). Timers call it before
// reading the clock, since CUDA kernels run asynchronously.
void SynchronizeDevice(const at::Device& d);
// "[64,8,8]" for shape {64, 8, 8}.
std::string ShapeString(at::IntArrayRef sizes);
// "[N,64,8,8]" for shape {64, 8, 8} (the batch dimension written as N).
std::string BatchShapeString(const std::vector<int64_t>& sample_shape);

}  // namespace splitinfer
