// Fidelity of the split-tensor codecs, measured (issue 6 item 3): per model, boundary k and
// codec c, what the tensor at k costs on the wire once encoded, how long coding takes, and how
// much the model's output moves when units k+1..N run on the decoded tensor instead of the
// float32 one. codec_fidelity prints it; its JSON is the codec profile the decision core reads
// (decision::ParseCodecProfile), so the cost model prices measured options, not assumed ones.
//
// For every input x: the float32 chain gives the reference output y = f(x) and its top-1 class.
// Then for each boundary k (in increasing order, h_k = units 1..k (x) computed from h_{k-1}, so
// the chain runs once per input) and codec c: e = Encode(h_k, c), h' = Decode(e), y' = units
// k+1..N (h'), compared with y. Encode and Decode are timed (warm-up runs, then --repeats runs).
//
// The tail k+1..N is the costly part. It depends on h' only, so when h' is bit-identical to a
// tensor whose tail already ran for this input and boundary (h_k itself, whose tail output is y;
// c+zstd, whose decode equals c's), that output is reused: the equality is checked, not assumed.
//
// Figures per (codec, boundary), over the inputs:
//   bytes           mean of what the codec puts on the wire beyond a float32 frame: the body
//                   plus the codec's metadata (scales and zero points: int8c carries 8 bytes a
//                   channel, which matters for a small tensor with many channels)
//   body_bytes, meta_bytes   the two parts of bytes (means)
//   raw_bytes       the float32 tensor's bytes (one sample); ratio = raw_bytes / bytes
//   encode_ms, decode_ms     medians over all inputs x repeats; *_mbps = raw_bytes / 1e6 / s
//   top1_agreement  share of inputs whose top-1 class of y' equals that of y
//   max_abs_err, mean_abs_err          of y' - y (max over inputs; mean over inputs and outputs)
//   feature_max_abs_err, feature_mean_abs_err   of h' - h_k
// A codec that cannot carry the tensor of some input at k (int8 refuses NaN or Inf, fp16 a
// value beyond 65504) is unavailable there: the JSON lists it under "unavailable" with the
// reason instead of under "boundaries", which the decision core reads as "not offered at k".
//
// Thread safety: MeasureFidelity may run concurrently with other calls on the same model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "common/codec.h"
#include "common/split_model.h"
#include "common/status.h"

namespace splitinfer {

// The codecs measured when none are named (fp32 is the reference, measured only if named).
inline constexpr const char* kDefaultFidelityCodecs =
    "fp16,int8,int8c,fp16+zstd,int8+zstd,int8c+zstd";

// "fp16,int8+zstd": CodecSpec::Parse on each item. kInvalidArgument for an unknown codec, an
// empty list or a codec named twice.
Result<std::vector<CodecSpec>> ParseCodecList(const std::string& text);

// "all" (every k in [0, N)), or a comma-separated list of k and ranges A-B, sorted and
// deduplicated. kInvalidArgument for a k outside [0, N) (naming the model's range) or a malformed
// item.
Result<std::vector<size_t>> ParseBoundaries(const std::string& text, const SplitModel& model);

struct FidelityOptions {
  std::vector<CodecSpec> codecs;
  std::vector<size_t> boundaries;  // each in [0, N), increasing
  int repeats = 5;                 // timed Encode and Decode runs per input, boundary and codec
  int warmup = 1;                  // untimed runs before them
};

struct BoundaryFidelity {
  size_t k = 0;
  int64_t raw_bytes = 0;
  bool available = true;
  std::string unavailable_reason;  // the first Encode error, when !available
  double bytes = 0, body_bytes = 0, meta_bytes = 0, ratio = 0;
  double encode_ms = 0, decode_ms = 0, encode_mbps = 0, decode_mbps = 0;
  int agree = 0;  // inputs whose top-1 matches
  double top1_agreement = 0;
  double max_abs_err = 0, mean_abs_err = 0;
  double feature_max_abs_err = 0, feature_mean_abs_err = 0;
};

struct CodecFidelity {
  std::string name;                          // CodecSpec::ToString()
  std::vector<BoundaryFidelity> boundaries;  // one per FidelityOptions::boundaries, same order
};

// The float32 tensor at a boundary, over the inputs: its scale (fp16 flushes magnitudes below
// 2^-24 to zero) and its sparsity (what zstd feeds on).
struct FeatureStats {
  size_t k = 0;
  double abs_max = 0;        // max |h_k|
  double abs_mean = 0;       // mean |h_k|
  double zero_fraction = 0;  // share of exact zeros
};

struct FidelityReport {
  int inputs = 0;
  std::vector<FeatureStats> features;  // one per boundary measured
  int distinct_top1 = 0;               // distinct reference classes among the inputs
  double output_mean_abs = 0;          // mean |y| of the reference outputs (a scale for the errors)
  // Gap between the largest and second largest reference output, over the inputs: an output
  // error below half the smallest gap cannot change any top-1 class.
  double top1_margin_min = 0, top1_margin_median = 0;
  int tail_runs = 0;         // tails k+1..N actually run
  int tail_runs_reused = 0;  // tails reused because h' was bit-identical to one already run
  std::vector<CodecFidelity> codecs;
};

// Runs the measurement on the CPU model `model` for `inputs` (each [1, input shape...]).
// kInvalidArgument for bad options or inputs of the wrong shape; kInternal when LibTorch throws
// or a freshly encoded tensor fails to decode (a codec bug).
Result<FidelityReport> MeasureFidelity(const SplitModel& model,
                                       const std::vector<at::Tensor>& inputs,
                                       const FidelityOptions& options);

// Where and how the figures were measured: copied into the JSON.
struct FidelityContext {
  int64_t input_size = 0;  // zoo --input-size (0: not an image model)
  std::string images;      // InputSet::source
  std::vector<std::string> image_files;
  int threads = 1;
  int repeats = 0, warmup = 0;
  std::string host, cpu, date;
  int cores = 0;
};

// The codec profile: {"model", "version", "input_size", "input_shape", "num_units", "inputs",
// "images", "image_files", "distinct_top1", "output_mean_abs", "top1_margin": {"min", "median"},
// "repeats", "warmup", "threads", "machine": {"host", "cpu", "cores"}, "date", "features": [{"k",
// "unit", "abs_max", "abs_mean", "zero_fraction"}], "codecs": [{"name", "boundaries": [{"k",
// "unit", "shape", "bytes", "body_bytes", "meta_bytes", "raw_bytes", "ratio", "encode_ms",
// "decode_ms", "encode_mbps", "decode_mbps", "top1_agreement", "max_abs_err", "mean_abs_err",
// "feature_max_abs_err", "feature_mean_abs_err"}], "unavailable": [{"k", "reason"}]}]}.
nlohmann::ordered_json FidelityJson(const SplitModel& model, const FidelityReport& report,
                                    const FidelityContext& context);

// The human table: one block per codec, one row per boundary, with the codec time as a share of
// the transfer time it saves at 10 Mbit/s (the target: below 5%).
std::string FidelityTable(const SplitModel& model, const FidelityReport& report,
                          const FidelityContext& context);

// Codec time / transfer time saved at `rate_bps`: (encode + decode) / ((raw - bytes) 8 / rate).
// +inf when the codec saves nothing.
double CodecShareOfSavedTime(const BoundaryFidelity& b, double rate_bps);

}  // namespace splitinfer
