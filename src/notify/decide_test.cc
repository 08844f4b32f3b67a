#include "notify/decide.h"

#include <gtest/gtest.h>

namespace onlined::notify {
namespace {

constexpr int64_t kMin = 60 * 1000;

// 2026-01-05 12:00:00 UTC, a Monday.
constexpr int64_t kNoon = 1767614400000;

class DecideTest : public ::testing::Test {
 protected:
  DecideTest() {
    p_.channel_name = "acme";
    p_.quiet.enabled = false;
    in_.n.first_seq = 1;
    in_.n.last_seq = 2;
    in_.chat.user_read_seq = 0;
    in_.user = store::UserProfile{"acme", "u", "U", "+15550001111", true, 0};
    in_.now = kNoon;
    in_.window = {Msg(1, "hello"), Msg(2, "are you there?")};
  }
  store::Message Msg(int64_t seq, std::string text, std::optional<int64_t> acked = std::nullopt) {
    store::Message m;
    m.seq = seq;
    m.from = "manager";
    m.text = std::move(text);
    m.created_at = kNoon - 5 * kMin;
    m.acked_at = acked;
    return m;
  }
  Policy p_;
  FireInput in_;
};

TEST_F(DecideTest, SendsOneSmsTellingOfAllUnread) {
  Decision d = Decide(in_, p_);
  ASSERT_EQ(d.action, Decision::Action::kSend);
  EXPECT_EQ(d.phone, "+15550001111");
  EXPECT_NE(d.body.find("2 new messages"), std::string::npos) << d.body;
  EXPECT_NE(d.body.find("are you there?"), std::string::npos) << d.body;
}

TEST_F(DecideTest, ReadMeansCancelled) {
  in_.chat.user_read_seq = 2;
  Decision d = Decide(in_, p_);
  EXPECT_EQ(d.action, Decision::Action::kCancel);
  EXPECT_EQ(d.reason, "read");
}

TEST_F(DecideTest, AckedInTimeMeansDelivered) {
  int64_t t = kNoon - 5 * kMin + 2000;
  in_.window = {Msg(1, "a", t), Msg(2, "b", t)};
  EXPECT_EQ(Decide(in_, p_).reason, "delivered");
}

TEST_F(DecideTest, AckedTooLateStillSends) {
  in_.window = {Msg(1, "a", kNoon - 5 * kMin + 60000), Msg(2, "b")};
  EXPECT_EQ(Decide(in_, p_).action, Decision::Action::kSend);
}

TEST_F(DecideTest, NoPhoneNoOptInRateLimit) {
  auto base = in_;
  in_.user->phone = "";
  EXPECT_EQ(Decide(in_, p_).reason, "no_phone");
  in_ = base;
  in_.user.reset();
  EXPECT_EQ(Decide(in_, p_).reason, "no_phone");
  in_ = base;
  in_.user->sms_opt_in = false;
  EXPECT_EQ(Decide(in_, p_).reason, "not_opted_in");
  in_ = base;
  in_.last_sms_at = kNoon - 3 * kMin;
  EXPECT_EQ(Decide(in_, p_).reason, "rate_limited");
  in_.last_sms_at = kNoon - 11 * kMin;
  EXPECT_EQ(Decide(in_, p_).action, Decision::Action::kSend);
}

TEST_F(DecideTest, QuietHoursWaitForTheirEnd) {
  p_.quiet = config::ParseQuietHours("11:00-13:30", "k");  // noon UTC is inside
  Decision d = Decide(in_, p_);
  ASSERT_EQ(d.action, Decision::Action::kWait);
  EXPECT_EQ(d.reason, "quiet_hours");
  EXPECT_EQ(d.wait_until, kNoon + 90 * kMin);
  p_.quiet = config::ParseQuietHours("21:00-08:00", "k");  // wraps midnight; noon is outside
  EXPECT_EQ(Decide(in_, p_).action, Decision::Action::kSend);
}

TEST_F(DecideTest, QuietHoursInTheChannelsTimeZone) {
  auto seoul = TimeZone::Load("Asia/Seoul");
  ASSERT_TRUE(seoul);
  p_.tz = seoul;  // noon UTC is 21:00 in Seoul (UTC+9)
  p_.quiet = config::ParseQuietHours("21:00-08:00", "k");
  Decision d = Decide(in_, p_);
  ASSERT_EQ(d.action, Decision::Action::kWait);
  EXPECT_EQ(d.wait_until, kNoon + 11 * 60 * kMin);  // 08:00 Seoul = 23:00 UTC
}

TEST(TimeZone, KnownOffsets) {
  auto ny = TimeZone::Load("America/New_York");
  ASSERT_TRUE(ny);
  EXPECT_EQ(ny->OffsetAt(kNoon / 1000), -5 * 3600);                // January: EST
  EXPECT_EQ(ny->OffsetAt(kNoon / 1000 + 180 * 86400), -4 * 3600);  // July: EDT
  EXPECT_EQ(TimeZone::Utc()->OffsetAt(0), 0);
  EXPECT_FALSE(TimeZone::Load("Mars/Olympus"));
  EXPECT_FALSE(TimeZone::Load("../../etc/passwd"));
}

}  // namespace
}  // namespace onlined::notify
