// Cluster mode end to end: three onlined nodes, each test with its own NATS
// cluster of three servers (scripts/nats-cluster.sh) and a new database on
// the run's PostgreSQL. Registered as cluster/* (tests/CMakeLists.txt).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "base/clock.h"
#include "harness.h"
#include "store/testing/test_engine.h"

namespace onlined::testing {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

std::string Manager() { return MintToken("manager", "m1"); }

bool IsPresence(const json::value& v, const std::string& user, bool online) {
  return v.at("user_id").as_string() == user && v.at("online").as_bool() == online;
}

int64_t Seq(const json::value& v) { return v.at("event_seq").as_int64(); }

int64_t MsSince(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

class ClusterTest : public ::testing::Test {
 protected:
  ClusterTest() : url_(store::testing::NewPostgresDatabase()) {}

  // A node whose first NATS server is `first` (it knows them all).
  std::unique_ptr<ServerProcess> Node(size_t first, const std::string& cluster_more = "") {
    std::string urls;
    for (size_t k = 0; k < nats_.size(); ++k) {
      if (!urls.empty()) urls += ", ";
      urls += "\"" + nats_.url((first + k) % nats_.size()) + "\"";
    }
    const std::string top =
        "store_engine = \"postgres\"\nstore_postgres_url = \"" + url_ + "\"\nnotify_tick_ms = 50\n";
    const std::string cluster = "[cluster]\nnats_urls = [" + urls + "]\n" + cluster_more;
    auto n = std::make_unique<ServerProcess>(cluster, top);
    return n;
  }

  static void WaitJoined(const ServerProcess& s) {
    for (int i = 0; i < 100; ++i) {
      HttpResult r = Http(s.port(), "GET", "/readyz", "", "");
      if (r.status == 200 && r.body.find("\"joined\"") != std::string::npos) return;
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "node on port " << s.port() << " did not join: " << s.Stderr();
  }

  // Three nodes, each on its own NATS server first, all joined.
  void StartThree(const std::string& cluster_more = "") {
    a_ = Node(0, cluster_more);
    b_ = Node(1, cluster_more);
    c_ = Node(2, cluster_more);
    WaitJoined(*a_);
    WaitJoined(*b_);
    WaitJoined(*c_);
  }

  static std::unique_ptr<WsClient> Desk(const ServerProcess& s, const std::string& extra = "") {
    auto c = std::make_unique<WsClient>();
    EXPECT_TRUE(c->Connect(s.port()));
    EXPECT_TRUE(c->Hello(Manager(), extra).has_value());
    c->AutoPing();
    return c;
  }

  static std::unique_ptr<WsClient> User(const ServerProcess& s, const std::string& user) {
    auto c = std::make_unique<WsClient>();
    EXPECT_TRUE(c->Connect(s.port()));
    EXPECT_TRUE(c->Hello(MintToken("user", user)).has_value());
    c->AutoPing();
    return c;
  }

  static json::value Query(const ServerProcess& s, const std::string& user) {
    HttpResult r = Http(s.port(), "POST", "/v1/presence/query", "{\"user_ids\":[\"" + user + "\"]}",
                        Manager());
    EXPECT_EQ(r.status, 200) << r.body;
    return r.Json().at("users").at(user);
  }

  // Whether `user` is online at `s`, asked until it is `want` or a second
  // has passed: a node's replica hears an event a few ms after a desk
  // elsewhere did.
  static bool OnlineSoon(const ServerProcess& s, const std::string& user, bool want) {
    bool online = !want;
    for (int i = 0; i < 20; ++i) {
      online = Query(s, user).at("online").as_bool();
      if (online == want) break;
      std::this_thread::sleep_for(50ms);
    }
    return online;
  }

  // A counter or gauge from the node's /metrics (summed over label sets).
  static int64_t Metric(const ServerProcess& s, const std::string& name) {
    HttpResult r = Http(s.port(), "GET", "/metrics", "", kMetricsToken);
    int64_t sum = 0;
    std::stringstream ss(r.body);
    for (std::string line; std::getline(ss, line);) {
      if (line.rfind(name, 0) != 0) continue;
      const char next = line.size() > name.size() ? line[name.size()] : ' ';
      if (next != ' ' && next != '{') continue;
      sum += std::stoll(line.substr(line.rfind(' ') + 1));
    }
    return sum;
  }

  // The next presence event of `user` at `desk`.
  static std::optional<json::value> Next(WsClient& desk, const std::string& user, Ms timeout) {
    return desk.WaitFor("presence", timeout,
                        [&](const json::value& v) { return v.at("user_id").as_string() == user; });
  }

  // A failure shows what the nodes said.
  void TearDown() override {
    if (!HasFailure()) return;
    for (const auto* n : {a_.get(), b_.get(), c_.get()}) {
      if (n == nullptr) continue;
      std::string e = n->Stderr();
      if (e.size() > 6000) e = "..." + e.substr(e.size() - 6000);
      std::printf("--- node on port %u:\n%s\n", n->port(), e.c_str());
    }
  }

  NatsCluster nats_{3};
  std::string url_;
  std::unique_ptr<ServerProcess> a_, b_, c_;
};

TEST_F(ClusterTest, OnlineOnOneNodeIsSeenOnEveryNodeWithTheSameEventSeq) {
  StartThree();
  auto db = Desk(*b_);
  auto dc = Desk(*c_);
  auto ann = User(*a_, "ann");
  auto eb = Next(*db, "ann", 3000ms);
  auto ec = Next(*dc, "ann", 3000ms);
  ASSERT_TRUE(eb && ec);
  EXPECT_TRUE(IsPresence(*eb, "ann", true));
  EXPECT_EQ(Seq(*eb), Seq(*ec)) << "one stream, one numbering";
  // Queries on any node answer from its replica.
  for (const ServerProcess* s : {a_.get(), b_.get(), c_.get()}) {
    json::value q = Query(*s, "ann");
    EXPECT_TRUE(q.at("online").as_bool()) << "port " << s->port();
    EXPECT_EQ(q.at("sessions").as_int64(), 1);
  }
  ann->Close();
  auto ob = Next(*db, "ann", 3000ms);
  auto oc = Next(*dc, "ann", 3000ms);
  ASSERT_TRUE(ob && oc);
  EXPECT_TRUE(IsPresence(*ob, "ann", false));
  EXPECT_EQ(Seq(*ob), Seq(*eb) + 1);
  EXPECT_EQ(Seq(*oc), Seq(*ob));
  EXPECT_FALSE(OnlineSoon(*c_, "ann", false));
}

TEST_F(ClusterTest, SessionsOnTwoNodesAreOneUserOnlineUntilBothEnd) {
  StartThree();
  auto dc = Desk(*c_);
  auto on_a = User(*a_, "bea");
  auto first = Next(*dc, "bea", 3000ms);
  ASSERT_TRUE(first && IsPresence(*first, "bea", true));
  auto on_b = User(*b_, "bea");
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(Query(*c_, "bea").at("sessions").as_int64(), 2);
  on_a->Close();
  // Still online: no event while the session on B lives, past the grace.
  EXPECT_FALSE(Next(*dc, "bea", 1500ms)) << "an event while a session still lived";
  EXPECT_TRUE(Query(*c_, "bea").at("online").as_bool());
  on_b->Close();
  auto off = Next(*dc, "bea", 3000ms);
  ASSERT_TRUE(off);
  EXPECT_TRUE(IsPresence(*off, "bea", false));
  EXPECT_EQ(Seq(*off), Seq(*first) + 1);
}

TEST_F(ClusterTest, AMessageSentThroughBReachesTheUserOnAAndEveryDeskOnce) {
  StartThree();
  auto da = Desk(*a_);
  auto db = Desk(*b_);
  auto dc = Desk(*c_);
  auto ann = User(*a_, "ann");
  ASSERT_TRUE(Next(*db, "ann", 3000ms));
  HttpResult chat = Http(b_->port(), "POST", "/v1/user-chats", "{\"user_id\":\"ann\"}", Manager());
  ASSERT_EQ(chat.status, 201) << chat.body;
  const std::string chat_id(chat.Json().at("chat_id").as_string());
  for (int i = 1; i <= 3; ++i) {
    HttpResult r = Http(b_->port(), "POST", "/v1/user-chats/" + chat_id + "/messages",
                        "{\"text\":\"hello " + std::to_string(i) + "\"}", Manager());
    ASSERT_EQ(r.status, 201) << r.body;
  }
  auto is_chat = [&](const json::value& v) { return v.at("chat_id").as_string() == chat_id; };
  for (WsClient* c : {ann.get(), da.get(), db.get(), dc.get()}) {
    for (int i = 1; i <= 3; ++i) {
      auto m = c->WaitFor("message", 3000ms, is_chat);
      ASSERT_TRUE(m) << "message " << i << " missing";
      EXPECT_EQ(m->at("seq").as_int64(), i) << "in seq order";
    }
    EXPECT_FALSE(c->WaitFor("message", 400ms, is_chat)) << "a message came twice";
  }
}

TEST_F(ClusterTest, SendsToOneChatThroughTwoNodesReachTheUserOnAThirdInSeqOrderOnce) {
  StartThree();
  auto ann = User(*c_, "ann");
  auto dc = Desk(*c_);
  std::this_thread::sleep_for(300ms);  // ann's session is known on a and b
  HttpResult chat = Http(a_->port(), "POST", "/v1/user-chats", "{\"user_id\":\"ann\"}", Manager());
  ASSERT_EQ(chat.status, 201) << chat.body;
  const std::string chat_id(chat.Json().at("chat_id").as_string());
  constexpr int kEach = 25;
  std::vector<std::thread> senders;
  for (const ServerProcess* s : {a_.get(), b_.get()}) {
    senders.emplace_back([&, s] {
      for (int i = 0; i < kEach; ++i) {
        const std::string key = std::to_string(s->port()) + "-" + std::to_string(i);
        HttpResult r;
        for (int tries = 0; tries < 20; ++tries) {
          r = Http(s->port(), "POST", "/v1/user-chats/" + chat_id + "/messages",
                   "{\"text\":\"" + key + "\"}", Manager(), {{"Idempotency-Key", key}});
          if (r.status != 503) break;
          std::this_thread::sleep_for(50ms);
        }
        EXPECT_EQ(r.status, 201) << r.body;
      }
    });
  }
  for (auto& t : senders) t.join();
  auto is_chat = [&](const json::value& v) { return v.at("chat_id").as_string() == chat_id; };
  for (int i = 1; i <= 2 * kEach; ++i) {
    auto m = ann->WaitFor("message", 3000ms, is_chat);
    ASSERT_TRUE(m) << "message " << i << " never came";
    ASSERT_EQ(m->at("seq").as_int64(), i) << "out of order or twice";
  }
  EXPECT_FALSE(ann->WaitFor("message", 500ms, is_chat)) << "a message came twice";
  std::printf("at the user's node: %lld gaps healed from the store, %lld duplicates dropped\n",
              static_cast<long long>(Metric(*c_, "onlined_cluster_delivery_gaps_total")),
              static_cast<long long>(Metric(*c_, "onlined_cluster_delivery_duplicates_total")));
}

TEST_F(ClusterTest, KillNineOfANodeTakesItsUsersOfflineWithinASecondPlusTheGrace) {
  StartThree();
  auto db = Desk(*b_);
  auto ann = User(*a_, "ann");
  ASSERT_TRUE(Next(*db, "ann", 3000ms));
  const auto t0 = Clock::now();
  a_->Signal(SIGKILL);
  auto off = Next(*db, "ann", 5000ms);
  const int64_t ms = MsSince(t0);
  ASSERT_TRUE(off) << "no offline after the node died";
  EXPECT_TRUE(IsPresence(*off, "ann", false));
  // The grace in the harness is 800 ms; the removal itself within a second.
  EXPECT_LT(ms, 800 + 1000) << "offline " << ms << " ms after kill -9";
  std::printf("kill -9 -> offline at another node: %lld ms (grace 800)\n",
              static_cast<long long>(ms));
  EXPECT_FALSE(OnlineSoon(*c_, "ann", false));
}

TEST_F(ClusterTest, SigtermDrainsWithARetryHintAndPeersDropTheNodeAtOnce) {
  StartThree();
  auto db = Desk(*b_);
  auto ann = User(*a_, "ann");
  ASSERT_TRUE(Next(*db, "ann", 3000ms));
  const auto t0 = Clock::now();
  a_->Signal(SIGTERM);
  EXPECT_EQ(ann->WaitClosed(3000ms), 1001);
  EXPECT_NE(ann->close_reason().find("retry_after_ms"), std::string::npos) << ann->close_reason();
  int status = a_->WaitExit(5000ms);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  auto off = Next(*db, "ann", 4000ms);
  ASSERT_TRUE(off);
  EXPECT_TRUE(IsPresence(*off, "ann", false));
  EXPECT_LT(MsSince(t0), 800 + 1500) << "the peers waited for missed beats";
}

TEST_F(ClusterTest, AUserWhoReconnectsElsewhereWithinTheGraceNeverGoesOffline) {
  StartThree();
  auto db = Desk(*b_);
  auto ann = User(*a_, "ann");
  auto on = Next(*db, "ann", 3000ms);
  ASSERT_TRUE(on);
  a_->Signal(SIGKILL);
  auto again = User(*b_, "ann");  // the client's reconnect lands on B
  EXPECT_FALSE(Next(*db, "ann", 2500ms)) << "an event for a user who was never away";
  json::value q = Query(*c_, "ann");
  EXPECT_TRUE(q.at("online").as_bool());
  EXPECT_EQ(q.at("sessions").as_int64(), 1);
}

TEST_F(ClusterTest, AFrozenNodeIsDroppedWithinFiveSecondsAndReconcilesWhenItWakes) {
  StartThree();
  auto db = Desk(*b_);
  auto ann = User(*a_, "ann");
  auto on = Next(*db, "ann", 3000ms);
  ASSERT_TRUE(on);
  const auto t0 = Clock::now();
  a_->Signal(SIGSTOP);
  auto off = Next(*db, "ann", 8000ms);
  const int64_t ms = MsSince(t0);
  ASSERT_TRUE(off) << "a frozen node's users stayed online";
  EXPECT_TRUE(IsPresence(*off, "ann", false));
  EXPECT_LT(ms, 5000 + 800) << "offline " << ms << " ms after SIGSTOP";
  std::printf("SIGSTOP -> offline at another node: %lld ms (grace 800)\n",
              static_cast<long long>(ms));
  std::this_thread::sleep_for(std::chrono::milliseconds(std::max<int64_t>(0, 8000 - ms)));
  ann->Close();  // the user gave up while A was frozen
  a_->Signal(SIGCONT);
  // A wakes, finds its session dead, and says nothing stale: the cluster
  // agrees the user is offline, and A is a member again.
  WaitJoined(*a_);
  std::this_thread::sleep_for(1500ms);
  for (const ServerProcess* s : {a_.get(), b_.get(), c_.get()})
    EXPECT_FALSE(Query(*s, "ann").at("online").as_bool()) << "port " << s->port();
  // Whatever events came, the numbering stayed one gapless stream.
  int64_t last = Seq(*off);
  while (auto e = db->WaitFor("presence", 300ms)) {
    EXPECT_EQ(Seq(*e), last + 1);
    last = Seq(*e);
  }
  // A still serves: a user on A is seen on B.
  auto cat = User(*a_, "cat");
  auto c_on = Next(*db, "cat", 3000ms);
  ASSERT_TRUE(c_on);
  EXPECT_EQ(Seq(*c_on), last + 1);
}

TEST_F(ClusterTest, ADeskResumesOnAnotherNodeWithTheEventsItMissed) {
  StartThree();
  auto db = Desk(*b_);
  auto x = User(*a_, "x");
  auto first = Next(*db, "x", 3000ms);
  ASSERT_TRUE(first);
  db->Close();
  auto y = User(*c_, "y");
  x->Close();
  std::this_thread::sleep_for(1500ms);
  auto dc = std::make_unique<WsClient>();
  ASSERT_TRUE(dc->Connect(c_->port()));
  auto w = dc->Hello(Manager(), ",\"presence_after\":" + std::to_string(Seq(*first)));
  ASSERT_TRUE(w);
  EXPECT_EQ(Seq(*w), Seq(*first) + 2);
  auto e1 = dc->WaitFor("presence", 2000ms);
  auto e2 = dc->WaitFor("presence", 2000ms);
  ASSERT_TRUE(e1 && e2);
  EXPECT_EQ(Seq(*e1), Seq(*first) + 1);
  EXPECT_TRUE(IsPresence(*e1, "y", true));
  EXPECT_EQ(Seq(*e2), Seq(*first) + 2);
  EXPECT_TRUE(IsPresence(*e2, "x", false));
}

TEST_F(ClusterTest, ANewNodeJoinsWithoutRestartsAndSeesThePresenceAlready) {
  a_ = Node(0);
  WaitJoined(*a_);
  auto ann = User(*a_, "ann");
  std::this_thread::sleep_for(300ms);
  b_ = Node(1);
  WaitJoined(*b_);
  json::value q = Query(*b_, "ann");
  EXPECT_TRUE(q.at("online").as_bool());
  EXPECT_EQ(q.at("sessions").as_int64(), 1);
  // And the old node sees the new one's users.
  auto bob = User(*b_, "bob");
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(Query(*a_, "bob").at("online").as_bool());
}

TEST_F(ClusterTest, WithAllOfNatsGoneEachNodeServesItsOwnUsersAndReconvergesAfter) {
  StartThree();
  auto da = Desk(*a_);
  auto x = User(*a_, "x");
  ASSERT_TRUE(Next(*da, "x", 3000ms));
  HttpResult chat = Http(a_->port(), "POST", "/v1/user-chats", "{\"user_id\":\"x\"}", Manager());
  ASSERT_EQ(chat.status, 201) << chat.body;
  const std::string chat_id(chat.Json().at("chat_id").as_string());
  for (size_t i = 0; i < nats_.size(); ++i) nats_.Kill(i);
  // Each node says so, and stays in the balancer.
  for (const ServerProcess* s : {a_.get(), b_.get()}) {
    bool said = false;
    for (int i = 0; i < 60 && !said; ++i) {
      HttpResult r = Http(s->port(), "GET", "/readyz", "", "");
      said = r.status == 200 && r.body.find("nats_unreachable") != std::string::npos;
      if (!said) std::this_thread::sleep_for(100ms);
    }
    EXPECT_TRUE(said) << "port " << s->port();
  }
  // The gauge too (read until it settles: while the servers die one after
  // another a node may reconnect to one that is still up for a moment).
  int64_t connected = 1;
  for (int i = 0; i < 60 && connected != 0; ++i) {
    connected = Metric(*a_, "onlined_cluster_nats_connected");
    if (connected != 0) std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(connected, 0);
  // A serves its own users: a new session, a query, a message to x.
  auto y = User(*a_, "y");
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(Query(*a_, "y").at("online").as_bool());
  HttpResult sent = Http(a_->port(), "POST", "/v1/user-chats/" + chat_id + "/messages",
                         "{\"text\":\"while NATS is away\"}", Manager());
  ASSERT_EQ(sent.status, 201) << sent.body;
  EXPECT_TRUE(x->WaitFor("message", 3000ms));
  // NATS returns: the nodes re-read each other; B learns of y.
  for (size_t i = 0; i < nats_.size(); ++i) nats_.Restart(i);
  WaitJoined(*a_);
  WaitJoined(*b_);
  bool seen = false;
  for (int i = 0; i < 100 && !seen; ++i) {
    seen = Query(*b_, "y").at("online").as_bool();
    if (!seen) std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(seen) << "B never learned of the user who came while NATS was away";
  EXPECT_EQ(Metric(*a_, "onlined_cluster_nats_connected"), 1);
}

TEST(ClusterStore, WithPostgresDownSendsAreRefusedWithRetryAfterAndPresenceGoesOn) {
  NatsCluster nats(1);
  PostgresServer pg;
  const std::string top =
      "store_engine = \"postgres\"\nstore_postgres_url = \"" + pg.url() + "/postgres\"\n";
  const std::string cluster = "[cluster]\nnats_urls = [\"" + nats.url(0) + "\"]\n";
  ServerProcess a(cluster, top), b(cluster, top);
  for (const ServerProcess* s : {&a, &b}) {
    for (int i = 0; i < 100; ++i) {
      if (Http(s->port(), "GET", "/readyz", "", "").body.find("\"joined\"") != std::string::npos)
        break;
      std::this_thread::sleep_for(50ms);
    }
  }
  HttpResult chat = Http(a.port(), "POST", "/v1/user-chats", "{\"user_id\":\"ann\"}", Manager());
  ASSERT_EQ(chat.status, 201) << chat.body;
  const std::string chat_id(chat.Json().at("chat_id").as_string());
  pg.Halt();
  HttpResult r = Http(b.port(), "POST", "/v1/user-chats/" + chat_id + "/messages",
                      "{\"text\":\"hello\"}", Manager());
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_FALSE(r.Header("Retry-After").empty());
  // Presence crosses nodes as before.
  WsClient desk;
  ASSERT_TRUE(desk.Connect(a.port()));
  ASSERT_TRUE(desk.Hello(Manager()));
  desk.AutoPing();
  WsClient ann;
  ASSERT_TRUE(ann.Connect(b.port()));
  ASSERT_TRUE(ann.Hello(MintToken("user", "ann")));
  ann.AutoPing();
  auto on = desk.WaitFor("presence", 3000ms);
  ASSERT_TRUE(on);
  EXPECT_TRUE(IsPresence(*on, "ann", true));
  pg.Start();
  HttpResult again;
  for (int i = 0; i < 40; ++i) {
    again = Http(b.port(), "POST", "/v1/user-chats/" + chat_id + "/messages",
                 "{\"text\":\"hello\"}", Manager(), {{"Idempotency-Key", "k1"}});
    if (again.status == 201) break;
    std::this_thread::sleep_for(250ms);
  }
  EXPECT_EQ(again.status, 201) << again.body;
  EXPECT_TRUE(ann.WaitFor("message", 3000ms));
}

TEST_F(ClusterTest, ANatsServerKilledUnderChurnLosesNoEventAtTheDesks) {
  StartThree();
  // The stream has a copy on every NATS server, so losing one loses nothing.
  // (A node that settled for one copy while the JetStream cluster was still
  // forming put it, one time in three, on the server killed below: then no
  // event went out at all.)
  for (const ServerProcess* s : {a_.get(), b_.get(), c_.get()}) {
    EXPECT_NE(s->Stderr().find("ONLINED_PRESENCE (3 replica(s))"), std::string::npos)
        << s->Stderr();
  }
  auto db = Desk(*b_);
  auto dc = Desk(*c_);
  auto m = User(*c_, "m");
  HttpResult chat = Http(a_->port(), "POST", "/v1/user-chats", "{\"user_id\":\"m\"}", Manager());
  ASSERT_EQ(chat.status, 201) << chat.body;
  const std::string chat_id(chat.Json().at("chat_id").as_string());
  std::vector<std::unique_ptr<WsClient>> users;
  std::thread killer([&] {
    std::this_thread::sleep_for(700ms);
    nats_.Kill(0);  // node a's server
  });
  // Messages through a (whose NATS server dies) to m on c, meanwhile.
  std::vector<int64_t> acked;
  std::thread sender([&] {
    for (int i = 0; i < 20; ++i) {
      const std::string key = "k" + std::to_string(i);
      for (int tries = 0; tries < 40; ++tries) {
        HttpResult r = Http(a_->port(), "POST", "/v1/user-chats/" + chat_id + "/messages",
                            "{\"text\":\"" + key + "\"}", Manager(), {{"Idempotency-Key", key}});
        if (r.status == 201) {
          acked.push_back(r.Json().at("seq").as_int64());
          break;
        }
        std::this_thread::sleep_for(100ms);
      }
      std::this_thread::sleep_for(150ms);
    }
  });
  // Users come and go on every node for a few seconds.
  for (int i = 0; i < 30; ++i) {
    const ServerProcess& s = i % 3 == 0 ? *a_ : (i % 3 == 1 ? *b_ : *c_);
    users.push_back(User(s, "u" + std::to_string(i)));
    if (i >= 10) users[static_cast<size_t>(i - 10)]->Close();
    std::this_thread::sleep_for(100ms);
  }
  killer.join();
  sender.join();
  // Every acknowledged message is stored and reached m, in order.
  ASSERT_EQ(acked.size(), 20u);
  auto is_chat = [&](const json::value& v) { return v.at("chat_id").as_string() == chat_id; };
  for (int64_t want : acked) {
    auto got = m->WaitFor("message", 5000ms, is_chat);
    ASSERT_TRUE(got) << "message " << want << " never reached the user";
    EXPECT_EQ(got->at("seq").as_int64(), want);
  }
  HttpResult stored =
      Http(b_->port(), "GET", "/v1/user-chats/" + chat_id + "/messages?limit=100", "", Manager());
  ASSERT_EQ(stored.status, 200) << stored.body;
  EXPECT_EQ(stored.Json().at("messages").as_array().size(), 20u);
  // Every user is either online (the last ten) or offline; wait until both
  // desks have heard the whole story, then compare what they got.
  std::map<int64_t, std::string> at_b, at_c;
  auto drain = [](WsClient& d, std::map<int64_t, std::string>& into) {
    // A new stream leader takes 4-9 s to elect (more if a vote splits).
    while (auto e = d.WaitFor("presence", 20000ms)) {
      const int64_t s = Seq(*e);
      EXPECT_EQ(into.count(s), 0u) << "event " << s << " twice";
      into[s] = json::serialize(*e);
      size_t offline = 0;
      for (const auto& [k, v] : into) offline += v.find("\"online\":false") != std::string::npos;
      if (offline >= 20 && into.size() >= 51) break;
    }
  };
  drain(*db, at_b);
  drain(*dc, at_c);
  ASSERT_EQ(at_b.size(), 51u) << "31 online (m and the 30) and 20 offline events";
  EXPECT_EQ(at_b, at_c) << "the two desks saw different streams";
  EXPECT_EQ(at_b.rbegin()->first - at_b.begin()->first, 50) << "a gap in the numbers";
}

// A revocation made through one node ends the subject's sessions on the
// others too (they read the shared store every revocation_poll_ms) and its
// older tokens are refused there.
TEST_F(ClusterTest, ARevocationThroughOneNodeEndsTheSubjectsSessionsOnEveryNode) {
  a_ = Node(0);
  b_ = Node(1);
  WaitJoined(*a_);
  WaitJoined(*b_);
  const int64_t iat = base::WallMs() / 1000;
  const std::string m9 = MintToken("manager", "m9", "acme", 3600, "", "", iat);
  WsClient on_b, on_a;
  for (auto [c, node] : {std::pair{&on_b, b_.get()}, std::pair{&on_a, a_.get()}}) {
    ASSERT_TRUE(c->Connect(node->port()));
    ASSERT_TRUE(c->Hello(m9));
    c->AutoPing();
  }
  auto kept = Desk(*b_);  // another manager
  HttpResult r = Http(a_->port(), "POST", "/v1/revocations", R"({"manager_id":"m9"})",
                      MintToken("server", "backend"));
  ASSERT_EQ(r.status, 201) << r.body;
  const auto start = std::chrono::steady_clock::now();
  for (WsClient* c : {&on_a, &on_b}) {
    auto e = c->WaitFor("error", 4000ms);
    ASSERT_TRUE(e) << "a session of the revoked manager went on";
    EXPECT_EQ(e->at("code").as_string(), "session_revoked");
    auto code = c->WaitClosed(2000ms);
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 4003);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s) << "slower than the poll allows";
  EXPECT_EQ(Http(b_->port(), "POST", "/v1/presence/query", R"({"user_ids":["x"]})", m9).status,
            401);
  kept->Send(R"({"type":"ping"})");
  EXPECT_TRUE(kept->WaitFor("pong"));
  EXPECT_FALSE(kept->closed());
}

// A manager on A writes to a user whose only session is on B, and the user
// answers in between: A has no session of the user to put in order, so it
// neither holds the frames nor reads the seqs it did not see (the user's own
// messages, committed on B) from the store as a gap.
TEST_F(ClusterTest, RepliesThroughANodeWithoutTheUsersSessionsAreNoGaps) {
  a_ = Node(0);
  b_ = Node(1);
  WaitJoined(*a_);
  WaitJoined(*b_);
  auto desk = Desk(*a_);
  auto ann = User(*b_, "ann");
  ASSERT_TRUE(Next(*desk, "ann", 3000ms));
  HttpResult chat = Http(a_->port(), "POST", "/v1/user-chats", "{\"user_id\":\"ann\"}", Manager());
  ASSERT_EQ(chat.status, 201) << chat.body;
  const std::string chat_id(chat.Json().at("chat_id").as_string());
  // The user's own answers come back to its session too (for its other
  // tabs): only the manager's are waited for.
  auto is_question = [&](const json::value& v) {
    return v.at("chat_id").as_string() == chat_id && v.at("from").as_string() == "manager";
  };
  int64_t seq = 0;
  for (int i = 1; i <= 3; ++i) {
    HttpResult r = Http(a_->port(), "POST", "/v1/user-chats/" + chat_id + "/messages",
                        "{\"text\":\"question " + std::to_string(i) + "\"}", Manager());
    ASSERT_EQ(r.status, 201) << r.body;
    auto m = ann->WaitFor("message", 3000ms, is_question);
    ASSERT_TRUE(m) << "question " << i << " missing";
    EXPECT_GT(m->at("seq").as_int64(), seq) << "in seq order";
    seq = m->at("seq").as_int64();
    ann->Send("{\"type\":\"send\",\"chat_id\":\"" + chat_id + "\",\"client_msg_id\":\"a" +
              std::to_string(i) + "\",\"text\":\"answer " + std::to_string(i) + "\"}");
    auto sent = ann->WaitFor("sent", 3000ms);
    ASSERT_TRUE(sent) << "answer " << i << " not stored";
    seq = sent->at("seq").as_int64();
  }
  EXPECT_EQ(seq, 6);
  EXPECT_EQ(Metric(*a_, "onlined_cluster_delivery_gaps_total"), 0);
  EXPECT_EQ(Metric(*b_, "onlined_cluster_delivery_gaps_total"), 0);
}

// A channel the file adds is left out until a restart in cluster mode (its
// stream subject and desks' subscription are made at start): its tokens are
// refused as of an unknown channel, the log says why, and the node's own
// channels go on (a desk on the new one, opened and closed, once wrote past
// the engine's per-channel state).
TEST_F(ClusterTest, AChannelAddedBySighupWaitsForARestart) {
  a_ = Node(0);
  WaitJoined(*a_);
  {
    std::ofstream f(a_->config_path(), std::ios::app);
    f << "[[channels]]\nid = \"newco\"\nsecret = \"newco-secret-0123456789\"\n";
  }
  a_->Signal(SIGHUP);
  for (int i = 0; i < 100 && a_->Stderr().find("settings reloaded") == std::string::npos; ++i) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_NE(a_->Stderr().find("a new channel is added only by a restart (left out until then): "
                              "newco"),
            std::string::npos)
      << a_->Stderr();
  for (const char* role : {"manager", "user"}) {
    WsClient c;
    ASSERT_TRUE(c.Connect(a_->port()));
    EXPECT_FALSE(c.Hello(MintToken(role, "n1", "newco", 3600, "newco-secret-0123456789")));
  }
  auto desk = Desk(*a_);
  auto ann = User(*a_, "ann");
  auto on = Next(*desk, "ann", 3000ms);
  ASSERT_TRUE(on);
  EXPECT_TRUE(IsPresence(*on, "ann", true));
  desk->Close();
  EXPECT_EQ(Http(a_->port(), "GET", "/healthz").status, 200);
}

}  // namespace
}  // namespace onlined::testing
