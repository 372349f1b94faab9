// TorchScriptModel: a SplitModel over a TorchScript module (torch.jit.save) whose top-level
// children, in order, are the split units. Unit i's forward() gets unit i-1's output and must
// return a single tensor. scripts/export_torchscript.py writes such files from torchvision
// models, as a torch.nn.Sequential with named children.
//
// Input shape: taken from the caller when given; otherwise from the module's
// `splitinfer_input_shape` attribute (a list of ints without the batch dimension), which
// export_torchscript.py sets. FLOPs are unknown (-1) for these models.
//
// Ownership and threads: the model owns its torch::jit::Module (held behind a pointer so that
// this header does not pull in the TorchScript headers). As for every SplitModel, RunRange may
// run on several threads at once: TorchScript's interpreter is reentrant and eval-mode children
// keep no per-call state. To() must not race with RunRange.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/split_model.h"
#include "common/status.h"

namespace splitinfer {

class TorchScriptModel final : public SplitModel {
 public:
  ~TorchScriptModel() override;

  at::Tensor RunRange(const at::Tensor& x, size_t from, size_t to) const override;
  void To(const at::Device& device) override;

  // Path of the file it was loaded from.
  const std::string& path() const { return path_; }

 private:
  struct Children;  // the top-level child modules, defined in the .cc
  friend Result<std::shared_ptr<SplitModel>> LoadTorchScriptModel(const std::string&,
                                                                  const std::string&, uint32_t,
                                                                  std::vector<int64_t>);
  TorchScriptModel(std::string name, uint32_t version, std::string path);

  std::string path_;
  std::unique_ptr<Children> children_;
};

// Loads `path` on the CPU in eval mode and probes the unit shapes with one zero sample.
// `input_shape` has no batch dimension; empty means "read the splitinfer_input_shape
// attribute". Errors, all with the path in the message and none thrown: kNotFound when the file
// does not exist; kInvalidArgument when it is not a TorchScript module, has no children, a child
// has no forward() or does not return a single tensor, or no input shape is known.
Result<std::shared_ptr<SplitModel>> LoadTorchScriptModel(const std::string& path,
                                                         const std::string& name, uint32_t version,
                                                         std::vector<int64_t> input_shape);

}  // namespace splitinfer
