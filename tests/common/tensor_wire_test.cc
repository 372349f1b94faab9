// Tensors on the wire: dtype mapping, metadata and zero-copy frames.
#include "common/tensor_wire.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace splitinfer {
namespace {

TEST(TensorWireTest, DtypesRoundTrip) {
  for (auto t : {at::kFloat, at::kHalf, at::kBFloat16, at::kDouble, at::kChar, at::kByte, at::kInt,
                 at::kLong}) {
    auto w = ToWireDType(t);
    ASSERT_TRUE(w.ok());
    auto back = FromWireDType(*w);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, t);
    EXPECT_EQ(DTypeSize(*w), c10::elementSize(t));
  }
  EXPECT_FALSE(ToWireDType(at::kComplexFloat).ok());
  EXPECT_FALSE(FromWireDType(0).ok());
}

TEST(TensorWireTest, FrameBorrowsTheTensorStorage) {
  at::Tensor t = torch::randn({2, 3, 4});
  wire::InferReply reply;
  ASSERT_TRUE(FillTensorMeta(t, reply.mutable_tensor()).ok());
  OutgoingFrame f = MakeTensorFrame(MessageType::kInferReply, reply, t);
  EXPECT_EQ(f.body, t.data_ptr());  // contiguous CPU tensor: no copy
  EXPECT_EQ(f.body_size, t.nbytes());
  EXPECT_TRUE(ValidateTensorMeta(reply.tensor(), f.body_size, FrameLimits{}).ok());
}

TEST(TensorWireTest, NonContiguousTensorIsSentInRowMajorOrder) {
  at::Tensor t = torch::arange(6, torch::kFloat).reshape({2, 3}).t();  // 3x2, strided
  wire::InferReply reply;
  ASSERT_TRUE(FillTensorMeta(t, reply.mutable_tensor()).ok());
  OutgoingFrame f = MakeTensorFrame(MessageType::kInferReply, reply, t);
  auto recv = AllocateForMeta(reply.tensor());
  ASSERT_TRUE(recv.ok());
  ASSERT_EQ(recv->nbytes(), f.body_size);
  std::memcpy(recv->data_ptr(), f.body, f.body_size);
  EXPECT_TRUE(recv->equal(t));
}

}  // namespace
}  // namespace splitinfer
