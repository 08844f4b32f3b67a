// chat::Messenger: a message's path after its commit, without sockets: a
// real store (SQLite in a temp dir), a recording router, a recording SMS clock.
#include "chat/delivery.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <mutex>
#include <set>

#include "base/post_batch.h"
#include "store/testing/test_engine.h"

namespace onlined::chat {
namespace {

struct Recorder : presence::Router, SmsClock {
  std::mutex mu;
  std::set<std::string> online;  // users with a live session
  std::vector<std::string> published, delivered;
  std::vector<std::pair<int64_t, int64_t>> pulled;
  void DeliverToUser(presence::ChannelIdx, std::string user, presence::Payload frame, std::string,
                     int64_t, std::function<void(bool)> done) override {
    bool had;
    {
      std::lock_guard l(mu);
      delivered.push_back(user + " " + *frame);
      had = online.count(user) > 0;
    }
    if (done) done(had);
  }
  void PublishToChannel(presence::ChannelIdx, presence::Payload frame) override {
    std::lock_guard l(mu);
    published.push_back(*frame);
  }
  void PullEarlier(int64_t id, int64_t due) override {
    std::lock_guard l(mu);
    pulled.emplace_back(id, due);
  }
};

class MessengerTest : public ::testing::Test {
 protected:
  MessengerTest()
      : loops_(1),
        metrics_(1),
        store_([this](bool w) { return engine_.Open(w); }, {}, metrics_),
        messenger_(loops_, metrics_, store_, rec_, &rec_) {
    loops_.Start();
    std::promise<void> opened;
    store_.Write<bool>(
        [](store::Db& db) {
          bool created = false;
          OpenChat(db, "acme", "ann", 1000, created);
          return true;
        },
        [&opened](store::Outcome<bool>) { opened.set_value(); });
    opened.get_future().wait();
  }
  ~MessengerTest() override {
    loops_.Stop();
    store_.Stop();
  }

  store::Outcome<SendResult> SendAndWait(SendInput in) {
    std::promise<store::Outcome<SendResult>> p;
    messenger_.Send(in, 0, 0, [&p](store::Outcome<SendResult> o) { p.set_value(std::move(o)); });
    return p.get_future().get();
  }
  SendInput Manager(const std::string& text, const std::string& key = "") {
    SendInput in;
    in.channel = "acme";
    in.user_id = "ann";
    in.from = "manager";
    in.sender_id = "m1";
    in.text = text;
    in.idem_scope = "manager:m1";
    in.idem_key = key;
    in.body_hash = BodyHash("", text);
    in.now = 5000;
    in.schedule_sms = true;
    in.sms_delay_ms = 120000;
    in.ack_timeout_ms = 10000;
    return in;
  }
  std::string ChatId() {
    std::promise<std::string> p;
    store_.Read<std::string>(
        [](store::Db& db) { return db.FindChatOfUser("acme", "ann")->chat_id; },
        [&p](store::Outcome<std::string> o) { p.set_value(*o.value); });
    return p.get_future().get();
  }

  store::testing::TestEngine engine_;
  base::LoopGroup loops_;
  base::Metrics metrics_;
  store::Service store_;
  Recorder rec_;
  Messenger messenger_;
};

TEST_F(MessengerTest, AManagersMessageToAnOfflineUserReachesTheDesksAndPullsTheSmsEarlier) {
  SendInput in = Manager("hello");
  in.chat_id = ChatId();
  auto o = SendAndWait(in);
  ASSERT_TRUE(o.ok()) << o.error;
  ASSERT_EQ(o.value->status, SendStatus::kCreated);
  std::lock_guard l(rec_.mu);
  ASSERT_EQ(rec_.published.size(), 1u);
  EXPECT_NE(rec_.published[0].find("\"text\":\"hello\""), std::string::npos);
  ASSERT_EQ(rec_.delivered.size(), 1u);
  EXPECT_EQ(rec_.delivered[0], "ann " + rec_.published[0]);  // one encoding for both
  ASSERT_EQ(rec_.pulled.size(), 1u);
  EXPECT_EQ(rec_.pulled[0].first, o.value->notification_id);
  EXPECT_EQ(rec_.pulled[0].second, o.value->message.created_at + 120000);
}

// The writer runs a commit's completions in one PostBatch: the replies and
// deliveries of its sends reach each loop as one handler (base/post_batch.h).
TEST_F(MessengerTest, ACommitsCompletionsPostToTheLoopsInOneBatch) {
  std::promise<bool> active;
  store_.Write<bool>(
      [](store::Db&) { return true; },
      [&active](store::Outcome<bool>) { active.set_value(base::PostBatch::Active()); });
  EXPECT_TRUE(active.get_future().get());
  EXPECT_FALSE(base::PostBatch::Active());  // this thread's own posts are not held
}

TEST_F(MessengerTest, AnOnlineUserLeavesTheSmsWhereItIs) {
  rec_.online.insert("ann");
  SendInput in = Manager("are you there");
  in.chat_id = ChatId();
  ASSERT_TRUE(SendAndWait(in).ok());
  std::lock_guard l(rec_.mu);
  EXPECT_EQ(rec_.delivered.size(), 1u);
  EXPECT_TRUE(rec_.pulled.empty());
}

TEST_F(MessengerTest, AUsersMessageSchedulesNoSms) {
  SendInput in;
  in.channel = "acme";
  in.user_id = in.sender_id = "ann";
  in.from = "user";
  in.text = "hi";
  in.idem_scope = "user:ann";
  in.now = 6000;
  auto o = SendAndWait(in);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o.value->notification_id, 0);
  std::lock_guard l(rec_.mu);
  EXPECT_EQ(rec_.published.size(), 1u);
  EXPECT_EQ(rec_.delivered.size(), 1u);  // the user's other tabs
  EXPECT_TRUE(rec_.pulled.empty());
}

TEST_F(MessengerTest, ARetryIsAnsweredButNotDeliveredTwice) {
  SendInput in = Manager("once", "k1");
  in.chat_id = ChatId();
  auto a = SendAndWait(in);
  auto b = SendAndWait(in);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(b.value->status, SendStatus::kDuplicate);
  EXPECT_EQ(a.value->message.id, b.value->message.id);
  std::lock_guard l(rec_.mu);
  EXPECT_EQ(rec_.published.size(), 1u);
  EXPECT_EQ(rec_.delivered.size(), 1u);
}

TEST_F(MessengerTest, NoSuchChatIsDeliveredNowhere) {
  SendInput in = Manager("lost");
  in.chat_id = "c_nope";
  auto o = SendAndWait(in);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o.value->status, SendStatus::kNoChat);
  std::lock_guard l(rec_.mu);
  EXPECT_TRUE(rec_.published.empty());
  EXPECT_TRUE(rec_.delivered.empty());
}

TEST_F(MessengerTest, AReceiptReachesTheDesksOnceCommittedAndAStrangersChatNowhere) {
  SendInput in = Manager("hello");
  in.chat_id = ChatId();
  ASSERT_TRUE(SendAndWait(in).ok());
  auto receipt = [this](const std::string& user, std::vector<ReceiptMarks> marks) {
    std::promise<store::Outcome<Messenger::ReceiptResults>> p;
    messenger_.Receipt(
        {"acme", user, std::move(marks)}, 0, 0,
        [&p](store::Outcome<Messenger::ReceiptResults> o) { p.set_value(std::move(o)); });
    return p.get_future().get();
  };
  // One write for two chats of a session: ann's, and one that is nobody's.
  auto read = receipt("ann", {{ChatId(), 1, 1}, {"c_nope", 1, 0}});
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read.value->size(), 2u);
  ASSERT_TRUE((*read.value)[0].has_value());
  EXPECT_EQ((*read.value)[0]->read, 1);
  EXPECT_EQ((*read.value)[0]->ack, 1) << "a read is also an ack";
  EXPECT_FALSE((*read.value)[1].has_value()) << "no such chat";
  auto stranger = receipt("bob", {{ChatId(), 1, 0}});
  ASSERT_TRUE(stranger.ok());
  ASSERT_EQ(stranger.value->size(), 1u);
  EXPECT_FALSE((*stranger.value)[0].has_value()) << "not bob's chat";
  std::lock_guard l(rec_.mu);
  ASSERT_EQ(rec_.published.size(), 2u);  // the message, then ann's receipt; nothing else
  EXPECT_NE(rec_.published[1].find("\"receipt\""), std::string::npos) << rec_.published[1];
}

}  // namespace
}  // namespace onlined::chat
