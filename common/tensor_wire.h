// Tensors on the wire: dtype/shape metadata <-> at::Tensor, and frames whose body is a tensor's
// own storage (no copy into a string).
#pragma once

#include <ATen/ATen.h>

#include "common/frame.h"
#include "common/status.h"

namespace splitinfer {

Result<wire::DType> ToWireDType(at::ScalarType t);
Result<at::ScalarType> FromWireDType(int dtype);

// Fills `meta` with t's dtype and shape. Fails for dtypes the wire does not carry.
Status FillTensorMeta(const at::Tensor& t, wire::TensorMeta* meta);

// An empty CPU tensor with the dtype and shape of `meta`, to receive a body into. Call
// ValidateTensorMeta first: this function trusts `meta`. `pinned`: page-locked host memory
// (CUDA's caching host allocator; only where CUDA is available), which the edge server receives
// into when it computes on a GPU, so that the copy to the GPU is one DMA that need not block.
Result<at::Tensor> AllocateForMeta(const wire::TensorMeta& meta, bool pinned = false);

// A frame whose body is `t` (moved to the CPU and made contiguous if needed; the frame keeps that
// tensor alive). `meta` must already describe t (see FillTensorMeta).
OutgoingFrame MakeTensorFrame(MessageType type, const google::protobuf::Message& meta,
                              const at::Tensor& t);

}  // namespace splitinfer
