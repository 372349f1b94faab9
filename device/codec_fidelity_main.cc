// codec_fidelity: measures, per boundary and codec of a zoo model, the encoded size, coding
// speed and how far the model's output moves from the float32 path (issue 6 item 3). Its JSON is
// the codec profile of the decision core (data/codecs/<model>.json, decision::LoadCodecProfile).
//
//   codec_fidelity --model resnet18 [--input-size 224] [--width-mult 1] [--num-classes 1000]
//                  [--codecs fp16,int8,int8c,fp16+zstd,int8+zstd,int8c+zstd] [--boundaries all]
//                  [--inputs 32] [--images PATHS_OR_DIRS|synthetic] [--repeats 5] [--warmup 1]
//                  [--threads 1] [--json] [--out FILE]
//
// Inputs (device/image_inputs.h): the pictures named by --images, else those of
// KnownImagePaths() that Debian packages installed here, cut into deterministic crops; with none
// (or --images synthetic) a seeded synthetic stand-in, and the JSON "images" field says which.
// What is measured and how: device/codec_fidelity.h. Everything runs on the CPU (the device side
// encodes; decode times are the edge's on this CPU), LibTorch on --threads threads.
//
// The zoo models have seeded random weights (no trained weights can be downloaded here), so top-1
// agreement measures whether compression changes the model's decision, not its accuracy.
//
// Exit codes: 0 ok, 2 bad options (unknown model or codec, boundary out of range, an image path
// that does not exist or does not decode), 1 anything else.
#include <ATen/Parallel.h>
#include <unistd.h>

#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/host_info.h"
#include "common/model_zoo.h"
#include "common/split_model.h"
#include "common/zoo_cli.h"
#include "device/codec_fidelity.h"
#include "device/image_inputs.h"

namespace splitinfer {
namespace {

constexpr int kExitBadOptions = 2;
constexpr int kExitFailure = 1;

struct Options {
  std::string model;
  uint32_t version = 1;
  ZooOptions zoo;
  std::string codecs = kDefaultFidelityCodecs;
  std::string boundaries = "all";
  int inputs = 32;
  std::string images;
  uint64_t input_seed = 1;
  int repeats = 5;
  int warmup = 1;
  int threads = 1;
  bool json = false;
  std::string out;
};

int BadOptions(const Status& s) {
  std::cerr << "codec_fidelity: " << s.message() << "\n";
  return kExitBadOptions;
}

int Run(const Options& o) {
  Result<std::vector<CodecSpec>> codecs = ParseCodecList(o.codecs);
  if (!codecs.ok()) return BadOptions(codecs.status());

  Result<std::shared_ptr<SplitModel>> built = BuildZooModel(o.model, o.version, o.zoo);
  if (!built.ok()) {
    const StatusCode code = built.status().code();
    if (code == StatusCode::kInvalidArgument || code == StatusCode::kNotFound)
      return BadOptions(built.status());
    std::cerr << "codec_fidelity: " << built.status() << "\n";
    return kExitFailure;
  }
  const SplitModel& model = **built;
  Result<std::vector<size_t>> boundaries = ParseBoundaries(o.boundaries, model);
  if (!boundaries.ok()) return BadOptions(boundaries.status());

  // Inputs: named pictures, packaged pictures, or the stand-in.
  const std::vector<int64_t>& shape = model.input_shape();
  const bool image_model = shape.size() == 3 && shape[0] == 3 && shape[1] == shape[2];
  InputSet inputs;
  if (o.images == "synthetic") {
    inputs = MakeSyntheticInputs(shape, o.inputs, o.input_seed, "--images synthetic");
  } else if (!o.images.empty()) {
    if (!image_model) {
      return BadOptions(
          InvalidArgumentError("--images needs a model with an image input "
                               "[3,S,S]; " +
                               model.name() + " takes " + ShapeString(shape)));
    }
    Result<std::vector<std::string>> paths = ResolveImagePaths(o.images);
    if (!paths.ok()) return BadOptions(paths.status());
    Result<InputSet> made = MakeImageInputs(*paths, o.inputs, shape[1]);
    if (!made.ok()) return BadOptions(made.status());
    inputs = std::move(*made);
  } else if (!image_model) {
    inputs = MakeSyntheticInputs(shape, o.inputs, o.input_seed, "not an image model");
  } else {
    const std::vector<std::string> found = FindPackagedImages();
    if (found.empty()) {
      inputs = MakeSyntheticInputs(shape, o.inputs, o.input_seed,
                                   "no packaged picture found: python3-skimage, python3-sklearn "
                                   "and python-matplotlib-data are not installed");
    } else {
      Result<InputSet> made = MakeImageInputs(found, o.inputs, shape[1]);
      if (!made.ok()) {
        std::cerr << "codec_fidelity: " << made.status() << "\n";
        return kExitFailure;
      }
      inputs = std::move(*made);
    }
  }

  FidelityOptions fo;
  fo.codecs = *codecs;
  fo.boundaries = *boundaries;
  fo.repeats = o.repeats;
  fo.warmup = o.warmup;
  Result<FidelityReport> report = MeasureFidelity(model, inputs.inputs, fo);
  if (!report.ok()) {
    std::cerr << "codec_fidelity: " << report.status() << "\n";
    return report.status().code() == StatusCode::kInvalidArgument ? kExitBadOptions : kExitFailure;
  }

  FidelityContext ctx;
  ctx.input_size = image_model ? o.zoo.input_size : 0;
  ctx.images = inputs.source;
  ctx.image_files = inputs.files;
  ctx.threads = o.threads;
  ctx.repeats = o.repeats;
  ctx.warmup = o.warmup;
  ctx.host = HostName();
  ctx.cpu = CpuModel();
  ctx.cores = static_cast<int>(std::thread::hardware_concurrency());
  ctx.date = NowUtcIso8601();
  const std::string text = o.json ? FidelityJson(model, *report, ctx).dump(2) + "\n"
                                  : FidelityTable(model, *report, ctx);
  if (o.out.empty()) {
    std::cout << text;
    return std::cout.good() ? 0 : kExitFailure;
  }
  std::ofstream out(o.out);
  out << text;
  out.close();
  if (!out) {
    std::cerr << "codec_fidelity: cannot write " << o.out << "\n";
    return kExitFailure;
  }
  return 0;
}

}  // namespace
}  // namespace splitinfer

int main(int argc, char** argv) {
  splitinfer::Options o;
  CLI::App app{
      "Measures each codec at each split boundary: encoded bytes, ratio, encode/decode speed, "
      "top-1 agreement and output error against the float32 path."};
  app.add_option("--model", o.model, "zoo model (alexnet, vgg16, resnet18, mobilenetv2, mlp)")
      ->required();
  app.add_option("--version", o.version, "model version (seeds the zoo weights)")->default_val(1);
  splitinfer::AddZooOptions(app, &o.zoo);
  app.add_option("--codecs", o.codecs,
                 "comma-separated codecs (fp32 | fp16 | int8 | int8c, each optionally +zstd or "
                 "+zstd:LEVEL); fp32 is the reference and is measured only if named")
      ->default_val(o.codecs);
  app.add_option("--boundaries", o.boundaries,
                 "'all' (k = 0..N-1) or a list of k and ranges A-B, e.g. 0,3-5")
      ->default_val("all");
  app.add_option("--inputs", o.inputs, "number of inputs")
      ->default_val(32)
      ->check(CLI::Range(1, 100000));
  app.add_option("--images", o.images,
                 "comma-separated PNG/JPEG files and directories, or 'synthetic' for the seeded "
                 "stand-in (default: the pictures Debian packages installed here, else the "
                 "stand-in)");
  app.add_option("--input-seed", o.input_seed, "seed of the synthetic stand-in")->default_val(1);
  app.add_option("--repeats", o.repeats, "timed encode/decode runs per input, boundary, codec")
      ->default_val(5)
      ->check(CLI::Range(1, 1000000));
  app.add_option("--warmup", o.warmup, "untimed encode/decode runs before them")
      ->default_val(1)
      ->check(CLI::Range(0, 1000000));
  app.add_option("--threads", o.threads, "LibTorch intra-op threads")
      ->default_val(1)
      ->check(CLI::Range(1, 1024));
  app.add_flag("--json", o.json, "print the codec profile JSON (data/codecs/*.json)");
  app.add_option("--out", o.out, "write to FILE instead of stdout");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : splitinfer::kExitBadOptions;
  }
  at::set_num_threads(o.threads);
  return splitinfer::Run(o);
}
