// Chat logic on a real engine: SQLite in a temporary directory, or a fresh
// PostgreSQL database (TEST_POSTGRES_DIR; store/testing/test_engine.h).
#include "chat/messages.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <future>
#include <set>

#include "base/metrics.h"
#include "store/service.h"
#include "store/testing/test_engine.h"

namespace onlined::chat {
namespace {

class ChatTest : public ::testing::Test {
 protected:
  ChatTest() : db_(engine_.Open(true)) {}
  SendInput Manager(const std::string& chat, const std::string& text, const std::string& key = "") {
    SendInput in;
    in.channel = "acme";
    in.chat_id = chat;
    in.from = "manager";
    in.sender_id = "m1";
    in.text = text;
    in.idem_scope = "manager";
    in.idem_key = key;
    in.body_hash = BodyHash(chat, text);
    in.now = ++now_;
    in.schedule_sms = true;
    return in;
  }
  store::testing::TestEngine engine_;
  std::unique_ptr<store::Db> db_;
  int64_t now_ = 1000;
};

TEST_F(ChatTest, SeqHasNoGapsAndChatsAreSeparate) {
  bool created = false;
  store::Chat a = OpenChat(*db_, "acme", "alice", 1, created);
  EXPECT_TRUE(created);
  store::Chat again = OpenChat(*db_, "acme", "alice", 2, created);
  EXPECT_FALSE(created);
  EXPECT_EQ(a.chat_id, again.chat_id);
  store::Chat b = OpenChat(*db_, "acme", "bob", 3, created);
  for (int i = 1; i <= 5; ++i)
    EXPECT_EQ(Send(*db_, Manager(a.chat_id, "a" + std::to_string(i))).message.seq, i);
  EXPECT_EQ(Send(*db_, Manager(b.chat_id, "b1")).message.seq, 1);
  auto msgs = db_->ListMessages(a.chat_id, 2, 100);
  ASSERT_EQ(msgs.size(), 3u);
  EXPECT_EQ(msgs[0].seq, 3);
  EXPECT_EQ(msgs[2].text, "a5");
  // Another channel cannot see the chat.
  EXPECT_EQ(Send(*db_,
                 [&] {
                   auto in = Manager(a.chat_id, "x");
                   in.channel = "other";
                   return in;
                 }())
                .status,
            SendStatus::kNoChat);
}

TEST_F(ChatTest, IdempotencyKeyReturnsTheSameMessageOrConflicts) {
  bool created;
  store::Chat c = OpenChat(*db_, "acme", "alice", 1, created);
  SendResult first = Send(*db_, Manager(c.chat_id, "hi", "k1"));
  SendResult retry = Send(*db_, Manager(c.chat_id, "hi", "k1"));
  EXPECT_EQ(retry.status, SendStatus::kDuplicate);
  EXPECT_EQ(retry.message.id, first.message.id);
  EXPECT_EQ(retry.message.seq, first.message.seq);
  EXPECT_EQ(Send(*db_, Manager(c.chat_id, "different", "k1")).status, SendStatus::kConflict);
  EXPECT_EQ(db_->ListMessages(c.chat_id, 0, 10).size(), 1u);
}

TEST_F(ChatTest, UserSendOpensItsChatAndCannotWriteInOthers) {
  SendInput in;
  in.channel = "acme";
  in.from = "user";
  in.user_id = in.sender_id = "carol";
  in.text = "help";
  in.now = 5;
  SendResult r = Send(*db_, in);
  EXPECT_EQ(r.status, SendStatus::kCreated);
  EXPECT_TRUE(r.chat_created);
  bool created;
  store::Chat other = OpenChat(*db_, "acme", "dave", 6, created);
  in.chat_id = other.chat_id;
  EXPECT_EQ(Send(*db_, in).status, SendStatus::kNoChat);
  auto chat = db_->GetChat("acme", r.message.chat_id);
  ASSERT_TRUE(chat);
  EXPECT_EQ(chat->unread, 1);
}

TEST_F(ChatTest, ManagerMessagesJoinOneScheduledNotification) {
  bool created;
  store::Chat c = OpenChat(*db_, "acme", "alice", 1, created);
  int64_t n1 = Send(*db_, Manager(c.chat_id, "one")).notification_id;
  int64_t n2 = Send(*db_, Manager(c.chat_id, "two")).notification_id;
  EXPECT_NE(n1, 0);
  EXPECT_EQ(n1, n2);
  auto n = db_->GetNotification(n1);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->first_seq, 1);
  EXPECT_EQ(n->last_seq, 2);
  EXPECT_EQ(n->state, store::NotifyState::kScheduled);
  // Once it is no longer scheduled, the next message starts a new one.
  n->state = store::NotifyState::kSent;
  db_->UpdateNotification(*n);
  EXPECT_NE(Send(*db_, Manager(c.chat_id, "three")).notification_id, n1);
}

// A send joins its chat's newest notification while that one waits for its
// time, through every change of state the scheduler makes (claims, waits,
// results), and every read of a notification shows its joins.
TEST_F(ChatTest, SendsJoinTheNewestNotificationWhileItWaits) {
  bool created;
  store::Chat c = OpenChat(*db_, "acme", "alice", 1, created);
  auto last = [&](int64_t id) {
    auto n = db_->GetNotification(id);
    EXPECT_TRUE(n);
    return n ? n->last_seq : -1;
  };
  auto set_state = [&](int64_t id, store::NotifyState state, int64_t due_at) {
    auto n = db_->GetNotification(id);
    ASSERT_TRUE(n);
    n->state = state;
    n->due_at = due_at;
    n->updated_at = ++now_;
    db_->UpdateNotification(*n);
  };
  const int64_t n1 = Send(*db_, Manager(c.chat_id, "one")).notification_id;
  SendInput two = Manager(c.chat_id, "two");
  EXPECT_EQ(Send(*db_, two).notification_id, n1);
  auto seen = db_->GetNotification(n1);
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->last_seq, 2);
  EXPECT_EQ(seen->updated_at, two.now);
  auto of_user = db_->NotificationsOfUser("acme", "alice", 10);
  ASSERT_EQ(of_user.size(), 1u);
  EXPECT_EQ(of_user[0].last_seq, 2);
  EXPECT_EQ(of_user[0].updated_at, two.now);
  auto due = db_->ClaimDue(INT64_MAX / 2, 10);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].last_seq, 2);
  // Its time moved earlier (the user went offline): it keeps its joins.
  set_state(n1, store::NotifyState::kScheduled, 10);
  EXPECT_EQ(last(n1), 2);
  EXPECT_EQ(Send(*db_, Manager(c.chat_id, "three")).notification_id, n1);
  EXPECT_EQ(last(n1), 3);
  // Claimed (sending): the next send starts another, which the one after joins.
  set_state(n1, store::NotifyState::kSending, 0);
  const int64_t n2 = Send(*db_, Manager(c.chat_id, "four")).notification_id;
  EXPECT_NE(n2, n1);
  EXPECT_EQ(Send(*db_, Manager(c.chat_id, "five")).notification_id, n2);
  EXPECT_EQ(last(n1), 3);
  EXPECT_EQ(last(n2), 5);
  // The older one waiting again (quiet hours) takes none of the newer one's.
  set_state(n1, store::NotifyState::kScheduled, 5000);
  EXPECT_EQ(Send(*db_, Manager(c.chat_id, "six")).notification_id, n2);
  EXPECT_EQ(last(n1), 3);
  EXPECT_EQ(last(n2), 6);
  // The user's own message joins nothing.
  SendInput user;
  user.channel = "acme";
  user.chat_id = c.chat_id;
  user.from = "user";
  user.user_id = user.sender_id = "alice";
  user.text = "hi";
  user.now = ++now_;
  EXPECT_EQ(Send(*db_, user).status, SendStatus::kCreated);
  EXPECT_EQ(last(n2), 6);
  // Claimed and waiting again itself (quiet hours): it takes sends again.
  set_state(n2, store::NotifyState::kSending, 0);
  set_state(n2, store::NotifyState::kScheduled, 6000);
  EXPECT_EQ(Send(*db_, Manager(c.chat_id, "eight")).notification_id, n2);
  EXPECT_EQ(last(n2), 8);
  // Sent: the next send starts a new one (the older waiting one stays as it is).
  set_state(n2, store::NotifyState::kSent, 10);
  EXPECT_EQ(last(n2), 8);
  const int64_t n3 = Send(*db_, Manager(c.chat_id, "nine")).notification_id;
  EXPECT_NE(n3, n1);
  EXPECT_NE(n3, n2);
  EXPECT_EQ(last(n3), 9);
  EXPECT_EQ(last(n1), 3);
  EXPECT_EQ(last(n2), 8);
}

TEST_F(ChatTest, AcksAndReadsOnlyMoveForward) {
  bool created;
  store::Chat c = OpenChat(*db_, "acme", "alice", 1, created);
  for (int i = 0; i < 3; ++i) Send(*db_, Manager(c.chat_id, "m"));
  EXPECT_EQ(db_->RaiseUserAck(c.chat_id, 2, 50), 2);
  EXPECT_EQ(db_->RaiseUserAck(c.chat_id, 1, 60), 2);
  EXPECT_EQ(db_->RaiseUserAck(c.chat_id, 9, 60), 2);  // beyond the last message: ignored
  auto third = db_->GetMessage(c.chat_id, 3);
  ASSERT_TRUE(third);
  EXPECT_FALSE(third->acked_at) << "an ignored ack marked a message";
  EXPECT_EQ(db_->RaiseUserRead(c.chat_id, 3), 3);
  auto m = db_->GetMessage(c.chat_id, 1);
  ASSERT_TRUE(m && m->acked_at);
  EXPECT_EQ(*m->acked_at, 50);
}

TEST(StoreService, GroupCommitKeepsEveryWriteAndOrder) {
  store::testing::TestEngine engine;
  base::Metrics metrics(0);
  {
    store::Service svc([&](bool w) { return engine.Open(w); }, {}, metrics);
    std::promise<std::string> chat_p;
    svc.Write<std::string>(
        [](store::Db& db) {
          bool created;
          return OpenChat(db, "acme", "alice", 1, created).chat_id;
        },
        [&](store::Outcome<std::string> o) { chat_p.set_value(*o.value); });
    std::string chat = chat_p.get_future().get();
    constexpr int kN = 2000;
    std::atomic<int> done{0};
    std::mutex mu;
    std::vector<int64_t> order;
    std::promise<void> all;
    for (int i = 0; i < kN; ++i) {
      svc.Write<SendResult>(
          [chat, i](store::Db& db) {
            SendInput in;
            in.channel = "acme";
            in.chat_id = chat;
            in.from = "manager";
            in.sender_id = "m";
            in.text = std::to_string(i);
            in.now = i;
            return Send(db, in);
          },
          [&](store::Outcome<SendResult> o) {
            {
              std::lock_guard lock(mu);
              order.push_back(o.value->message.seq);
            }
            if (++done == kN) all.set_value();
          });
    }
    all.get_future().wait();
    // Completions come in commit order: seq 1..N.
    for (int i = 0; i < kN; ++i) ASSERT_EQ(order[i], i + 1);
    std::string rendered = metrics.Render();
    auto pos = rendered.find("\nonlined_store_commits_total ");
    ASSERT_NE(pos, std::string::npos);
    long commits = std::stol(rendered.substr(pos + 29));
    EXPECT_LT(commits, kN);  // grouped: fewer commits than writes
  }
  auto db = engine.Open(false);
  bool any = false;
  for (const auto& c : db->ListChats("acme", std::nullopt, 10)) {
    any = true;
    EXPECT_EQ(c.last_seq, 2000);
    EXPECT_EQ(db->ListMessages(c.chat_id, 0, 5000).size(), 2000u);
  }
  EXPECT_TRUE(any);
}

// Sends queued together go to the engine together (Db::AppendMany, one
// pipeline on PostgreSQL); one that the engine fails fails alone.
TEST(StoreService, SendsInOneGroupCommitTogetherAndAFailingOneFailsAlone) {
  store::testing::TestEngine engine;
  base::Metrics metrics(0);
  store::Service svc([&](bool w) { return engine.Open(w); }, {}, metrics);
  std::promise<std::string> chat_p;
  svc.Write<std::string>(
      [](store::Db& db) {
        bool created;
        return OpenChat(db, "acme", "alice", 1, created).chat_id;
      },
      [&](store::Outcome<std::string> o) { chat_p.set_value(*o.value); });
  const std::string chat = chat_p.get_future().get();
  // Holds the writer so that what follows queues up as one group.
  std::promise<void> gate;
  auto gate_f = gate.get_future().share();
  svc.Write<int>(
      [gate_f](store::Db&) {
        gate_f.wait();
        return 0;
      },
      [](store::Outcome<int>) {});
  constexpr int kN = 300, kPoison = 150;
  std::mutex mu;
  std::vector<std::pair<int, int64_t>> done;  // (index, seq or -1)
  std::promise<void> all;
  for (int i = 0; i < kN; ++i) {
    store::AppendInput in;
    in.channel = "acme";
    in.from = i == kPoison ? "user" : "manager";
    in.chat_id = i == kPoison ? "" : chat;
    in.user_id = i == kPoison ? "zed" : "";
    in.new_chat_id = chat;  // taken: opening zed's chat under it fails in the engine
    in.sender_id = "m";
    in.text = std::to_string(i);
    in.message_id = NewId("m_");
    in.now = 10 + i;
    svc.Append(in, [&, i](store::Outcome<store::AppendResult> o) {
      std::lock_guard lock(mu);
      done.emplace_back(i, o.ok() ? o.value->message.seq : -1);
      if (done.size() == kN) all.set_value();
    });
  }
  gate.set_value();
  all.get_future().wait();
  std::set<int64_t> seqs;
  for (const auto& [i, seq] : done) {
    if (i == kPoison) {
      EXPECT_EQ(seq, -1) << "the failing send was reported stored";
    } else {
      EXPECT_GT(seq, 0) << "send " << i << " failed with its neighbour";
      seqs.insert(seq);
    }
  }
  EXPECT_EQ(seqs.size(), size_t{kN - 1});
  EXPECT_EQ(*seqs.rbegin(), kN - 1);  // gapless: the failed one took no seq
  // The same when the sends are the whole group (one unit, nothing else).
  std::promise<void> gate2;
  auto gate2_f = gate2.get_future().share();
  svc.Write<int>(
      [gate2_f](store::Db&) {
        gate2_f.wait();
        return 0;
      },
      [](store::Outcome<int>) {});
  std::promise<void> all2;
  std::vector<int64_t> seqs2;
  for (int i = 0; i < 5; ++i) {
    store::AppendInput in;
    in.channel = "acme";
    in.from = i == 2 ? "user" : "manager";
    in.chat_id = i == 2 ? "" : chat;
    in.user_id = i == 2 ? "zed" : "";
    in.new_chat_id = chat;
    in.sender_id = "m";
    in.text = "again " + std::to_string(i);
    in.message_id = NewId("m_");
    in.now = 1000 + i;
    svc.Append(in, [&](store::Outcome<store::AppendResult> o) {
      std::lock_guard lock(mu);
      seqs2.push_back(o.ok() ? o.value->message.seq : -1);
      if (seqs2.size() == 5) all2.set_value();
    });
  }
  gate2.set_value();
  all2.get_future().wait();
  std::sort(seqs2.begin(), seqs2.end());
  EXPECT_EQ(seqs2, (std::vector<int64_t>{-1, kN, kN + 1, kN + 2, kN + 3}));
  svc.Stop();
  auto db = engine.Open(false);
  EXPECT_EQ(db->ListMessages(chat, 0, 1000).size(), size_t{kN + 3});
  EXPECT_FALSE(db->FindChatOfUser("acme", "zed"));
}

TEST(StoreService, FullQueueRefusesAtOnce) {
  store::testing::TestEngine engine;
  base::Metrics metrics(0);
  store::Service::Options o;
  o.max_queue = 1;
  o.readers = 1;
  store::Service svc([&](bool w) { return engine.Open(w); }, o, metrics);
  std::atomic<int> refused{0}, ok{0};
  std::promise<void> gate;
  auto gate_f = gate.get_future().share();
  // The first write blocks the writer; the queue then holds one more.
  svc.Write<int>(
      [gate_f](store::Db&) {
        gate_f.wait();
        return 1;
      },
      [&](store::Outcome<int> r) { r.ok() ? ++ok : ++refused; });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  for (int i = 0; i < 5; ++i) {
    svc.Write<int>([](store::Db&) { return 1; },
                   [&](store::Outcome<int> r) { r.overloaded() ? ++refused : ++ok; });
  }
  EXPECT_EQ(refused.load(), 4);
  gate.set_value();
  svc.Stop();
  EXPECT_EQ(ok.load(), 2);
}

}  // namespace
}  // namespace onlined::chat
