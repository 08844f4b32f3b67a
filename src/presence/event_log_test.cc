#include "presence/event_log.h"

#include <gtest/gtest.h>

namespace onlined::presence {
namespace {

std::string Enc(uint64_t seq) { return "e" + std::to_string(seq); }

TEST(EventLog, NumbersStartAfterFirstSeqAndIncrease) {
  EventLog log(4, 1000);
  EXPECT_EQ(*log.Append(Enc), "e1001");
  EXPECT_EQ(*log.Append(Enc), "e1002");
  EXPECT_EQ(log.last_seq(), 1002u);
}

TEST(EventLog, ReplaysWhatIsKept) {
  EventLog log(4, 0);
  for (int i = 0; i < 3; ++i) log.Append(Enc);
  auto r = log.After(1);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ(*(*r)[0], "e2");
  EXPECT_EQ(*(*r)[1], "e3");
  EXPECT_TRUE(log.After(3)->empty());  // up to date
}

TEST(EventLog, TooOldOrFromAnotherRunMeansReset) {
  EventLog log(4, 100);
  for (int i = 0; i < 10; ++i) log.Append(Enc);  // keeps 107..110
  EXPECT_FALSE(log.After(105));
  ASSERT_TRUE(log.After(106));
  EXPECT_EQ(log.After(106)->size(), 4u);
  EXPECT_FALSE(log.After(50));   // an earlier run of the node
  EXPECT_FALSE(log.After(999));  // from the future
}

TEST(EventLog, EmptyLog) {
  EventLog log(4, 100);
  ASSERT_TRUE(log.After(100));
  EXPECT_TRUE(log.After(100)->empty());
  EXPECT_FALSE(log.After(99));
}

// Numbers from a cluster's stream: kept as given, duplicates dropped, a
// gap starts the kept history anew (a resume across it is a reset).
TEST(EventLog, AppendAtKeepsGivenNumbers) {
  EventLog log(8, 0);
  EXPECT_TRUE(log.AppendAt(500, std::make_shared<const std::string>("a")));
  EXPECT_TRUE(log.AppendAt(501, std::make_shared<const std::string>("b")));
  EXPECT_FALSE(log.AppendAt(501, std::make_shared<const std::string>("b")));
  EXPECT_FALSE(log.AppendAt(400, std::make_shared<const std::string>("old")));
  ASSERT_TRUE(log.After(499));
  EXPECT_EQ(log.After(499)->size(), 2u);
  EXPECT_TRUE(log.AppendAt(510, std::make_shared<const std::string>("c")));
  EXPECT_EQ(log.last_seq(), 510u);
  EXPECT_FALSE(log.After(501)) << "events 502..509 are not here";
  ASSERT_TRUE(log.After(509));
  EXPECT_EQ(*(*log.After(509))[0], "c");
}

}  // namespace
}  // namespace onlined::presence
