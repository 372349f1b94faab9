#include "common/decision/zoo_profiles.h"

#include <cstdint>

namespace splitinfer::decision {
namespace {

// Builds units from layer descriptions: multiply-adds and parameters accumulate into the current
// unit; Close() records the unit with its output tensor (c x h x w float32).
class Builder {
 public:
  explicit Builder(const AnalyticProfileOptions& o) : o_(o) {}
  // Convolution (+ BatchNorm when bn, + bias when bias) producing cout x hout x hout.
  void Conv(int64_t cin, int64_t cout, int64_t k, int64_t hout, int64_t groups = 1, bool bn = true,
            bool bias = false) {
    macs_ += hout * hout * cout * (cin / groups) * k * k;
    params_ += cout * (cin / groups) * k * k + (bias ? cout : 0) + (bn ? 4 * cout : 0);
  }
  void Linear(int64_t in, int64_t out) {
    macs_ += in * out;
    params_ += in * out + out;
  }
  void Close(const std::string& name, int64_t c, int64_t h, int64_t w) {
    UnitProfile u;
    u.name = name;
    u.flops = 2 * macs_;
    u.param_bytes = 4 * params_;
    u.output_bytes = 4 * c * h * w;
    u.time_ms = static_cast<double>(u.flops) / o_.flops_per_s * 1e3 + o_.unit_overhead_ms;
    units_.push_back(u);
    macs_ = params_ = 0;
  }
  ModelProfile Finish(const std::string& model, int64_t input_bytes) {
    ModelProfile p;
    p.model = model;
    p.input_bytes = input_bytes;
    p.units = std::move(units_);
    return p;
  }

 private:
  AnalyticProfileOptions o_;
  int64_t macs_ = 0, params_ = 0;
  std::vector<UnitProfile> units_;
};

constexpr int64_t kImageBytes = 3 * 224 * 224 * 4;

ModelProfile AlexNet(const AnalyticProfileOptions& o) {
  Builder b(o);
  b.Conv(3, 64, 11, 55, 1, false, true), b.Close("conv1", 64, 27, 27);
  b.Conv(64, 192, 5, 27, 1, false, true), b.Close("conv2", 192, 13, 13);
  b.Conv(192, 384, 3, 13, 1, false, true), b.Close("conv3", 384, 13, 13);
  b.Conv(384, 256, 3, 13, 1, false, true), b.Close("conv4", 256, 13, 13);
  b.Conv(256, 256, 3, 13, 1, false, true), b.Close("conv5", 256, 6, 6);
  b.Linear(9216, 4096), b.Close("fc6", 4096, 1, 1);
  b.Linear(4096, 4096), b.Close("fc7", 4096, 1, 1);
  b.Linear(4096, 1000), b.Close("fc8", 1000, 1, 1);
  return b.Finish("alexnet", kImageBytes);
}

ModelProfile Vgg16(const AnalyticProfileOptions& o) {
  Builder b(o);
  const int64_t stages[5][3] = {
      {64, 2, 224}, {128, 2, 112}, {256, 3, 56}, {512, 3, 28}, {512, 3, 14}};
  int64_t cin = 3;
  int idx = 1;
  for (const auto& s : stages) {
    for (int64_t i = 0; i < s[1]; ++i, ++idx) {
      b.Conv(cin, s[0], 3, s[2], 1, false, true);
      cin = s[0];
      const bool last = i + 1 == s[1];
      b.Close("conv" + std::to_string(idx), s[0], last ? s[2] / 2 : s[2], last ? s[2] / 2 : s[2]);
    }
  }
  b.Linear(25088, 4096), b.Close("fc14", 4096, 1, 1);
  b.Linear(4096, 4096), b.Close("fc15", 4096, 1, 1);
  b.Linear(4096, 1000), b.Close("fc16", 1000, 1, 1);
  return b.Finish("vgg16", kImageBytes);
}

ModelProfile ResNet18(const AnalyticProfileOptions& o) {
  Builder b(o);
  b.Conv(3, 64, 7, 112), b.Close("stem", 64, 56, 56);
  int64_t cin = 64, h = 56;
  const int64_t widths[4] = {64, 128, 256, 512};
  for (int stage = 0; stage < 4; ++stage) {
    for (int blk = 0; blk < 2; ++blk) {
      const bool down = stage > 0 && blk == 0;
      const int64_t hout = down ? h / 2 : h, c = widths[stage];
      b.Conv(cin, c, 3, hout);
      b.Conv(c, c, 3, hout);
      if (down) b.Conv(cin, c, 1, hout);
      cin = c, h = hout;
      b.Close("layer" + std::to_string(stage + 1) + "." + std::to_string(blk), c, h, h);
    }
  }
  b.Linear(512, 1000), b.Close("head", 1000, 1, 1);
  return b.Finish("resnet18", kImageBytes);
}

ModelProfile MobileNetV2(const AnalyticProfileOptions& o) {
  Builder b(o);
  b.Conv(3, 32, 3, 112), b.Close("stem", 32, 112, 112);
  const int64_t cfg[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                             {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  int64_t cin = 32, h = 112;
  int idx = 1;
  for (const auto& c : cfg) {
    for (int64_t i = 0; i < c[2]; ++i, ++idx) {
      const int64_t stride = i == 0 ? c[3] : 1, hid = cin * c[0], hout = h / stride;
      if (c[0] != 1) b.Conv(cin, hid, 1, h);
      b.Conv(hid, hid, 3, hout, hid);
      b.Conv(hid, c[1], 1, hout);
      cin = c[1], h = hout;
      b.Close("block" + std::to_string(idx), cin, h, h);
    }
  }
  b.Conv(320, 1280, 1, 7), b.Close("conv_last", 1280, 7, 7);
  b.Linear(1280, 1000), b.Close("head", 1000, 1, 1);
  return b.Finish("mobilenetv2", kImageBytes);
}

ModelProfile Mlp(const AnalyticProfileOptions& o) {
  Builder b(o);
  for (int l = 1; l <= o.mlp_layers; ++l) {
    b.Linear(o.mlp_width, o.mlp_width);
    b.Close("fc" + std::to_string(l), o.mlp_width, 1, 1);
  }
  return b.Finish("mlp", 4 * static_cast<int64_t>(o.mlp_width));
}

}  // namespace

const std::vector<std::string>& AnalyticProfileNames() {
  static const std::vector<std::string> names = {"alexnet", "vgg16", "resnet18", "mobilenetv2",
                                                 "mlp"};
  return names;
}

Result<ModelProfile> AnalyticProfile(const std::string& model, const AnalyticProfileOptions& o) {
  if (model == "alexnet") return AlexNet(o);
  if (model == "vgg16") return Vgg16(o);
  if (model == "resnet18") return ResNet18(o);
  if (model == "mobilenetv2") return MobileNetV2(o);
  if (model == "mlp") {
    if (o.mlp_width < 1 || o.mlp_layers < 1)
      return InvalidArgumentError("mlp needs mlp_width >= 1 and mlp_layers >= 1");
    return Mlp(o);
  }
  return NotFoundError("no analytic profile for model '" + model + "'");
}

}  // namespace splitinfer::decision
