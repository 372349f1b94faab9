// TorchScriptModel (see torchscript_model.h).
#include "common/torchscript_model.h"

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include <torch/script.h>
#include <torch/torch.h>

namespace splitinfer {
namespace {

// First line of a LibTorch message: the rest is a C++ or TorchScript backtrace.
std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

int64_t TensorBytes(const at::Tensor& t) { return t.numel() * t.element_size(); }

// torch.jit.save writes a zip archive ("PK\3\4"); torch's mobile flatbuffer format carries
// "PTMF" at offset 4. Anything else is refused before LibTorch parses it: a clear error, and
// LibTorch's own failure path for non-archives is not exercised (with torch 2.11 it left the
// process crashing at exit).
bool LooksLikeTorchScriptFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char head[8] = {};
  in.read(head, sizeof head);
  if (in.gcount() < 8) return false;
  return std::string(head, 4) == std::string("PK\3\4", 4) || std::string(head + 4, 4) == "PTMF";
}

}  // namespace

struct TorchScriptModel::Children {
  // Kept so that the children's shared state stays alive. Optional, so that no
  // default-constructed torch::jit::Module ever exists: with torch 2.11 destroying one left the
  // process crashing at exit.
  std::optional<torch::jit::Module> root;
  std::vector<torch::jit::Module> units;
};

TorchScriptModel::TorchScriptModel(std::string name, uint32_t version, std::string path)
    : SplitModel(std::move(name), version),
      path_(std::move(path)),
      children_(std::make_unique<Children>()) {}

TorchScriptModel::~TorchScriptModel() = default;

at::Tensor TorchScriptModel::RunRange(const at::Tensor& x, size_t from, size_t to) const {
  TORCH_CHECK(from <= to && to <= children_->units.size(), "bad range (", from, ", ", to, "] of ",
              name_);
  c10::InferenceMode guard;
  at::Tensor y = x;
  for (size_t i = from; i < to; ++i) {
    torch::jit::Module unit = children_->units[i];  // a handle copy: forward() is non-const
    c10::IValue out = unit.forward({y});
    TORCH_CHECK(out.isTensor(), "unit ", i + 1, " (", units_[i].name, ") of ", path_, " returned ",
                out.tagKind(), ", not a single tensor");
    y = out.toTensor();
  }
  return y;
}

void TorchScriptModel::To(const at::Device& device) {
  if (children_->root) children_->root->to(device);
  device_ = device;
}

Result<std::shared_ptr<SplitModel>> LoadTorchScriptModel(const std::string& path,
                                                         const std::string& name, uint32_t version,
                                                         std::vector<int64_t> input_shape) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return NotFoundError("torchscript file " + path + " does not exist or is not a file");
  }
  if (!LooksLikeTorchScriptFile(path)) {
    return InvalidArgumentError(path +
                                " is not a TorchScript module: not a zip archive "
                                "(torch.jit.save) nor a flatbuffer module");
  }
  std::shared_ptr<TorchScriptModel> model(new TorchScriptModel(name, version, path));
  try {
    model->children_->root.emplace(torch::jit::load(path, torch::kCPU));
  } catch (const std::exception& e) {
    return InvalidArgumentError(path + " is not a TorchScript module: " + FirstLine(e.what()));
  }
  torch::jit::Module& root = *model->children_->root;
  root.eval();

  if (input_shape.empty()) {
    if (!root.hasattr("splitinfer_input_shape")) {
      return InvalidArgumentError("no input shape given and " + path +
                                  " has no splitinfer_input_shape attribute");
    }
    c10::IValue attr = root.attr("splitinfer_input_shape");
    if (!attr.isIntList()) {
      return InvalidArgumentError("splitinfer_input_shape of " + path + " is not a list of ints");
    }
    input_shape = attr.toIntVector();
  }
  for (int64_t d : input_shape) {
    if (d < 1) return InvalidArgumentError("input shape of " + path + " has a dimension < 1");
  }

  for (const torch::jit::NameModule& child : root.named_children()) {
    if (!child.value.find_method("forward")) {
      return InvalidArgumentError("child '" + child.name + "' of " + path + " has no forward()");
    }
    UnitInfo info;
    info.name = child.name;
    for (const at::Tensor& p : child.value.parameters()) info.param_bytes += TensorBytes(p);
    for (const at::Tensor& b : child.value.buffers()) info.param_bytes += TensorBytes(b);
    model->units_.push_back(std::move(info));
    model->children_->units.push_back(child.value);
  }
  if (model->units_.empty()) {
    return InvalidArgumentError(path + " has no child modules to split at");
  }

  try {
    model->ProbeShapes(input_shape);
  } catch (const c10::Error& e) {
    return InvalidArgumentError("running " + path + " on one sample of shape " +
                                BatchShapeString(input_shape) + ": " +
                                FirstLine(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return InvalidArgumentError("running " + path + " on one sample of shape " +
                                BatchShapeString(input_shape) + ": " + FirstLine(e.what()));
  }
  return std::shared_ptr<SplitModel>(std::move(model));
}

}  // namespace splitinfer
