#include "device/image_inputs.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <sstream>
#include <system_error>

#include <stb/stb_image.h>

namespace splitinfer {
namespace {

namespace fs = std::filesystem;

constexpr float kImageNetMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kImageNetStd[3] = {0.229f, 0.224f, 0.225f};

bool IsImageFile(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

at::Tensor Normalize(const at::Tensor& rgb01) {  // [1, 3, H, W] in [0, 1]
  const at::Tensor mean = at::tensor(at::ArrayRef<float>(kImageNetMean, 3)).view({1, 3, 1, 1});
  const at::Tensor stdev = at::tensor(at::ArrayRef<float>(kImageNetStd, 3)).view({1, 3, 1, 1});
  return ((rgb01 - mean) / stdev).contiguous();
}

// A smooth synthetic picture: per channel, three plane waves of seeded frequency (1 to 4
// periods across the picture), direction and phase, plus a seeded linear gradient, mapped to
// [0, 1]. Returns [1, 3, size, size].
at::Tensor SmoothPicture(int64_t size, at::Generator& gen) {
  const double two_pi = 2.0 * M_PI;
  const at::Tensor r = at::rand({3, 3, 4}, gen).to(at::kDouble);  // channel, wave, parameters
  const at::Tensor g = at::rand({3, 2}, gen).to(at::kDouble);
  const at::Tensor coord = at::arange(size, at::kDouble) / static_cast<double>(size);
  const at::Tensor yy = coord.view({size, 1}).expand({size, size});
  const at::Tensor xx = coord.view({1, size}).expand({size, size});
  std::vector<at::Tensor> channels;
  for (int64_t c = 0; c < 3; ++c) {
    at::Tensor img = (g[c][0].item<double>() - 0.5) * xx + (g[c][1].item<double>() - 0.5) * yy;
    for (int64_t w = 0; w < 3; ++w) {
      const double freq = 1.0 + 3.0 * r[c][w][0].item<double>();
      const double angle = two_pi * r[c][w][1].item<double>();
      const double phase = two_pi * r[c][w][2].item<double>();
      const double amp = 0.5 + 0.5 * r[c][w][3].item<double>();
      img = img +
            amp * at::sin(two_pi * freq * (std::cos(angle) * xx + std::sin(angle) * yy) + phase);
    }
    const double lo = img.min().item<double>(), hi = img.max().item<double>();
    channels.push_back((img - lo) / std::max(hi - lo, 1e-12));
  }
  return at::stack(channels).to(at::kFloat).unsqueeze(0);
}

}  // namespace

const std::vector<std::string>& KnownImagePaths() {
  static const std::vector<std::string> kPaths = {
      "/usr/lib/python3/dist-packages/skimage/data/astronaut.png",
      "/usr/lib/python3/dist-packages/skimage/data/chelsea.png",
      "/usr/lib/python3/dist-packages/skimage/data/coffee.png",
      "/usr/lib/python3/dist-packages/skimage/data/rocket.jpg",
      "/usr/lib/python3/dist-packages/skimage/data/motorcycle_left.png",
      "/usr/lib/python3/dist-packages/skimage/data/camera.png",
      "/usr/lib/python3/dist-packages/sklearn/datasets/images/china.jpg",
      "/usr/lib/python3/dist-packages/sklearn/datasets/images/flower.jpg",
      "/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg",
  };
  return kPaths;
}

std::vector<std::string> FindPackagedImages() {
  std::vector<std::string> found;
  std::error_code ec;
  for (const std::string& p : KnownImagePaths())
    if (fs::is_regular_file(p, ec)) found.push_back(p);
  return found;
}

Result<std::vector<std::string>> ResolveImagePaths(const std::string& spec) {
  std::vector<std::string> out;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    std::error_code ec;
    const fs::path p(item);
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> files;
      for (const fs::directory_entry& e : fs::directory_iterator(p, ec)) {
        if (e.is_regular_file(ec) && IsImageFile(e.path())) files.push_back(e.path().string());
      }
      if (ec)
        return InvalidArgumentError("cannot list image directory " + item + ": " + ec.message());
      if (files.empty())
        return InvalidArgumentError("image directory " + item + " has no .png, .jpg or .jpeg file");
      std::sort(files.begin(), files.end());
      out.insert(out.end(), files.begin(), files.end());
    } else if (fs::exists(p, ec)) {
      out.push_back(item);
    } else {
      return InvalidArgumentError("image path " + item + " does not exist");
    }
  }
  if (out.empty()) return InvalidArgumentError("--images names no file");
  return out;
}

Result<at::Tensor> LoadImageRgb(const std::string& path) {
  int w = 0, h = 0, channels = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(stbi_load(path.c_str(), &w, &h, &channels, 3),
                                                   stbi_image_free);
  if (pixels == nullptr) {
    const char* why = stbi_failure_reason();
    return InvalidArgumentError("cannot decode image " + path + ": " +
                                (why != nullptr ? why : "unknown reason") +
                                " (PNG or JPEG expected)");
  }
  if (w < 1 || h < 1) return InvalidArgumentError("image " + path + " is empty");
  const at::Tensor hwc =
      at::from_blob(pixels.get(), {h, w, 3}, at::TensorOptions().dtype(at::kByte));
  return (hwc.permute({2, 0, 1}).to(at::kFloat) / 255.0f).contiguous();  // copies the pixels
}

CropSpec CropForVariant(int v) {
  static constexpr double kScales[4] = {1.0, 0.8, 0.64, 0.5};
  CropSpec c;
  c.flip = v % 2 == 1;
  c.scale = kScales[(v / 2) % 4];
  c.position = (v / 8) % 5;
  return c;
}

at::Tensor CropResizeNormalize(const at::Tensor& rgb, int64_t size, const CropSpec& crop) {
  const int64_t h = rgb.size(1), w = rgb.size(2);
  const int64_t side =
      std::max<int64_t>(1, std::llround(crop.scale * static_cast<double>(std::min(h, w))));
  int64_t y0 = (h - side) / 2, x0 = (w - side) / 2;
  switch (crop.position) {
    case 1:
      y0 = 0, x0 = 0;
      break;
    case 2:
      y0 = 0, x0 = w - side;
      break;
    case 3:
      y0 = h - side, x0 = 0;
      break;
    case 4:
      y0 = h - side, x0 = w - side;
      break;
    default:
      break;
  }
  at::Tensor c = rgb.slice(1, y0, y0 + side).slice(2, x0, x0 + side);
  if (crop.flip) c = c.flip({2});
  at::Tensor resized = at::_upsample_bilinear2d_aa(c.unsqueeze(0).contiguous(), {size, size},
                                                   /*align_corners=*/false);
  return Normalize(resized.clamp(0.0, 1.0));
}

Result<InputSet> MakeImageInputs(const std::vector<std::string>& paths, int n, int64_t size) {
  InputSet set;
  std::vector<at::Tensor> pictures;
  for (const std::string& p : paths) {
    Result<at::Tensor> img = LoadImageRgb(p);
    if (!img.ok()) return img.status();
    pictures.push_back(std::move(*img));
  }
  if (pictures.empty()) return InvalidArgumentError("no image to make inputs from");
  const int m = static_cast<int>(pictures.size());
  for (int i = 0; i < n; ++i) {
    set.inputs.push_back(CropResizeNormalize(pictures[i % m], size, CropForVariant(i / m)));
  }
  set.files = paths;
  std::ostringstream os;
  os << m << " picture" << (m == 1 ? "" : "s") << " (";
  for (int i = 0; i < m; ++i) os << (i ? ", " : "") << fs::path(paths[i]).filename().string();
  os << "), " << n << " crops at " << size << "x" << size
     << " (flips, 4 scales, 5 positions; antialiased bilinear), ImageNet-normalized";
  set.source = os.str();
  return set;
}

InputSet MakeSyntheticInputs(const std::vector<int64_t>& shape, int n, uint64_t seed,
                             const std::string& why) {
  InputSet set;
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const bool picture = shape.size() == 3 && shape[0] == 3 && shape[1] == shape[2];
  std::vector<int64_t> batch{1};
  batch.insert(batch.end(), shape.begin(), shape.end());
  for (int i = 0; i < n; ++i) {
    if (picture && i % 2 == 1) {
      set.inputs.push_back(Normalize(SmoothPicture(shape[1], gen)));
    } else {
      set.inputs.push_back(at::randn(batch, gen));
    }
  }
  std::ostringstream os;
  os << "synthetic stand-in (" << why << "): " << n << " inputs, "
     << (picture ? "even ones seeded N(0,1), odd ones smooth synthetic pictures "
                   "(ImageNet-normalized)"
                 : "seeded N(0,1)")
     << ", seed " << seed;
  set.source = os.str();
  return set;
}

}  // namespace splitinfer
