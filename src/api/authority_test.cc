// Session authority's parts without sockets: the revocation list, the
// loops' session lists, the keyed buckets, a channel's keys, and the
// store's revocations on both engines.
#include "api/authority.h"

#include <gtest/gtest.h>

#include "api/channels.h"
#include "base/token_bucket.h"
#include "store/testing/test_engine.h"

namespace onlined::api {
namespace {

store::Revocation Rev(const std::string& subject, int64_t at_s, int64_t expires_ms = 0,
                      const std::string& role = "manager") {
  return {"acme", role, subject, at_s, expires_ms};
}

auth::Claims Claims(const std::string& subject, int64_t iat,
                    auth::Role role = auth::Role::kManager) {
  auth::Claims c;
  c.channel = "acme";
  c.subject = subject;
  c.role = role;
  c.exp = 5000;
  c.iat = iat;
  return c;
}

TEST(Revocations, RefuseTokensIssuedUpToTheRevocationsSecond) {
  Revocations r;
  EXPECT_FALSE(r.Revoked(Claims("m1", 100)));
  EXPECT_TRUE(r.Add(Rev("m1", 100)));
  EXPECT_TRUE(r.Revoked(Claims("m1", 99)));
  EXPECT_TRUE(r.Revoked(Claims("m1", 100)));  // the same second: refused
  EXPECT_TRUE(r.Revoked(Claims("m1", 0)));    // no iat: cannot show it is newer
  EXPECT_FALSE(r.Revoked(Claims("m1", 101)));
  EXPECT_FALSE(r.Revoked(Claims("m2", 50)));
  EXPECT_FALSE(r.Revoked(Claims("m1", 50, auth::Role::kUser)));  // another role
  auth::Claims other = Claims("m1", 50);
  other.channel = "other";
  EXPECT_FALSE(r.Revoked(other));
  EXPECT_FALSE(r.Add(Rev("m1", 90)));  // an earlier one changes nothing
  EXPECT_TRUE(r.Add(Rev("m1", 120)));
  EXPECT_TRUE(r.Revoked(Claims("m1", 110)));
}

// A read of the store that began before a revocation was added here must not
// undo it; only expiry removes one.
TEST(Revocations, MergeAddsAndExpiresButNeverDropsANewerOne) {
  Revocations r;
  r.Add(Rev("m1", 100));
  auto changed = r.Merge({Rev("m2", 100, 10'000)}, 5'000);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].subject, "m2");
  EXPECT_TRUE(r.Revoked(Claims("m1", 50))) << "a merge without m1 dropped it";
  EXPECT_TRUE(r.Revoked(Claims("m2", 50)));
  EXPECT_TRUE(r.Merge({Rev("m2", 100, 10'000)}, 6'000).empty()) << "nothing new";
  EXPECT_EQ(r.Merge({Rev("m2", 130, 10'000)}, 6'000).size(), 1u) << "a later one is new";
  r.Merge({}, 10'000);  // m2 expired
  EXPECT_FALSE(r.Revoked(Claims("m2", 50)));
  EXPECT_TRUE(r.Revoked(Claims("m1", 50)));  // kept for good (expires 0)
  EXPECT_EQ(r.size(), 1u);
}

struct Probe final : LiveSession {
  std::vector<std::string>* seen;
  LiveSessions* list;
  std::string name;
  bool leave = false;
  Probe(std::vector<std::string>* s, LiveSessions* l, std::string n)
      : seen(s), list(l), name(std::move(n)) {}
  void Recheck(const Sweep&) override {
    seen->push_back(name);
    if (leave) list->Unlink(0, this);  // as a session that ends does
  }
};

TEST(LiveSessions, ASweepSeesEverySessionAndSurvivesOnesThatLeave) {
  LiveSessions list(2);
  std::vector<std::string> seen;
  Probe a(&seen, &list, "a"), b(&seen, &list, "b"), c(&seen, &list, "c");
  b.leave = true;
  for (Probe* p : {&a, &b, &c}) list.Link(0, p);
  list.Link(0, &a);  // twice: still once
  list.RecheckAll(0, {});
  EXPECT_EQ(seen.size(), 3u);
  seen.clear();
  list.RecheckAll(0, {});
  EXPECT_EQ(seen, (std::vector<std::string>{"c", "a"})) << "b left, the others stay";
  list.Unlink(0, &a);
  list.Unlink(0, &a);  // twice: harmless
  list.Unlink(0, &c);
  seen.clear();
  list.RecheckAll(0, {});
  list.RecheckAll(1, {});
  EXPECT_TRUE(seen.empty());
}

TEST(KeyedBuckets, EachKeyHasItsOwnPaceAndFullOnesAreForgotten) {
  base::KeyedBuckets b;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(b.Take("u1", 1, 3, 0), 0);
  const int64_t wait = b.Take("u1", 1, 3, 0);
  EXPECT_GT(wait, 0);
  EXPECT_LE(wait, 1001);
  EXPECT_EQ(b.Take("u2", 1, 3, 0), 0) << "another key is not held back";
  EXPECT_EQ(b.Take("u1", 1, 3, 1000), 0) << "one a second";
  EXPECT_EQ(b.Take("u1", 0, 3, 1000), 0) << "rate 0: no limit";
  // Settings changed: the same bucket takes them.
  EXPECT_GT(b.Take("u1", 1, 3, 1000), 0);
  EXPECT_EQ(b.Take("u1", 1000, 3, 1002), 0);
  // Many keys that refill are dropped as the stripes are pruned.
  for (int i = 0; i < 100000; ++i) b.Take("k" + std::to_string(i), 10, 1, 100000 + i);
  EXPECT_LT(b.size(), 50000u);
}

TEST(ChannelKeys, TheKidChoosesAndTheOnlyKeyServesTokensWithout) {
  config::Channel both;
  both.id = "acme";
  both.secret = "old-secret-0123456789";
  both.keys = {{"k2", "new-secret-0123456789"}};
  config::Channel keys_only;
  keys_only.id = "two";
  keys_only.keys = {{"a", "aaaaaaaaaaaaaaaa"}, {"b", "bbbbbbbbbbbbbbbb"}};
  config::Channel one;
  one.id = "one";
  one.keys = {{"a", "aaaaaaaaaaaaaaaa"}};
  ChannelTable t({both, keys_only, one}, nullptr);
  auth::TokenError err;
  const ChannelEntry* e = t.Find("acme");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(*e->FindKey(nullptr, err).secret, "old-secret-0123456789");
  EXPECT_EQ(*e->FindKey("k2", err).secret, "new-secret-0123456789");
  EXPECT_EQ(e->FindKey("", err).secret, nullptr) << "the secret has no kid to name";
  EXPECT_EQ(e->FindKey("k3", err).secret, nullptr);
  EXPECT_EQ(err.code, "bad_token");
  EXPECT_TRUE(e->HasKey(auth::KeyFingerprint("k2", "new-secret-0123456789")));
  EXPECT_FALSE(e->HasKey(auth::KeyFingerprint("k2", "another-secret-012345")));
  EXPECT_EQ(t.Find("two")->FindKey(nullptr, err).secret, nullptr) << "which of two?";
  EXPECT_EQ(*t.Find("two")->FindKey("b", err).secret, "bbbbbbbbbbbbbbbb");
  EXPECT_EQ(*t.Find("one")->FindKey(nullptr, err).secret, "aaaaaaaaaaaaaaaa");
}

// Both engines (registered again under pg/).
TEST(StoreRevocations, ALaterOneWinsAndExpiredOnesGo) {
  store::testing::TestEngine engine;
  auto db = engine.Open(true);
  db->PutRevocation(Rev("m1", 100, 50'000), 1'000);
  db->PutRevocation(Rev("m1", 90, 60'000), 1'000);  // earlier: nothing changes
  db->PutRevocation(Rev("u1", 100, 0, "user"), 1'000);
  auto all = db->Revocations(1'000);
  ASSERT_EQ(all.size(), 2u);
  for (const auto& r : all) {
    if (r.subject == "m1") {
      EXPECT_EQ(r.revoked_at, 100);
      EXPECT_EQ(r.expires_at, 50'000);
    } else {
      EXPECT_EQ(r.role, "user");
      EXPECT_EQ(r.expires_at, 0);
    }
  }
  db->PutRevocation(Rev("m1", 150, 70'000), 2'000);  // later: wins
  auto later = db->Revocations(2'000);
  for (const auto& r : later) {
    if (r.subject == "m1") {
      EXPECT_EQ(r.revoked_at, 150);
    }
  }
  EXPECT_EQ(db->Revocations(80'000).size(), 1u) << "expired ones are not listed";
  db->PutRevocation(Rev("m3", 200, 90'000), 80'000);  // and are dropped by the next put
  EXPECT_EQ(db->Revocations(0).size(), 2u);
}

}  // namespace
}  // namespace onlined::api
