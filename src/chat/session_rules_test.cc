// A session's store rules (replay, receipts) and the webhooks' (inbound SMS,
// status callbacks), on the real SQLite engine in a temporary directory.
#include "chat/session_rules.h"

#include <gtest/gtest.h>

#include <filesystem>

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
  auto m = Receipt(*db_, "acme", "ann", c, 3, false, ++now_);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->ack, 3);
  EXPECT_EQ(m->read, 0);
  m = Receipt(*db_, "acme", "ann", c, 2, true, ++now_);  // read 2: ack stays 3
  EXPECT_EQ(m->ack, 3);
  EXPECT_EQ(m->read, 2);
  m = Receipt(*db_, "acme", "ann", c, 1, true, ++now_);  // never backward
  EXPECT_EQ(m->read, 2);
  EXPECT_FALSE(Receipt(*db_, "acme", "bob", c, 4, true, ++now_)) << "not bob's chat";
  EXPECT_FALSE(Receipt(*db_, "other", "ann", c, 4, true, ++now_)) << "not this channel's chat";
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

}  // namespace
}  // namespace onlined::chat
