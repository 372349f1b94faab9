// Tests of the device's unit store (device/unit_store.h).
#include "device/unit_store.h"

#include <gtest/gtest.h>

namespace splitinfer {
namespace {

TEST(UnitStore, NothingPlacedInAnEmptyStore) {
  UnitStore store("/nonexistent-unit-store-root");
  EXPECT_FALSE(store.Current("mlp").ok());
}

}  // namespace
}  // namespace splitinfer
