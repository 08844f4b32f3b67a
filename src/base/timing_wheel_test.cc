#include "base/timing_wheel.h"

#include <gtest/gtest.h>

#include <functional>
#include <vector>

namespace onlined::base {
namespace {

struct Probe : TimerEntry {
  std::vector<int64_t> fired;
  std::function<void(int64_t)> then;
  void OnTimer(int64_t now) override {
    fired.push_back(now);
    if (then) then(now);
  }
};

TEST(TimingWheel, FiresAtOrAfterDeadlineNeverBefore) {
  TimingWheel w(0, 100, 16);
  Probe p;
  w.Schedule(&p, 250);
  w.Advance(199);
  EXPECT_TRUE(p.fired.empty());
  w.Advance(249);  // inside the deadline's tick, before it: not yet
  EXPECT_TRUE(p.fired.empty());
  w.Advance(299);  // fires at the next tick's edge (300), never inside 200..299
  EXPECT_TRUE(p.fired.empty());
  w.Advance(300);
  ASSERT_EQ(p.fired.size(), 1u);
  EXPECT_GE(p.fired[0], 250);
  EXPECT_FALSE(p.scheduled());
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimingWheel, ADeadlineOnATickEdgeFiresThere) {
  TimingWheel w(1000, 100, 16);
  Probe p;
  w.Schedule(&p, 1800);
  w.Advance(1799);
  EXPECT_TRUE(p.fired.empty());
  w.Advance(1800);
  ASSERT_EQ(p.fired.size(), 1u);
  EXPECT_EQ(p.fired[0], 1800);
}

TEST(TimingWheel, DeadlinesBeyondOneTurnWaitForTheirTurn) {
  TimingWheel w(0, 10, 8);  // one turn = 80 ms
  Probe p;
  w.Schedule(&p, 500);
  for (int64_t t = 0; t < 500; t += 7) w.Advance(t);
  EXPECT_TRUE(p.fired.empty());
  w.Advance(510);
  EXPECT_EQ(p.fired.size(), 1u);
}

TEST(TimingWheel, CancelAndRescheduleAndDestroy) {
  TimingWheel w(0, 10, 8);
  Probe a, b;
  w.Schedule(&a, 50);
  w.Schedule(&b, 50);
  w.Cancel(&a);
  w.Schedule(&b, 120);  // move
  w.Advance(100);
  EXPECT_TRUE(a.fired.empty());
  EXPECT_TRUE(b.fired.empty());
  {
    Probe c;
    w.Schedule(&c, 130);
  }  // destroyed while scheduled: unlinked
  w.Advance(200);
  EXPECT_EQ(b.fired.size(), 1u);
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimingWheel, PastDeadlineFiresOnNextAdvance) {
  TimingWheel w(1000, 100, 16);
  Probe p;
  w.Schedule(&p, 10);
  w.Advance(1100);
  EXPECT_EQ(p.fired.size(), 1u);
}

TEST(TimingWheel, CallbackMayCancelASiblingDueInTheSameTick) {
  TimingWheel w(0, 10, 8);
  Probe a, b;
  a.then = [&](int64_t) { w.Cancel(&b); };
  b.then = [&](int64_t) { w.Cancel(&a); };
  w.Schedule(&a, 30);
  w.Schedule(&b, 30);
  w.Advance(40);
  EXPECT_EQ(a.fired.size() + b.fired.size(), 1u);  // whichever ran first cancelled the other
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimingWheel, CallbackMayRescheduleItself) {
  TimingWheel w(0, 10, 8);
  Probe p;
  p.then = [&](int64_t now) {
    if (p.fired.size() < 3) w.Schedule(&p, now + 25);
  };
  w.Schedule(&p, 25);
  for (int64_t t = 0; t <= 200; t += 5) w.Advance(t);
  EXPECT_EQ(p.fired.size(), 3u);
}

TEST(TimingWheel, ManyEntries) {
  TimingWheel w(0, 10, 64);
  std::vector<Probe> ps(10000);
  for (size_t i = 0; i < ps.size(); ++i) w.Schedule(&ps[i], static_cast<int64_t>(i % 2000));
  w.Advance(2010);
  for (const auto& p : ps) EXPECT_EQ(p.fired.size(), 1u);
}

}  // namespace
}  // namespace onlined::base
