#include "cluster/order.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <random>
#include <set>

namespace onlined::cluster {
namespace {

using Payload = DeliveryOrder::Payload;

Payload Frame(int64_t seq) {
  return std::make_shared<const std::string>("m" + std::to_string(seq));
}

// Records what the order does; heals wait in `asked` until the test answers.
struct Recorder : DeliveryOrder::Sink {
  struct Ask {
    int64_t after, upto;
    uint32_t epoch;
  };
  std::vector<int64_t> delivered;
  std::deque<Ask> asked;
  bool can_heal = true;
  int dups = 0, gaps = 0;

  void Deliver(int64_t seq, Payload frame) override {
    EXPECT_EQ(*frame, "m" + std::to_string(seq));
    delivered.push_back(seq);
  }
  bool AskHeal(int64_t after, int64_t upto, uint32_t epoch) override {
    if (!can_heal) return false;
    EXPECT_LT(after, upto);
    asked.push_back({after, upto, epoch});
    return true;
  }
  void Duplicate() override { ++dups; }
  void Gap() override { ++gaps; }

  // The store's answer to the oldest heal: every seq asked, but `missing`.
  void Answer(DeliveryOrder& order, const std::set<int64_t>& missing = {}) {
    ASSERT_FALSE(asked.empty());
    Ask a = asked.front();
    asked.pop_front();
    DeliveryOrder::Frames got;
    for (int64_t s = a.after + 1; s <= a.upto; ++s)
      if (missing.count(s) == 0) got.emplace_back(s, Frame(s));
    order.Healed(a.epoch, a.upto, std::move(got), *this);
  }
};

std::vector<int64_t> Range(int64_t from, int64_t to) {
  std::vector<int64_t> v;
  for (int64_t s = from; s <= to; ++s) v.push_back(s);
  return v;
}

TEST(DeliveryOrder, AChatsFirstFrameLooksBackThenFramesInOrderGoStraightThrough) {
  DeliveryOrder o;
  Recorder r;
  o.Offer("c1", 1, Frame(1), r);  // nothing before seq 1: no look back
  EXPECT_TRUE(r.asked.empty());
  for (int64_t s = 2; s <= 5; ++s) o.Offer("c1", s, Frame(s), r);
  EXPECT_EQ(r.delivered, Range(1, 5));
  EXPECT_TRUE(r.asked.empty());

  DeliveryOrder late;
  Recorder r2;
  late.Offer("c1", 50, Frame(50), r2);  // the 32 seqs before it are read again
  ASSERT_EQ(r2.asked.size(), 1u);
  EXPECT_EQ(r2.asked.front().after, 50 - 1 - DeliveryOrder::kFirstHeal);
  EXPECT_EQ(r2.asked.front().upto, 49);
  EXPECT_TRUE(r2.delivered.empty());
  late.Offer("c1", 51, Frame(51), r2);
  EXPECT_TRUE(r2.delivered.empty()) << "a frame overtook the look back";
  r2.Answer(late);
  EXPECT_EQ(r2.delivered, Range(18, 51));
  EXPECT_EQ(r2.gaps, 0) << "the first look back is not a gap";
}

TEST(DeliveryOrder, AGapIsHealedFromTheStoreAndDuplicatesDropped) {
  DeliveryOrder o;
  Recorder r;
  for (int64_t s = 1; s <= 3; ++s) o.Offer("c1", s, Frame(s), r);
  o.Offer("c1", 6, Frame(6), r);
  ASSERT_EQ(r.asked.size(), 1u);
  EXPECT_EQ(r.asked.front().after, 3);
  EXPECT_EQ(r.asked.front().upto, 5);
  EXPECT_EQ(r.gaps, 1);
  o.Offer("c1", 4, Frame(4), r);  // one of the gap arrives meanwhile
  EXPECT_EQ(r.delivered, Range(1, 4));
  r.Answer(o);  // 4 again from the store: not handed over twice
  EXPECT_EQ(r.delivered, Range(1, 6));
  o.Offer("c1", 5, Frame(5), r);  // late from its node: a duplicate
  o.Offer("c1", 2, Frame(2), r);
  EXPECT_EQ(r.dups, 2);
  EXPECT_EQ(r.delivered, Range(1, 6));
  EXPECT_TRUE(r.asked.empty());
}

// The defect of 5941824: while a heal was in flight a frame from one node
// overtook another's earlier one, opening a second gap past the first; the
// heal's answer handed over every held frame across it, and the frame of
// the second gap, arriving after, was dropped as a duplicate.
TEST(DeliveryOrder, AGapOpenedWhileAHealIsInFlightIsHealedNextNotSkipped) {
  DeliveryOrder o;
  Recorder r;
  for (int64_t s = 1; s <= 10; ++s) o.Offer("c1", s, Frame(s), r);
  o.Offer("c1", 12, Frame(12), r);  // gap: 11
  ASSERT_EQ(r.asked.size(), 1u);
  o.Offer("c1", 14, Frame(14), r);  // a second gap, 13, while the first heal is out
  EXPECT_EQ(r.asked.size(), 1u) << "one heal at a time";
  r.Answer(o);  // 11
  EXPECT_EQ(r.delivered, Range(1, 12));
  ASSERT_EQ(r.asked.size(), 1u) << "the second gap was not asked for";
  EXPECT_EQ(r.asked.front().after, 12);
  EXPECT_EQ(r.asked.front().upto, 13);
  o.Offer("c1", 13, Frame(13), r);  // its frame arrives before the heal's answer
  EXPECT_EQ(r.delivered, Range(1, 14));
  r.Answer(o);
  EXPECT_EQ(r.delivered, Range(1, 14));
  EXPECT_EQ(r.dups, 0);
  EXPECT_TRUE(r.asked.empty());
}

TEST(DeliveryOrder, WhatAFailingStoreDoesNotGiveIsNotWaitedFor) {
  DeliveryOrder o;
  Recorder r;
  o.Offer("c1", 1, Frame(1), r);
  o.Offer("c1", 5, Frame(5), r);
  o.Offer("c1", 8, Frame(8), r);
  r.Answer(o, {2, 3, 4});  // the store failed: nothing of 2..4
  // The frame after the gap goes on; the next gap is asked once.
  EXPECT_EQ(r.delivered, (std::vector<int64_t>{1, 5}));
  ASSERT_EQ(r.asked.size(), 1u);
  EXPECT_EQ(r.asked.front().after, 5);
  r.Answer(o, {6});  // 7 found, 6 not
  EXPECT_EQ(r.delivered, (std::vector<int64_t>{1, 5, 7, 8}));
  EXPECT_TRUE(r.asked.empty()) << "a failing store asked in a loop";
}

TEST(DeliveryOrder, AnOrderStartedAfreshDisownsItsHealInFlight) {
  DeliveryOrder o;
  Recorder r;
  o.Offer("c1", 1, Frame(1), r);
  o.Offer("c1", 3, Frame(3), r);
  ASSERT_EQ(r.asked.size(), 1u);
  o.Reset({});                    // the user's last session here left
  o.Offer("c1", 7, Frame(7), r);  // a session came back: a new order, its own look back
  ASSERT_EQ(r.asked.size(), 2u);
  r.Answer(o);  // the old heal's answer: ignored
  EXPECT_EQ(r.delivered, (std::vector<int64_t>{1}));
  EXPECT_EQ(o.delivered(), 0);
  r.Answer(o);
  EXPECT_EQ(r.delivered, (std::vector<int64_t>{1, 1, 2, 3, 4, 5, 6, 7}));

  o.Offer("c2", 1, Frame(1), r);  // another chat: starts afresh
  EXPECT_EQ(o.chat(), "c2");
  EXPECT_EQ(r.delivered.back(), 1);
}

TEST(DeliveryOrder, AFrameFromBeforeTheFirstIsHandedOverLateOnce) {
  DeliveryOrder o;
  Recorder r;
  o.Offer("c1", 40, Frame(40), r);
  r.Answer(o);  // the look back gives 8..39
  EXPECT_EQ(r.delivered, Range(8, 40));
  // 3 was in flight from another node when 40 came: late, not lost.
  o.Offer("c1", 3, Frame(3), r);
  o.Offer("c1", 3, Frame(3), r);
  EXPECT_EQ(r.delivered.back(), 3);
  EXPECT_EQ(r.delivered.size(), 34u);
  EXPECT_EQ(r.dups, 1);
}

TEST(DeliveryOrder, WithoutAStoreOrWhileItIsSlowOrderGoesOverWaiting) {
  DeliveryOrder none;
  Recorder r;
  r.can_heal = false;
  none.Offer("c1", 1, Frame(1), r);
  none.Offer("c1", 4, Frame(4), r);
  none.Offer("c1", 3, Frame(3), r);  // behind what was handed over: dropped
  EXPECT_EQ(r.delivered, (std::vector<int64_t>{1, 4}));

  DeliveryOrder slow;
  Recorder s;
  slow.Offer("c1", 1, Frame(1), s);
  const auto held = static_cast<int64_t>(DeliveryOrder::kMaxHeld);
  for (int64_t seq = 3; seq < 3 + held; ++seq) slow.Offer("c1", seq, Frame(seq), s);
  EXPECT_EQ(s.delivered, (std::vector<int64_t>{1}));
  EXPECT_EQ(slow.held(), DeliveryOrder::kMaxHeld);
  slow.Offer("c1", 3 + held, Frame(3 + held), s);  // one more: the held go on
  std::vector<int64_t> want{1};
  for (int64_t seq = 3; seq <= 3 + held; ++seq) want.push_back(seq);
  EXPECT_EQ(s.delivered, want);
  s.Answer(slow);  // the heal's late answer (2) comes after: nothing twice
  EXPECT_EQ(s.delivered.size(), static_cast<size_t>(held + 2));
}

// Nodes commit a chat's messages in turn; each node's frames reach this one
// in its own order, the nodes' streams interleaved at random, some frames
// lost; the store answers heals after a random while. Whatever the
// interleaving, the sessions get every seq from the first look back to the
// last frame that arrived, in order, once each (the frames handed over late
// from before the first are the only exception, and only those).
TEST(DeliveryOrder, AnyInterleavingOfNodesAndLossesIsDeliveredInOrderOnce) {
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int nodes = 2 + static_cast<int>(rng() % 3);
    const int64_t messages = 50 + static_cast<int64_t>(rng() % 400);
    const double loss = (rng() % 4) * 0.05;
    std::vector<std::deque<int64_t>> streams(static_cast<size_t>(nodes));
    for (int64_t s = 1; s <= messages; ++s) {
      if (std::uniform_real_distribution<double>(0, 1)(rng) < loss) continue;
      streams[rng() % static_cast<size_t>(nodes)].push_back(s);
    }
    DeliveryOrder o;
    Recorder r;
    int64_t first = 0, last = 0;
    std::vector<size_t> late;  // indexes in r.delivered of frames handed over late
    for (;;) {
      std::vector<size_t> ready;
      for (size_t i = 0; i < streams.size(); ++i)
        if (!streams[i].empty()) ready.push_back(i);
      if (ready.empty() && r.asked.empty()) break;
      if (!r.asked.empty() && (ready.empty() || rng() % 4 == 0)) {
        r.Answer(o);
        continue;
      }
      auto& st = streams[ready[rng() % ready.size()]];
      const int64_t seq = st.front();
      st.pop_front();
      if (first == 0) first = seq;
      last = std::max(last, seq);
      const size_t before = r.delivered.size();
      o.Offer("c", seq, Frame(seq), r);
      ASSERT_LE(o.held(), DeliveryOrder::kMaxHeld);
      if (seq < first && r.delivered.size() > before) {
        // From before the first: handed over at once, alone, or dropped.
        ASSERT_EQ(r.delivered.size(), before + 1);
        ASSERT_EQ(r.delivered.back(), seq);
        late.push_back(before);
      }
    }
    ASSERT_NE(first, 0);
    EXPECT_EQ(o.held(), 0u);
    // In order, once each, but the frames handed over late, each once.
    std::vector<int64_t> in_order;
    std::set<int64_t> late_seqs;
    for (size_t i = 0, l = 0; i < r.delivered.size(); ++i) {
      if (l < late.size() && late[l] == i) {
        ++l;
        EXPECT_TRUE(late_seqs.insert(r.delivered[i]).second) << "late twice: " << r.delivered[i];
        continue;
      }
      in_order.push_back(r.delivered[i]);
    }
    EXPECT_EQ(in_order, Range(std::max<int64_t>(1, first - DeliveryOrder::kFirstHeal), last));
  }
}

}  // namespace
}  // namespace onlined::cluster
