#include "net/retired.h"

#include <gtest/gtest.h>

#include <deque>
#include <vector>

namespace onlined::net {
namespace {

// A queue that is never empty: one written for each one retired, with 10
// always waiting. Its vector stays small, and what waits keeps its order.
TEST(DropRetired, AQueueThatNeverEmptiesStaysSmall) {
  std::vector<int> q;
  std::deque<int> model;
  size_t head = 0;
  int next = 0;
  for (int i = 0; i < 10; ++i) {
    q.push_back(next);
    model.push_back(next++);
  }
  for (int round = 0; round < 100000; ++round) {
    q.push_back(next);
    model.push_back(next++);
    ASSERT_EQ(q[head], model.front());
    ++head;
    model.pop_front();
    DropRetired(q, head);
    ASSERT_LE(q.size(), 2 * (q.size() - head) + 64 + 1);
  }
  EXPECT_LT(q.size(), 200U);
  ASSERT_EQ(q.size() - head, model.size());
  for (size_t i = head; i < q.size(); ++i) EXPECT_EQ(q[i], model[i - head]);
}

TEST(DropRetired, FewDoneEntriesStay) {
  std::vector<int> q(200, 1);
  size_t head = 63;
  DropRetired(q, head);
  EXPECT_EQ(head, 63U);  // under the slack
  head = 64;
  DropRetired(q, head);
  EXPECT_EQ(head, 64U);  // less than half
  EXPECT_EQ(q.size(), 200U);
  head = 50;
  q.resize(60);
  DropRetired(q, head, 8);
  EXPECT_EQ(head, 0U);
  EXPECT_EQ(q.size(), 10U);
}

}  // namespace
}  // namespace onlined::net
