// The store's disk failing under the server (store_faults: the fault VFS):
// a send that hits the fault is refused (503, or the error frame), nothing
// acknowledged is lost, the writer goes on once the fault is gone, and the
// outbox holds exactly what the acknowledged messages asked for.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>
#include <thread>

#include "harness.h"

namespace onlined::testing {
namespace {

namespace json = boost::json;

class StoreFaults : public ::testing::Test {
 protected:
  // No limit on a manager's sends: one test fills the WAL with them.
  // A short retry_after_ms: a session tries a failed receipt write again after it.
  StoreFaults()
      : server_("", "store_faults = \"none\"\nretry_after_ms = 300\n",
                "manager_sends_per_s = 0\n") {}

  // Store writes committed so far (a send to an offline user is followed by
  // a write of its own, after the 201: a fault must not be spent on it).
  int64_t Commits() { return MetricValue(server_.port(), "onlined_store_commits_total"); }
  void WaitStoreIdle() {
    int64_t last = Commits();
    for (int i = 0; i < 50; ++i) {
      std::this_thread::sleep_for(100ms);
      int64_t now = Commits();
      if (now == last) return;
      last = now;
    }
  }

  // Replaces the running faults (SIGHUP) and waits until they apply.
  void Faults(const std::string& spec) {
    WaitStoreIdle();
    WriteFaults(spec);
    size_t applied = Count(server_.Stderr(), "store faults now");
    server_.Signal(SIGHUP);
    for (int i = 0; i < 100 && Count(server_.Stderr(), "store faults now") == applied; ++i) {
      std::this_thread::sleep_for(20ms);
    }
    ASSERT_GT(Count(server_.Stderr(), "store faults now"), applied) << server_.Stderr();
  }
  // The faults the server reads at its next start or SIGHUP.
  void WriteFaults(const std::string& spec) {
    std::string text;
    {
      std::ifstream f(server_.config_path());
      std::stringstream ss;
      ss << f.rdbuf();
      text = ss.str();
    }
    size_t at = text.find("store_faults = ");
    ASSERT_NE(at, std::string::npos);
    text.replace(at, text.find('\n', at) - at, "store_faults = \"" + spec + "\"");
    std::ofstream(server_.config_path()) << text;
  }
  static size_t Count(const std::string& s, const std::string& needle) {
    size_t n = 0;
    for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
    return n;
  }
  std::string Manager() { return MintToken("manager", "m1"); }
  std::string OpenChat(const std::string& user) {
    HttpResult r =
        Http(server_.port(), "POST", "/v1/user-chats", "{\"user_id\":\"" + user + "\"}", Manager());
    EXPECT_EQ(r.status, 201) << r.body;
    return r.status == 201 ? std::string(r.Json().at("chat_id").as_string()) : "";
  }
  HttpResult Post(const std::string& chat, const std::string& text) {
    return Http(server_.port(), "POST", "/v1/user-chats/" + chat + "/messages",
                json::serialize(json::object{{"text", text}}), Manager());
  }
  std::vector<std::pair<int64_t, std::string>> Messages(const std::string& chat) {
    HttpResult r =
        Http(server_.port(), "GET", "/v1/user-chats/" + chat + "/messages?after_seq=0&limit=100",
             "", Manager());
    EXPECT_EQ(r.status, 200) << r.body;
    std::vector<std::pair<int64_t, std::string>> out;
    json::value body = r.Json();
    for (const auto& m : body.at("messages").as_array()) {
      out.emplace_back(m.at("seq").to_number<int64_t>(), std::string(m.at("text").as_string()));
    }
    return out;
  }

  ServerProcess server_;
};

TEST_F(StoreFaults, AFailedFsyncIsRefusedAndNeverAcknowledged) {
  ASSERT_EQ(Http(server_.port(), "PUT", "/v1/users/ann",
                 R"({"name":"Ann","phone":"+15550000001","sms_opt_in":true})", Manager())
                .status,
            200);
  std::string chat = OpenChat("ann");
  ASSERT_EQ(Post(chat, "a").status, 201);
  Faults("sync=1");
  HttpResult b = Post(chat, "b");
  EXPECT_EQ(b.status, 503) << b.body;
  EXPECT_EQ(b.Header("Retry-After"), "1");
  EXPECT_EQ(b.Json().at("error").at("code").as_string(), "store_unavailable");
  HttpResult c = Post(chat, "c");  // the fault was one fsync: the writer goes on
  ASSERT_EQ(c.status, 201) << c.body;
  using M = std::vector<std::pair<int64_t, std::string>>;
  EXPECT_EQ(Messages(chat), (M{{1, "a"}, {2, "c"}}));
  // The same after a crash: what was acknowledged is there, what was refused is not.
  server_.Signal(SIGKILL);
  server_.WaitExit(3000ms);
  server_.Restart();
  EXPECT_EQ(Messages(chat), (M{{1, "a"}, {2, "c"}}));
  // One notification for the chat, covering only acknowledged messages.
  HttpResult n = Http(server_.port(), "GET", "/v1/notifications?user_id=ann", "", Manager());
  ASSERT_EQ(n.status, 200);
  json::value body = n.Json();
  const auto& ns = body.at("notifications").as_array();
  ASSERT_EQ(ns.size(), 1u) << n.body;
  EXPECT_EQ(ns[0].at("first_seq").to_number<int64_t>(), 1);
  EXPECT_LE(ns[0].at("last_seq").to_number<int64_t>(), 2);
}

TEST_F(StoreFaults, AFullDiskRefusesEverySendUntilItClears) {
  std::string chat = OpenChat("bob");
  WsClient bob;
  ASSERT_TRUE(bob.Connect(server_.port()));
  ASSERT_TRUE(bob.Hello(MintToken("user", "bob")));
  ASSERT_EQ(Post(chat, "one").status, 201);
  Faults("full");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Post(chat, "lost " + std::to_string(i)).status, 503);
  bob.Send(R"({"type":"send","chat_id":")" + chat + R"(","client_msg_id":"b1","text":"from bob"})");
  auto err = bob.WaitFor("error");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->at("code").as_string(), "store_unavailable");
  // Presence never touches the store: it goes on.
  HttpResult q =
      Http(server_.port(), "POST", "/v1/presence/query", R"({"user_ids":["bob"]})", Manager());
  ASSERT_EQ(q.status, 200);
  EXPECT_TRUE(q.Json().at("users").at("bob").at("online").as_bool());
  Faults("none");
  ASSERT_EQ(Post(chat, "two").status, 201);
  bob.Send(R"({"type":"send","chat_id":")" + chat + R"(","client_msg_id":"b1","text":"from bob"})");
  EXPECT_TRUE(bob.WaitFor("sent"));
  using M = std::vector<std::pair<int64_t, std::string>>;
  EXPECT_EQ(Messages(chat), (M{{1, "one"}, {2, "two"}, {3, "from bob"}}));
}

// A receipt the store failed is not lost: the session writes it again after
// retry_after_ms, and the client is not asked to send it again.
TEST_F(StoreFaults, AReceiptTheStoreFailedIsWrittenOnceTheStoreIsBack) {
  std::string chat = OpenChat("cat");
  ASSERT_EQ(Post(chat, "one").status, 201);
  ASSERT_EQ(Post(chat, "two").status, 201);
  WsClient desk;
  ASSERT_TRUE(desk.Connect(server_.port()));
  ASSERT_TRUE(desk.Hello(Manager()));
  desk.AutoPing();
  WsClient cat;
  ASSERT_TRUE(cat.Connect(server_.port()));
  ASSERT_TRUE(cat.Hello(MintToken("user", "cat")));
  cat.AutoPing();
  Faults("full");
  cat.Send(R"({"type":"read","chat_id":")" + chat + R"(","seq":2})");
  EXPECT_FALSE(desk.WaitFor("receipt", 1500ms)) << "stored on a full disk";
  Faults("none");
  auto r = desk.WaitFor("receipt", 3000ms);
  ASSERT_TRUE(r) << "the receipt was lost with its failed write";
  EXPECT_EQ(r->at("ack_seq").as_int64(), 2);
  EXPECT_EQ(r->at("read_seq").as_int64(), 2);
  EXPECT_FALSE(cat.WaitFor("error", 10ms));
}

TEST_F(StoreFaults, TheNthWriteFailingCostsOnlyItsGroup) {
  std::string chat = OpenChat("cid");
  Faults("write=1");
  EXPECT_EQ(Post(chat, "x").status, 503);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(Post(chat, "m" + std::to_string(i)).status, 201);
  auto msgs = Messages(chat);
  ASSERT_EQ(msgs.size(), 5u);
  for (size_t i = 0; i < msgs.size(); ++i)
    EXPECT_EQ(msgs[i].first, static_cast<int64_t>(i + 1));  // gapless
}

// A checkpoint whose sync of the database file fails stops the checkpoints
// until a restart (vfs.h: the kernel reports a failed writeback once). The
// node goes on taking sends, each in the WAL, and says that it wants a
// restart: a gauge, a line in the log, a field in /readyz. After the restart
// every acknowledged message is there and the WAL is copied back again.
TEST_F(StoreFaults, AFailedSyncOfTheDatabaseFileStopsCheckpointsAndSaysSo) {
  std::string chat = OpenChat("dee");
  EXPECT_EQ(MetricValue(server_.port(), "onlined_store_checkpoints_stopped"), 0);
  Faults("dbsync=1");
  // The checkpointer wakes every 1,000 WAL pages: ~1 KiB messages fill them
  // in a few hundred sends.
  const std::string text(1000, 'x');
  int sent = 0;
  while (sent < 3000 && MetricValue(server_.port(), "onlined_store_checkpoints_stopped") != 1) {
    for (int i = 0; i < 50; ++i, ++sent) ASSERT_EQ(Post(chat, text).status, 201);
  }
  ASSERT_EQ(MetricValue(server_.port(), "onlined_store_checkpoints_stopped"), 1)
      << "after " << sent << " sends";
  EXPECT_NE(server_.Stderr().find("a sync of the database file failed"), std::string::npos);
  HttpResult ready = Http(server_.port(), "GET", "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, R"({"status":"ready","store":"checkpoints_stopped"})");
  // Still taking sends, each commit into the WAL, which is no longer copied
  // back: past the checkpointer's next wake-up (1,000 pages later) it would
  // have been copied and reused from its start, shorter than now.
  const int64_t wal = MetricValue(server_.port(), "onlined_store_wal_pages");
  for (int i = 0; i < 600; ++i, ++sent) ASSERT_EQ(Post(chat, text).status, 201);
  EXPECT_GT(MetricValue(server_.port(), "onlined_store_wal_pages"), wal + 1000);

  WriteFaults("none");
  server_.Signal(SIGKILL);
  server_.WaitExit(3000ms);
  server_.Restart();
  EXPECT_EQ(MetricValue(server_.port(), "onlined_store_checkpoints_stopped"), 0);
  EXPECT_EQ(Http(server_.port(), "GET", "/readyz").body, R"({"status":"ready"})");
  // Every acknowledged message, in order, none missing.
  int64_t seen = 0;
  for (;;) {
    HttpResult page =
        Http(server_.port(), "GET",
             "/v1/user-chats/" + chat + "/messages?limit=100&after_seq=" + std::to_string(seen), "",
             Manager());
    ASSERT_EQ(page.status, 200) << page.body;
    json::value body = page.Json();
    const auto& ms = body.at("messages").as_array();
    if (ms.empty()) break;
    for (const auto& m : ms) {
      ASSERT_EQ(m.at("seq").to_number<int64_t>(), seen + 1);
      ASSERT_EQ(m.at("text").as_string().size(), text.size());
      ++seen;
    }
  }
  EXPECT_EQ(seen, sent);
}

}  // namespace
}  // namespace onlined::testing
