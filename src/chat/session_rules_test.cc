// A session's store rules (replay, receipts) and the webhooks' (inbound SMS,
// status callbacks), on the real SQLite engine in a temporary directory.
#include "chat/session_rules.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>

#include "chat/messages.h"
#include "notify/webhook_rules.h"
#include "store/testing/test_engine.h"

namespace onlined::chat {
namespace {

class RulesTest : public ::testing::Test {
 protected:
  RulesTest() : db_(engine_.Open(true)) {}
  std::string Chat(const std::string& user) {
    bool created = false;
    return OpenChat(*db_, "acme", user, ++now_, created).chat_id;
  }
  void Post(const std::string& chat, const std::string& text) {
    SendInput in;
    in.channel = "acme";
    in.chat_id = chat;
    in.from = "manager";
    in.sender_id = "m1";
    in.text = text;
    in.now = ++now_;
    Send(*db_, in);
  }
  store::testing::TestEngine engine_;
  std::unique_ptr<store::Db> db_;
  int64_t now_ = 1000;
};

TEST_F(RulesTest, MissedIsWhatFollowsTheResumePointPerChat) {
  std::string c = Chat("ann");
  for (int i = 1; i <= 5; ++i) Post(c, "m" + std::to_string(i));
  auto all = Missed(*db_, "acme", "ann", {});
  ASSERT_EQ(all.size(), 5u);
  auto after3 = Missed(*db_, "acme", "ann", {{c, 3}});
  ASSERT_EQ(after3.size(), 2u);
  EXPECT_EQ(after3[0].seq, 4);
  EXPECT_EQ(after3[1].seq, 5);
  EXPECT_TRUE(Missed(*db_, "acme", "ann", {{c, 5}}).empty());
  EXPECT_TRUE(Missed(*db_, "acme", "bob", {}).empty());
  EXPECT_TRUE(Missed(*db_, "other", "ann", {}).empty()) << "channels never see each other's chats";
}

TEST_F(RulesTest, ReceiptsMoveForwardOnlyAndOnlyOnTheUsersOwnChat) {
  std::string c = Chat("ann");
  for (int i = 1; i <= 4; ++i) Post(c, "m");
  auto m = Receipt(*db_, "acme", "ann", {c, 3, 0}, ++now_);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->ack, 3);
  EXPECT_EQ(m->read, 0);
  m = Receipt(*db_, "acme", "ann", {c, 2, 2}, ++now_);  // read 2: ack stays 3
  EXPECT_EQ(m->ack, 3);
  EXPECT_EQ(m->read, 2);
  m = Receipt(*db_, "acme", "ann", {c, 1, 1}, ++now_);  // never backward
  EXPECT_EQ(m->read, 2);
  EXPECT_FALSE(Receipt(*db_, "acme", "bob", {c, 4, 4}, ++now_)) << "not bob's chat";
  EXPECT_FALSE(Receipt(*db_, "other", "ann", {c, 4, 4}, ++now_)) << "not this channel's chat";
}

// A read is an ack: a receipt that reads up to a message gives it, and every
// one before it not yet acked, the time of that receipt, once. A later ack
// leaves the times as they are; one past the last message marks nothing.
TEST_F(RulesTest, AReadReceiptAcksTheMessagesItPassesOnce) {
  std::string c = Chat("ann");
  for (int i = 1; i <= 4; ++i) Post(c, "m");
  auto m = Receipt(*db_, "acme", "ann", {c, 1, 0}, 100);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->ack, 1);
  m = Receipt(*db_, "acme", "ann", {c, 3, 3}, 200);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->ack, 3);
  EXPECT_EQ(m->read, 3);
  m = Receipt(*db_, "acme", "ann", {c, 9, 0}, 250);  // past the last message
  ASSERT_TRUE(m);
  EXPECT_EQ(m->ack, 3);
  EXPECT_FALSE(db_->GetMessage(c, 4)->acked_at) << "an ignored ack marked a message";
  m = Receipt(*db_, "acme", "ann", {c, 4, 0}, 300);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->ack, 4);
  EXPECT_EQ(m->read, 3);
  const int64_t want[] = {100, 200, 200, 300};
  for (int64_t seq = 1; seq <= 4; ++seq) {
    auto msg = db_->GetMessage(c, seq);
    ASSERT_TRUE(msg && msg->acked_at) << seq;
    EXPECT_EQ(*msg->acked_at, want[seq - 1]) << seq;
  }
}

// The marks a session merged: the ack and the read of one chat in one
// receipt; the ack mark rises to the higher of the two.
TEST_F(RulesTest, OneReceiptCarriesAnAckAndAReadMark) {
  std::string c = Chat("ann");
  for (int i = 1; i <= 5; ++i) Post(c, "m");
  auto m = Receipt(*db_, "acme", "ann", {c, 4, 2}, 100);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->ack, 4);
  EXPECT_EQ(m->read, 2);
  m = Receipt(*db_, "acme", "ann", {c, 0, 5}, 200);  // a read alone is an ack too
  ASSERT_TRUE(m);
  EXPECT_EQ(m->ack, 5);
  EXPECT_EQ(m->read, 5);
  EXPECT_EQ(*db_->GetMessage(c, 4)->acked_at, 100);
  EXPECT_EQ(*db_->GetMessage(c, 5)->acked_at, 200);
}

// A merged ack past the last message is ignored; the read merged with it
// still raises the ack mark to itself: the read is never above the ack.
TEST_F(RulesTest, AnAckPastTheLastMessageLeavesTheReadAnAck) {
  std::string c = Chat("ann");
  for (int i = 1; i <= 5; ++i) Post(c, "m");
  auto m = Receipt(*db_, "acme", "ann", {c, 1000, 4}, 100);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->read, 4);
  EXPECT_EQ(m->ack, 4);
  EXPECT_EQ(*db_->GetMessage(c, 4)->acked_at, 100);
  EXPECT_FALSE(db_->GetMessage(c, 5)->acked_at);
}

TEST_F(RulesTest, AnInboundSmsIsAppliedOnce) {
  db_->PutUser({"acme", "ann", "Ann", "+15550001", true, ++now_});
  EXPECT_EQ(notify::ApplyInboundSms(*db_, "SM1", "+15550001", false, ++now_), 1);
  EXPECT_EQ(notify::ApplyInboundSms(*db_, "SM2", "+15550001", true, ++now_), 1);
  EXPECT_EQ(notify::ApplyInboundSms(*db_, "SM1", "+15550001", false, ++now_), -1) << "a replay";
  EXPECT_TRUE(db_->GetUser("acme", "ann")->sms_opt_in);
  EXPECT_EQ(notify::ApplyInboundSms(*db_, "SM3", "+15559999", false, ++now_), 0)
      << "nobody has that phone";
}

TEST_F(RulesTest, StatusCallbacksMoveForwardNeverBackward) {
  std::string c = Chat("ann");
  store::Notification n;
  n.channel = "acme";
  n.user_id = "ann";
  n.chat_id = c;
  n.first_seq = n.last_seq = 1;
  n.state = store::NotifyState::kSent;
  n.created_at = ++now_;
  n.id = db_->InsertNotification(n);
  n.provider_sid = "SMx";
  n.provider_status = "queued";
  db_->UpdateNotification(n);
  EXPECT_TRUE(notify::ApplyStatusCallback(*db_, "SMx", "delivered", "", ++now_));
  EXPECT_TRUE(notify::ApplyStatusCallback(*db_, "SMx", "sent", "", ++now_));
  EXPECT_EQ(db_->GetNotification(n.id)->provider_status, "delivered");
  EXPECT_FALSE(notify::ApplyStatusCallback(*db_, "SMnone", "sent", "", ++now_));
}

TEST_F(RulesTest, AnUndeliveredStatusFailsTheNotificationWithTheCode) {
  std::string c = Chat("bob");
  store::Notification n;
  n.channel = "acme";
  n.user_id = "bob";
  n.chat_id = c;
  n.first_seq = n.last_seq = 1;
  n.state = store::NotifyState::kSent;
  n.created_at = ++now_;
  n.id = db_->InsertNotification(n);
  n.provider_sid = "SMy";
  db_->UpdateNotification(n);
  EXPECT_TRUE(notify::ApplyStatusCallback(*db_, "SMy", "undelivered", "30003", ++now_));
  auto got = db_->GetNotification(n.id);
  EXPECT_EQ(got->state, store::NotifyState::kFailed);
  EXPECT_EQ(got->reason, "provider_undelivered:30003");
}

// The replay/live merge: what a user's session sends, in what order.
struct Sent {
  std::vector<std::string> frames;
  void operator()(const ReplayMerge::Frame& f) { frames.push_back(*f); }
};

ReplayMerge::Frame F(const std::string& s) { return std::make_shared<const std::string>(s); }

TEST(ReplayMerge, LiveMessagesWaitForTheReplayAndGoOutOnce) {
  ReplayMerge m;
  Sent out;
  m.Start({{"c1", 2}});
  EXPECT_TRUE(m.replaying());
  m.Live(F("c1#4 live"), "c1", 4, std::ref(out));  // arrives while the replay is read
  m.Live(F("c2#1 live"), "c2", 1, std::ref(out));
  EXPECT_TRUE(out.frames.empty()) << "nothing goes out before the replay";
  // The replay read c1 after 2 (3 and 4: 4 also arrived live) and c2 from the start.
  m.Replayed(F("c1#3"), "c1", 3, std::ref(out));
  m.Replayed(F("c1#4"), "c1", 4, std::ref(out));
  m.Replayed(F("c2#1"), "c2", 1, std::ref(out));
  m.End(std::ref(out));
  EXPECT_EQ(out.frames, (std::vector<std::string>{"c1#3", "c1#4", "c2#1"}));
  EXPECT_FALSE(m.replaying());
  m.Live(F("c1#5"), "c1", 5, std::ref(out));
  m.Live(F("c1#5 again"), "c1", 5, std::ref(out));  // delivered twice (two routes): once
  m.Live(F("c3#1"), "c3", 1, std::ref(out));
  EXPECT_EQ(out.frames, (std::vector<std::string>{"c1#3", "c1#4", "c2#1", "c1#5", "c3#1"}));
}

TEST(ReplayMerge, NothingAtOrBelowWhatTheClientHas) {
  ReplayMerge m;
  Sent out;
  // A chat named twice counts with its highest seq; chats in any order.
  m.Start({{"zz", 1}, {"c1", 7}, {"c1", 9}, {"aa", 3}});
  ASSERT_EQ(m.marks().size(), 3u);
  EXPECT_EQ(m.marks()[1], (std::pair<std::string, int64_t>{"c1", 9}));
  m.Replayed(F("c1#9"), "c1", 9, std::ref(out));
  m.Replayed(F("aa#3"), "aa", 3, std::ref(out));
  m.Replayed(F("aa#4"), "aa", 4, std::ref(out));
  m.End(std::ref(out));
  EXPECT_EQ(out.frames, (std::vector<std::string>{"aa#4"}));
  EXPECT_FALSE(m.Take("c1", 8));
  EXPECT_TRUE(m.Take("c1", 10));
}

TEST(ReplayMerge, AThousandNamedChatsAndAFullReplay) {
  // A hello may name 1,000 chats and a replay bring 25,000 messages (50
  // chats of 500): all of them go out, each once.
  std::vector<std::pair<std::string, int64_t>> resume;
  for (int i = 0; i < 1000; ++i) resume.emplace_back("chat" + std::to_string(i), 0);
  ReplayMerge m;
  m.Start(resume);
  size_t sent = 0;
  auto count = [&](const ReplayMerge::Frame&) { ++sent; };
  auto frame = F("x");
  for (int c = 0; c < 50; ++c) {
    for (int seq = 1; seq <= 500; ++seq) m.Replayed(frame, "chat" + std::to_string(c), seq, count);
  }
  m.End(count);
  EXPECT_EQ(sent, 25000u);
}

TEST(ReceiptCoalescer, MarksOfAChatMergeIntoTheNewestAndOnlyMoveForward) {
  ReceiptCoalescer r;
  EXPECT_FALSE(r.ready());
  EXPECT_EQ(r.Add("c1", 3, false), ReceiptCoalescer::Added::kNew);
  EXPECT_EQ(r.Add("c1", 2, true), ReceiptCoalescer::Added::kMerged);
  EXPECT_EQ(r.Add("c1", 1, false), ReceiptCoalescer::Added::kMerged);
  EXPECT_EQ(r.Add("c2", 7, true), ReceiptCoalescer::Added::kNew);
  ASSERT_TRUE(r.ready());
  auto out = r.Take();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].chat_id, "c1");
  EXPECT_EQ(out[0].ack, 3);
  EXPECT_EQ(out[0].read, 2);
  EXPECT_EQ(out[1].chat_id, "c2");
  EXPECT_EQ(out[1].ack, 7);
  EXPECT_EQ(out[1].read, 7);
  EXPECT_FALSE(r.has_pending());
}

// One write at a time: what comes while it is in flight waits, merged, and
// is ready once it is done.
TEST(ReceiptCoalescer, WhatArrivesDuringAWriteWaitsForIt) {
  ReceiptCoalescer r;
  r.Add("c1", 1, false);
  auto first = r.Take();
  ASSERT_EQ(first.size(), 1u);
  for (int64_t seq = 2; seq <= 500; ++seq) r.Add("c1", seq, seq % 2 == 0);
  EXPECT_TRUE(r.has_pending());
  EXPECT_FALSE(r.ready()) << "a write is in flight";
  r.Done();
  ASSERT_TRUE(r.ready());
  auto next = r.Take();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].ack, 500);
  EXPECT_EQ(next[0].read, 500);
}

// A write that failed: its marks are pending again, merged with what came
// since, and ready to be tried again.
TEST(ReceiptCoalescer, AFailedWriteIsPendingAgain) {
  ReceiptCoalescer r;
  r.Add("c1", 5, true);
  r.Add("c2", 2, false);
  auto taken = r.Take();
  r.Add("c1", 7, false);
  r.Add("c3", 1, false);
  EXPECT_FALSE(r.ready());
  r.Restore(taken);
  ASSERT_TRUE(r.ready());
  auto again = r.Take();
  ASSERT_EQ(again.size(), 3u);
  std::sort(again.begin(), again.end(),
            [](const ReceiptMarks& a, const ReceiptMarks& b) { return a.chat_id < b.chat_id; });
  EXPECT_EQ(again[0].ack, 7);
  EXPECT_EQ(again[0].read, 5);
  EXPECT_EQ(again[1].chat_id, "c2");
  EXPECT_EQ(again[1].ack, 2);
  EXPECT_EQ(again[2].chat_id, "c3");
}

TEST(ReceiptCoalescer, PendingChatsAreCapped) {
  ReceiptCoalescer r;
  for (size_t i = 0; i < ReceiptCoalescer::kMaxChats; ++i) {
    EXPECT_EQ(r.Add("c" + std::to_string(i), 1, false), ReceiptCoalescer::Added::kNew);
  }
  EXPECT_EQ(r.Add("one-more", 1, false), ReceiptCoalescer::Added::kFull);
  EXPECT_EQ(r.Add("c0", 2, false), ReceiptCoalescer::Added::kMerged)
      << "a pending chat still merges";
  EXPECT_EQ(r.Take().size(), ReceiptCoalescer::kMaxChats);
  EXPECT_EQ(r.Add("one-more", 1, false), ReceiptCoalescer::Added::kNew);
}

}  // namespace
}  // namespace onlined::chat
