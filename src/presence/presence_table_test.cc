#include "presence/presence_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

namespace onlined::presence {
namespace {

// A table on a fake clock: the test moves time by hand.
class PresenceTableTest : public ::testing::Test {
 protected:
  PresenceTableTest()
      : wheel_(0, 10, 256),
        table_(wheel_, {/*offline_grace_ms=*/1000, /*retain_offline_ms=*/60000},
               [this](Event&& e) { events_.push_back(std::move(e)); }) {}

  std::shared_ptr<SessionCell> NewCell(int64_t wall) {
    auto c = std::make_shared<SessionCell>();
    c->last_frame_ms = wall;
    return c;
  }
  void Advance(int64_t ms) {
    now_ += ms;
    wheel_.Advance(now_);
  }

  base::TimingWheel wheel_;
  PresenceTable table_;
  std::vector<Event> events_;
  int64_t now_ = 0;
};

TEST_F(PresenceTableTest, OpenEmitsOnlineOnce) {
  auto s1 = NewCell(100);
  table_.Open(1, "u", s1, 100);
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_TRUE(events_[0].online);
  EXPECT_EQ(events_[0].user_id, "u");
  EXPECT_EQ(events_[0].channel, 1u);
  auto s2 = NewCell(110);
  table_.Open(1, "u", s2, 110);  // second tab: no event
  EXPECT_EQ(events_.size(), 1u);
  UserInfo info = table_.Lookup(1, "u");
  EXPECT_TRUE(info.online);
  EXPECT_EQ(info.sessions, 2u);
  EXPECT_EQ(table_.OnlineCount(1), 1);
}

// Many users, half of them forgotten (the index deletes with backward
// shifts): every remaining one is still found, alone and in a batch, and
// no forgotten one is.
TEST_F(PresenceTableTest, ManyUsersSurviveChurn) {
  constexpr int kUsers = 3000;
  std::vector<std::shared_ptr<SessionCell>> cells;
  for (int i = 0; i < kUsers; ++i) {
    cells.push_back(NewCell(1000 + i));
    table_.Open(1, "user-" + std::to_string(i), cells.back(), 1000);
  }
  for (int i = 0; i < kUsers; i += 2)
    table_.Close(1, "user-" + std::to_string(i), cells[i].get(), true);
  Advance(60000 + 100);  // past retain_offline_ms: the closed ones are forgotten
  EXPECT_EQ(table_.size(), static_cast<size_t>(kUsers / 2));
  std::vector<std::string> names;
  for (int i = 0; i < kUsers; ++i) names.push_back("user-" + std::to_string(i));
  std::vector<std::string_view> views(names.begin(), names.end());
  std::vector<UserInfo> many(kUsers);
  table_.LookupMany(1, views.data(), views.size(), many.data());
  for (int i = 0; i < kUsers; ++i) {
    UserInfo one = table_.Lookup(1, names[i]);
    bool kept = i % 2 == 1;
    ASSERT_EQ(one.online, kept) << names[i];
    ASSERT_EQ(many[i].online, kept) << names[i];
    ASSERT_EQ(many[i].sessions, kept ? 1u : 0u);
    ASSERT_EQ(many[i].last_seen, kept ? 1000 + i : 0) << names[i];
  }
  EXPECT_FALSE(table_.Lookup(2, "user-1").online);  // same id, other channel
}

TEST_F(PresenceTableTest, ChannelsAreSeparate) {
  table_.Open(1, "u", NewCell(1), 1);
  EXPECT_FALSE(table_.Lookup(2, "u").online);
  EXPECT_EQ(table_.OnlineCount(2), 0);
}

// Ids as products make them (a prefix and a counter; every length 1 to 40;
// two channels) spread over the index's slots as random keys would: no two
// share a 64-bit hash, no slot of 2^18 takes more than a handful, and the
// occupancy's chi-square is that of a uniform spread. (The hash before
// 2026-12-08, std::hash ORed with 1, read 565,182 here: odd slots only.)
TEST(PresenceTableHash, SimilarIdsSpreadAsRandomKeysDo) {
  std::vector<std::string> ids;
  for (int i = 0; i < 100000; ++i) ids.push_back("u" + std::to_string(i));
  for (int i = 0; i < 50000; ++i) ids.push_back("user-0000-" + std::to_string(i) + "@example.com");
  for (int len = 1; len <= 40; ++len) {
    for (char c = 'a'; c <= 'z'; ++c) ids.push_back(std::string(static_cast<size_t>(len), c));
  }
  std::set<uint64_t> seen;
  constexpr size_t kSlots = 1 << 18;
  std::vector<int> load(kSlots);
  size_t keys = 0;
  for (ChannelIdx ch : {0u, 7u}) {
    for (const auto& id : ids) {
      const uint64_t h = PresenceTable::Hash(ch, id);
      EXPECT_TRUE(seen.insert(h).second) << id;
      ++load[h & (kSlots - 1)];
      ++keys;
    }
  }
  const double mean = static_cast<double>(keys) / kSlots;
  double chi2 = 0;
  int most = 0;
  for (int n : load) {
    chi2 += (n - mean) * (n - mean) / mean;
    most = std::max(most, n);
  }
  // The seed differs per process, so these bounds are ones a uniform hash
  // crosses about once in a million runs: 302,080 keys over 2^18 slots put
  // 15 or more in some slot with a chance of 5e-7 (12 would be 1e-4).
  EXPECT_LE(most, 14);
  // kSlots - 1 degrees of freedom: mean 262,143, sd ~724; 5 sd either way.
  EXPECT_GT(chi2, kSlots - 5 * 724.0);
  EXPECT_LT(chi2, kSlots + 5 * 724.0);
}

// The wheel's time is that of its last tick; a session that closes 90 ms
// after it still gets its whole grace, counted from the close (read from the
// clock), not from the tick. Counted from the tick, it ended 90 ms early.
TEST(PresenceTableClock, GraceRunsFromTheCloseNotFromTheLastTick) {
  for (const bool fresh : {true, false}) {
    base::ManualClock clock(0);
    const base::SteadyClock steady = clock.AsSteadyClock();
    base::TimingWheel wheel(0, 100, 256);
    std::vector<Event> events;
    PresenceTable t(
        wheel, {/*offline_grace_ms=*/800, /*retain_offline_ms=*/60000},
        [&](Event&& e) { events.push_back(std::move(e)); }, fresh ? &steady : nullptr);
    auto s = std::make_shared<SessionCell>();
    t.Open(1, "u", s, 1);
    clock.Advance(1000);
    wheel.Advance(clock.Now());  // a tick at 1,000
    clock.Advance(90);           // the close, 90 ms later
    t.Close(1, "u", s.get(), false);
    // Ticks every 100 ms from 1,100 on; the grace ends at 1,890.
    int64_t offline_at = -1;
    for (int64_t step = 10; offline_at < 0 && clock.Now() < 5000; step = 100) {
      clock.Advance(step);
      wheel.Advance(clock.Now());
      if (events.size() == 2) offline_at = clock.Now();
    }
    ASSERT_EQ(events.size(), 2u);
    EXPECT_FALSE(events[1].online);
    if (fresh) {
      EXPECT_GE(offline_at, 1090 + 800);        // not before the grace
      EXPECT_LE(offline_at, 1090 + 800 + 100);  // and within a tick of it
    } else {
      EXPECT_LT(offline_at, 1090 + 800);  // the wheel's time alone: early
    }
  }
}

TEST_F(PresenceTableTest, LastCloseGoesOfflineAfterGraceNotBefore) {
  auto s = NewCell(100);
  table_.Open(1, "u", s, 100);
  s->last_frame_ms = 5000;
  table_.Close(1, "u", s.get(), false);
  Advance(990);
  EXPECT_TRUE(table_.Lookup(1, "u").online);  // within grace
  EXPECT_EQ(events_.size(), 1u);
  Advance(30);
  ASSERT_EQ(events_.size(), 2u);
  EXPECT_FALSE(events_[1].online);
  EXPECT_EQ(events_[1].last_seen, 5000);
  UserInfo info = table_.Lookup(1, "u");
  EXPECT_FALSE(info.online);
  EXPECT_EQ(info.last_seen, 5000);  // kept after offline
  EXPECT_EQ(table_.OnlineCount(1), 0);
}

TEST_F(PresenceTableTest, ReconnectDuringGraceDoesNotFlap) {
  auto s = NewCell(100);
  table_.Open(1, "u", s, 100);
  table_.Close(1, "u", s.get(), false);
  Advance(500);
  table_.Open(1, "u", NewCell(600), 600);  // page reload
  Advance(5000);
  EXPECT_EQ(events_.size(), 1u);  // only the first online
  EXPECT_TRUE(table_.Lookup(1, "u").online);
}

TEST_F(PresenceTableTest, TwoTabsOneClosedStaysOnline) {
  auto a = NewCell(1), b = NewCell(1);
  table_.Open(1, "u", a, 1);
  table_.Open(1, "u", b, 1);
  table_.Close(1, "u", a.get(), false);
  Advance(5000);
  EXPECT_TRUE(table_.Lookup(1, "u").online);
  EXPECT_EQ(table_.Lookup(1, "u").sessions, 1u);
  EXPECT_EQ(events_.size(), 1u);
}

TEST_F(PresenceTableTest, TimedOutLastSessionGoesOfflineAtOnce) {
  auto s = NewCell(100);
  table_.Open(1, "u", s, 100);
  table_.Close(1, "u", s.get(), /*timed_out=*/true);
  ASSERT_EQ(events_.size(), 2u);
  EXPECT_FALSE(events_[1].online);
  EXPECT_EQ(events_[1].last_seen, 100);
}

TEST_F(PresenceTableTest, LastSeenIsNewestFrameOfAnySession) {
  auto a = NewCell(100), b = NewCell(100);
  table_.Open(1, "u", a, 100);
  table_.Open(1, "u", b, 100);
  a->last_frame_ms = 700;
  b->last_frame_ms = 900;
  EXPECT_EQ(table_.Lookup(1, "u").last_seen, 900);
}

TEST_F(PresenceTableTest, BestStateIsActiveIfAnySessionIs) {
  auto a = NewCell(1), b = NewCell(1);
  table_.Open(1, "u", a, 1);
  table_.Open(1, "u", b, 1);
  a->idle = true;
  table_.StateChanged(1, "u");
  EXPECT_EQ(events_.size(), 1u);  // b still active
  b->idle = true;
  table_.StateChanged(1, "u");
  ASSERT_EQ(events_.size(), 2u);
  EXPECT_TRUE(events_[1].idle);
  EXPECT_TRUE(events_[1].online);
  a->idle = false;
  table_.StateChanged(1, "u");
  ASSERT_EQ(events_.size(), 3u);
  EXPECT_FALSE(events_[2].idle);
}

TEST_F(PresenceTableTest, EventsComeInTransitionOrder) {
  for (int round = 0; round < 3; ++round) {
    auto s = NewCell(now_);
    table_.Open(1, "u", s, now_);
    table_.Close(1, "u", s.get(), false);
    Advance(2000);
  }
  ASSERT_EQ(events_.size(), 6u);
  for (size_t i = 0; i < events_.size(); ++i) EXPECT_EQ(events_[i].online, i % 2 == 0);
}

TEST_F(PresenceTableTest, OfflineRecordsExpire) {
  auto s = NewCell(1);
  table_.Open(1, "u", s, 1);
  table_.Close(1, "u", s.get(), true);
  EXPECT_EQ(table_.size(), 1u);
  Advance(61000);
  EXPECT_EQ(table_.size(), 0u);
  EXPECT_EQ(table_.Lookup(1, "u").last_seen, 0);
}

TEST_F(PresenceTableTest, UnknownCloseIsIgnored) {
  auto s = NewCell(1);
  table_.Close(1, "nobody", s.get(), false);
  table_.Open(1, "u", NewCell(1), 1);
  table_.Close(1, "u", s.get(), false);  // not its session
  EXPECT_EQ(table_.Lookup(1, "u").sessions, 1u);
}

TEST(ShardOf, StableAndSpread) {
  EXPECT_EQ(ShardOf(3, "alice", 8), ShardOf(3, "alice", 8));
  std::vector<int> counts(4, 0);
  for (int i = 0; i < 4000; ++i) counts[ShardOf(1, "user-" + std::to_string(i), 4)]++;
  for (int c : counts) {
    EXPECT_GT(c, 800);
    EXPECT_LT(c, 1200);
  }
}

// A cluster node's table: no grace of its own (the channel's home applies
// it once), every change of the session count told, and why a user left.
TEST(PresenceTableCluster, TellsEverySessionCountAndWhyTheLastEnded) {
  base::TimingWheel wheel(0, 10, 256);
  std::vector<Event> events;
  PresenceTable::Options o;
  o.offline_grace_ms = 0;
  o.emit_session_counts = true;
  PresenceTable t(wheel, o, [&](Event&& e) { events.push_back(std::move(e)); });
  auto c1 = std::make_shared<SessionCell>(), c2 = std::make_shared<SessionCell>();
  t.Open(1, "u", c1, 100);
  t.Open(1, "u", c2, 110);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].sessions, 2u);
  t.Close(1, "u", c1.get(), false);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_TRUE(events[2].online);
  EXPECT_EQ(events[2].sessions, 1u);
  t.Close(1, "u", c2.get(), true);  // at once, no grace
  ASSERT_EQ(events.size(), 4u);
  EXPECT_FALSE(events[3].online);
  EXPECT_EQ(events[3].sessions, 0u);
  EXPECT_TRUE(events[3].timed_out);
  t.Open(1, "v", c1, 120);
  t.Close(1, "v", c1.get(), false);
  ASSERT_EQ(events.size(), 6u);
  EXPECT_FALSE(events[5].online);
  EXPECT_FALSE(events[5].timed_out);
}

}  // namespace
}  // namespace onlined::presence
