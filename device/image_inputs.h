// Inputs for measuring a model on real pictures (codec_fidelity, issue 6): PNG and JPEG files
// decoded with stb_image, cut into deterministic crops at the model's input size and normalized
// with ImageNet's statistics, or, where no picture is at hand, a documented synthetic stand-in.
//
// Why real pictures: the tensor at a split boundary of a CNN fed with natural images is sparse
// and smooth in ways N(0, 1) noise is not, and both the zstd ratio and the quantization error
// depend on that. No image data set can be downloaded here, so the pictures are the few that
// Debian packages ship (KnownImagePaths).
//
// Inputs from M pictures: input i is picture i mod M under crop variant v = i / M:
//   flip      v mod 2 = 1: mirrored left-right
//   scale     the square crop's side is {1, 0.8, 0.64, 0.5}[(v / 2) mod 4] x the short side
//   position  [(v / 8) mod 5]: centre, top-left, top-right, bottom-left, bottom-right
// The crop is resized to size x size with antialiased bilinear interpolation (torchvision's
// Resize(antialias=True)), then normalized per channel: (x - mean) / std. That is 40 variants
// per picture (fewer distinct ones for square pictures, whose full-side crops coincide), so the
// default 32 inputs from 9 pictures are each picture plain and mirrored at scales 1 and 0.8.
//
// The stand-in (no picture): for image models, even i are seeded N(0, 1) tensors and odd i are
// smooth synthetic pictures (per channel a sum of three seeded plane waves and a gradient, mapped
// to [0, 1]) normalized like a real picture; other models (the MLP) get N(0, 1) only.
//
// Thread safety: all functions are reentrant.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "common/status.h"

namespace splitinfer {

// Photographs that Debian packages ship, in the order they are used when no --images is given:
// scikit-image's (python3-skimage: astronaut, chelsea, coffee, rocket, motorcycle_left, camera),
// scikit-learn's (python3-sklearn: china, flower) and matplotlib's (python-matplotlib-data:
// grace_hopper). Absolute paths of a Debian 12 install.
const std::vector<std::string>& KnownImagePaths();
// Those of KnownImagePaths() that exist here.
std::vector<std::string> FindPackagedImages();

// Splits a comma-separated list of files and directories: a file is taken as given, a directory
// contributes its *.png, *.jpg and *.jpeg files (not recursive, sorted by name). Errors
// (kInvalidArgument): an empty list, a path that does not exist, a directory without pictures.
Result<std::vector<std::string>> ResolveImagePaths(const std::string& spec);

// Decodes a PNG or JPEG into a float32 [3, H, W] tensor in [0, 1]: gray is replicated to RGB,
// alpha dropped, 16-bit PNG reduced to 8 bits. kInvalidArgument names the file and stb's reason.
Result<at::Tensor> LoadImageRgb(const std::string& path);

struct CropSpec {
  bool flip = false;
  double scale = 1.0;  // side of the square crop / short side of the picture, in (0, 1]
  int position = 0;    // 0 centre, 1 top-left, 2 top-right, 3 bottom-left, 4 bottom-right
};
// The crop of variant v (see the header comment).
CropSpec CropForVariant(int v);
// Crops `rgb` ([3, H, W] in [0, 1]) as `crop` says, resizes it to size x size and normalizes it:
// a [1, 3, size, size] float32 tensor.
at::Tensor CropResizeNormalize(const at::Tensor& rgb, int64_t size, const CropSpec& crop);

struct InputSet {
  std::vector<at::Tensor> inputs;  // each [1, input shape...], float32, CPU, contiguous
  std::string source;              // one line saying where the inputs came from (JSON "images")
  std::vector<std::string> files;  // the pictures used (empty for the stand-in)
};

// n inputs of shape [1, 3, size, size] from the pictures at `paths` (see the header comment).
// Errors: kInvalidArgument when a file cannot be decoded.
Result<InputSet> MakeImageInputs(const std::vector<std::string>& paths, int n, int64_t size);

// n stand-in inputs for a model whose one-sample input shape is `shape`; `why` is appended to
// the source line ("no packaged picture found", "--images synthetic").
InputSet MakeSyntheticInputs(const std::vector<int64_t>& shape, int n, uint64_t seed,
                             const std::string& why);

}  // namespace splitinfer
