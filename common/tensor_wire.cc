#include "common/tensor_wire.h"

#include <memory>
#include <utility>

namespace splitinfer {

Result<wire::DType> ToWireDType(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return wire::FLOAT32;
    case at::kHalf:
      return wire::FLOAT16;
    case at::kBFloat16:
      return wire::BFLOAT16;
    case at::kDouble:
      return wire::FLOAT64;
    case at::kChar:
      return wire::INT8;
    case at::kByte:
      return wire::UINT8;
    case at::kInt:
      return wire::INT32;
    case at::kLong:
      return wire::INT64;
    default:
      return InvalidArgumentError(std::string("tensor dtype ") + c10::toString(t) +
                                  " cannot be sent");
  }
}

Result<at::ScalarType> FromWireDType(int dtype) {
  switch (dtype) {
    case wire::FLOAT32:
      return at::kFloat;
    case wire::FLOAT16:
      return at::kHalf;
    case wire::BFLOAT16:
      return at::kBFloat16;
    case wire::FLOAT64:
      return at::kDouble;
    case wire::INT8:
      return at::kChar;
    case wire::UINT8:
      return at::kByte;
    case wire::INT32:
      return at::kInt;
    case wire::INT64:
      return at::kLong;
    default:
      return InvalidArgumentError("unsupported wire dtype " + std::to_string(dtype));
  }
}

Status FillTensorMeta(const at::Tensor& t, wire::TensorMeta* meta) {
  auto dt = ToWireDType(t.scalar_type());
  if (!dt.ok()) return dt.status();
  meta->set_dtype(*dt);
  meta->clear_shape();
  for (int64_t d : t.sizes()) meta->add_shape(d);
  return Status::Ok();
}

Result<at::Tensor> AllocateForMeta(const wire::TensorMeta& meta, bool pinned) {
  auto st = FromWireDType(meta.dtype());
  if (!st.ok()) return st.status();
  std::vector<int64_t> shape(meta.shape().begin(), meta.shape().end());
  try {
    return at::empty(shape, at::TensorOptions().dtype(*st).device(at::kCPU).pinned_memory(pinned));
  } catch (const std::exception& e) {
    return ResourceExhaustedError(std::string("cannot allocate tensor: ") + e.what());
  }
}

OutgoingFrame MakeTensorFrame(MessageType type, const google::protobuf::Message& meta,
                              const at::Tensor& t) {
  auto owned = std::make_shared<at::Tensor>(t.to(at::kCPU).contiguous());
  const void* data = owned->data_ptr();
  const size_t bytes = owned->nbytes();
  return MakeFrame(type, meta, data, bytes, std::shared_ptr<const void>(owned, owned.get()));
}

}  // namespace splitinfer
