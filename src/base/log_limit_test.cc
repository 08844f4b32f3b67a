#include "base/log_limit.h"

#include <gtest/gtest.h>

namespace onlined::base {
namespace {

TEST(LogLimit, LetsABurstThroughThenCountsTheRestForTheNextLine) {
  LogLimit limit(3, 10000);
  uint64_t dropped = 99;
  int written = 0;
  for (int i = 0; i < 1000; ++i) written += limit.Allow(1000 + i, &dropped);
  EXPECT_EQ(written, 3) << "a thousand events in a second wrote more than the burst";
  EXPECT_EQ(dropped, 0u);
  EXPECT_FALSE(limit.Allow(10999, &dropped));  // still the same window
  ASSERT_TRUE(limit.Allow(11000, &dropped));   // the next window
  EXPECT_EQ(dropped, 998u) << "the line after the flood says how many were not written";
  ASSERT_TRUE(limit.Allow(11001, &dropped));
  EXPECT_EQ(dropped, 0u);
}

}  // namespace
}  // namespace onlined::base
