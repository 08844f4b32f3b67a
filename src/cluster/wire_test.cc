#include "cluster/wire.h"

#include <gtest/gtest.h>

namespace onlined::cluster {
namespace {

UserEntry Entry(std::string user, uint32_t sessions) {
  UserEntry e;
  e.channel = "acme";
  e.user = std::move(user);
  e.sessions = sessions;
  e.idle = sessions % 2 == 1;
  e.last_seen = 1700000000000 + sessions;
  return e;
}

TEST(ClusterWire, EveryMessageRoundTrips) {
  Beat b{"host:8080", 42, true, false, {1, 2, 3}};
  auto b2 = DecodeBeat(Encode(b));
  ASSERT_TRUE(b2);
  EXPECT_EQ(b2->node, "host:8080");
  EXPECT_EQ(b2->boot, 42u);
  EXPECT_TRUE(b2->ready);
  EXPECT_EQ(b2->shard_seqs, (std::vector<uint64_t>{1, 2, 3}));

  Deltas d{"n1", 7, 1, 99, {Entry("ann", 2), Entry("bob", 0)}};
  d.users[1].timed_out = true;
  auto d2 = DecodeDeltas(Encode(d));
  ASSERT_TRUE(d2);
  EXPECT_EQ(d2->seq, 99u);
  ASSERT_EQ(d2->users.size(), 2u);
  EXPECT_EQ(d2->users[0].user, "ann");
  EXPECT_EQ(d2->users[0].sessions, 2u);
  EXPECT_FALSE(d2->users[0].idle);
  EXPECT_TRUE(d2->users[1].timed_out);
  EXPECT_EQ(d2->users[1].last_seen, 1700000000000);

  Deliver m{"acme", "ann", "c-1", 5, R"({"type":"message"})"};
  auto m2 = DecodeDeliver(Encode(m));
  ASSERT_TRUE(m2);
  EXPECT_EQ(m2->frame, m.frame);
  EXPECT_EQ(m2->seq, 5);

  Events ev{1000, {{"ann", true, false, 1}, {"bob", false, false, 2}}};
  auto ev2 = DecodeEvents(Encode(ev));
  ASSERT_TRUE(ev2);
  EXPECT_EQ(ev2->first_seq, 1000u);
  EXPECT_EQ(ev2->events[1].user, "bob");
  EXPECT_FALSE(ev2->events[1].online);
}

TEST(ClusterWire, SnapshotsComeInChunksUnderTheLimit) {
  std::vector<UserEntry> users;
  for (int i = 0; i < 5000; ++i) users.push_back(Entry("user-" + std::to_string(i), 1));
  users[3].pub_known = users[3].pub_online = true;
  Snapshot head{"n1", 7, 0, 2, 12, false, 0, {}};
  size_t from = 0, chunks = 0, got = 0;
  std::string b;
  bool last = false;
  while (from < users.size()) {
    from += EncodeChunk(head, users, from, 16 * 1024, b);
    EXPECT_LE(b.size(), 16u * 1024);
    auto s = DecodeSnapshot(b);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->seq, 12u);
    if (chunks == 0) {
      EXPECT_TRUE(s->users[3].pub_online);
    }
    got += s->users.size();
    last = s->last;
    ++chunks;
  }
  EXPECT_EQ(got, users.size());
  EXPECT_TRUE(last);
  EXPECT_GT(chunks, 5u);
}

TEST(ClusterWire, MalformedInputIsRefusedNeverReadPastItsEnd) {
  Deltas d{"n1", 7, 1, 99, {Entry("ann", 2)}};
  const std::string good = Encode(d);
  for (size_t n = 0; n < good.size(); ++n) EXPECT_FALSE(DecodeDeltas(good.substr(0, n))) << n;
  EXPECT_FALSE(DecodeDeltas(good + "x")) << "trailing bytes";
  EXPECT_FALSE(DecodeBeat(good)) << "another kind";
  std::string newer = good;
  newer[1] = 2;
  EXPECT_FALSE(DecodeDeltas(newer)) << "a newer version";
  // A count no bytes could hold.
  std::string huge = Encode(Events{1, {{"a", true, false, 0}}});
  huge[10] = '\xff';
  huge[11] = '\xff';
  huge[12] = '\xff';
  huge[13] = '\x7f';
  EXPECT_FALSE(DecodeEvents(huge));
  // Event numbers that would wrap.
  EXPECT_FALSE(DecodeEvents(Encode(Events{UINT64_MAX, {{"a", true, false, 0}}})));
  EXPECT_FALSE(DecodeEvents(Encode(Events{5, {}}))) << "an empty batch";
}

TEST(ClusterWire, TokensAreSubjectSafe) {
  EXPECT_EQ(Token("acme"), "acme");
  EXPECT_EQ(Token("a.b"), "a~b");
  EXPECT_EQ(Token("host.example.com:8080"), "host~example~com:8080");
  EXPECT_EQ(Token("a b*>"), "a_b__");
  EXPECT_EQ(Token(""), "_");
}

}  // namespace
}  // namespace onlined::cluster
