// Presence end to end: the real binary, real sockets, a real WebSocket
// client. Settings (see harness): heartbeat 1 s (timeout 2.5 s), grace 800 ms.
// Here the deadlines are checked from below only (never early) on real time;
// their edges, and what must not happen before them (a reconnect within the
// grace, a second tab, heartbeats), are checked on a test clock in
// deadline_test.cc, where a loaded machine cannot stretch a sleep.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <thread>

#include "harness.h"

namespace onlined::testing {
namespace {

namespace json = boost::json;

bool IsPresence(const json::value& v, const std::string& user, bool online) {
  return v.at("user_id").as_string() == user && v.at("online").as_bool() == online;
}

json::value Query(const ServerProcess& s, const std::vector<std::string>& ids) {
  json::object body;
  json::array a;
  for (const auto& id : ids) a.push_back(json::string(id));
  body["user_ids"] = a;
  HttpResult r = Http(s.port(), "POST", "/v1/presence/query", json::serialize(body),
                      MintToken("manager", "m1"));
  EXPECT_EQ(r.status, 200) << r.body;
  return r.Json();
}

bool OnlineByQuery(const ServerProcess& s, const std::string& user) {
  return Query(s, {user}).at("users").at(user).at("online").as_bool();
}

// A manager connection that has received its welcome.
std::unique_ptr<WsClient> Desk(const ServerProcess& s, const std::string& extra = "",
                               const std::string& channel = "acme") {
  auto c = std::make_unique<WsClient>();
  EXPECT_TRUE(c->Connect(s.port()));
  auto w = c->Hello(MintToken("manager", "m1", channel), extra);
  EXPECT_TRUE(w.has_value());
  c->AutoPing();  // desks heartbeat like any client
  return c;
}

std::unique_ptr<WsClient> User(const ServerProcess& s, const std::string& user) {
  auto c = std::make_unique<WsClient>();
  EXPECT_TRUE(c->Connect(s.port()));
  auto w = c->Hello(MintToken("user", user));
  EXPECT_TRUE(w.has_value());
  if (w) {
    EXPECT_EQ(w->at("heartbeat_s").as_int64(), 1);
    EXPECT_FALSE(w->at("session_id").as_string().empty());
  }
  return c;
}

TEST(Presence, UserConnectsDeskSeesOnlineAndQueryAgrees) {
  ServerProcess s;
  auto desk = Desk(s);
  EXPECT_FALSE(OnlineByQuery(s, "alice"));
  auto alice = User(s, "alice");
  auto ev = desk->WaitFor("presence", 2000ms);
  ASSERT_TRUE(ev);
  EXPECT_TRUE(IsPresence(*ev, "alice", true));
  EXPECT_GT(ev->at("event_seq").as_int64(), 0);
  EXPECT_GT(ev->at("last_seen").as_int64(), 0);
  EXPECT_EQ(ev->at("state").as_string(), "active");
  json::value q = Query(s, {"alice", "bob"});
  EXPECT_TRUE(q.at("users").at("alice").at("online").as_bool());
  EXPECT_EQ(q.at("users").at("alice").at("sessions").as_int64(), 1);
  EXPECT_FALSE(q.at("users").at("bob").at("online").as_bool());
  EXPECT_TRUE(q.at("users").at("bob").at("last_seen").is_null());
}

// A query body is scanned in place when it has the usual shape and parsed in
// full otherwise: both answer alike, and a keep-alive client's requests are
// read whole however they arrive.
TEST(Presence, QueryAnswersAlikeHoweverTheBodyIsSpelled) {
  ServerProcess s;
  auto alice = User(s, "alice");
  auto zoe = User(s, "zo\xc3\xab");
  auto ask = [&](const std::string& body) {
    return Http(s.port(), "POST", "/v1/presence/query", body, MintToken("manager", "m1"));
  };
  for (const std::string body :
       {R"({"user_ids":["alice","bob"]})", " {\n \"user_ids\" : [ \"alice\" ,\t\"bob\" ] }\n",
        R"({"user_ids":["\u0061lice","bob"]})", R"({"x":1,"user_ids":["alice","bob"]})",
        // The scan gives up after an id: the answer names it once.
        R"({"user_ids":["alice","b\u006fb"]})", R"({"user_ids":["alice","bob"],"x":1})"}) {
    HttpResult r = ask(body);
    ASSERT_EQ(r.status, 200) << body << " -> " << r.body;
    // The parsed answer would fold a repeated key: count it in the text.
    EXPECT_EQ(r.body.find("\"alice\""), r.body.rfind("\"alice\"")) << r.body;
    json::value q = r.Json();
    EXPECT_EQ(q.at("users").as_object().size(), 2u) << r.body;
    EXPECT_TRUE(q.at("users").at("alice").at("online").as_bool()) << r.body;
    EXPECT_EQ(q.at("users").at("alice").at("sessions").as_int64(), 1) << r.body;
    EXPECT_FALSE(q.at("users").at("bob").at("online").as_bool()) << r.body;
  }
  HttpResult r = ask("{\"user_ids\":[\"zo\xc3\xab\",\"a\\\"b\\\\\"]}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(r.Json().at("users").at("zo\xc3\xab").at("online").as_bool()) << r.body;
  EXPECT_FALSE(r.Json().at("users").at("a\"b\\").at("online").as_bool()) << r.body;

  EXPECT_EQ(ask(R"({"user_ids":["alice",]})").Json().at("error").at("code").as_string(),
            "bad_json");
  EXPECT_EQ(ask(R"({"user_ids":["alice"]} x)").Json().at("error").at("code").as_string(),
            "bad_json");
  EXPECT_EQ(ask(R"({"user_ids":[""]})").status, 400);
  EXPECT_EQ(ask(R"({"user_ids":[""]})").Json().at("error").at("code").as_string(), "bad_request");
  EXPECT_EQ(ask(R"({"user_ids":[")" + std::string(129, 'x') + R"("]})").status, 400);
  EXPECT_EQ(ask(R"({"user_ids":[")" + std::string(128, 'x') + R"("]})").status, 200);
  // 1,000 ids, the last one escaped: within the limit, however far the scan got.
  std::string many = R"({"user_ids":[)";
  for (int i = 0; i < 999; ++i) many += "\"u" + std::to_string(i) + "\",";
  many += R"("\u0061lice"]})";
  r = ask(many);
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 200);
  EXPECT_EQ(r.Json().at("users").as_object().size(), 1000u);
  EXPECT_TRUE(r.Json().at("users").at("alice").at("online").as_bool());

  // Three requests of 100 ids (1.4 KiB each) in one write on one connection.
  std::string ids;
  for (int i = 0; i < 100; ++i) ids += (i ? ",\"u" : "\"u") + std::to_string(1000 + i) + "\"";
  const std::string body = R"({"user_ids":[)" + ids + "]}";
  auto req = [&](const char* connection) {
    return "POST /v1/presence/query HTTP/1.1\r\nHost: x\r\nConnection: " + std::string(connection) +
           "\r\nAuthorization: Bearer " + MintToken("manager", "m1") +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
  };
  std::string out = RawExchange(s.port(), req("keep-alive") + req("keep-alive") + req("close"));
  size_t answers = 0;
  for (size_t at = out.find("HTTP/1.1 200 "); at != std::string::npos;
       at = out.find("HTTP/1.1 200 ", at + 1))
    ++answers;
  EXPECT_EQ(answers, 3u) << out.substr(0, 300);
  EXPECT_NE(out.find(R"("u1099":{"online":false,"last_seen":null,"sessions":0})"),
            std::string::npos);
}

TEST(Presence, PingGetsPong) {
  ServerProcess s;
  auto alice = User(s, "alice");
  alice->Send(R"({"type":"ping"})");
  EXPECT_TRUE(alice->WaitFor("pong", 1000ms));
  alice->Send(R"({ "type": "ping" })");
  EXPECT_TRUE(alice->WaitFor("pong", 1000ms));
}

TEST(Presence, CloseGoesOfflineAfterGraceNotBefore) {
  ServerProcess s;
  auto desk = Desk(s);
  auto alice = User(s, "alice");
  ASSERT_TRUE(desk->WaitFor("presence", 2000ms));
  auto closed_at = std::chrono::steady_clock::now();
  alice->Close();
  auto ev = desk->WaitFor("presence", 5000ms);
  ASSERT_TRUE(ev);
  auto after = std::chrono::steady_clock::now() - closed_at;
  EXPECT_TRUE(IsPresence(*ev, "alice", false));
  EXPECT_GE(after, 800ms);  // not before the grace
  EXPECT_FALSE(OnlineByQuery(s, "alice"));
  EXPECT_GT(Query(s, {"alice"}).at("users").at("alice").at("last_seen").as_int64(), 0);
}

TEST(Presence, SilentDropEndsAtHeartbeatTimeout) {
  ServerProcess s;
  auto desk = Desk(s);
  auto alice = User(s, "alice");
  ASSERT_TRUE(desk->WaitFor("presence", 2000ms));
  // alice now sends nothing and never closes: a dead network path.
  auto start = std::chrono::steady_clock::now();
  auto ev = desk->WaitFor("presence", 6000ms);
  ASSERT_TRUE(ev);
  auto after = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(IsPresence(*ev, "alice", false));
  EXPECT_GE(after, 2000ms);                // heartbeat timeout 2.5 s after the last frame (hello)
  EXPECT_TRUE(alice->WaitClosed(1000ms));  // the server cut the connection
}

TEST(Presence, IdleAndActiveState) {
  ServerProcess s;
  auto desk = Desk(s);
  auto alice = User(s, "alice");
  ASSERT_TRUE(desk->WaitFor("presence", 2000ms));
  alice->Send(R"({"type":"state","state":"idle"})");
  auto ev = desk->WaitFor("presence", 2000ms);
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->at("state").as_string(), "idle");
  EXPECT_TRUE(ev->at("online").as_bool());
  alice->Send(R"({"type":"state","state":"active"})");
  ev = desk->WaitFor("presence", 2000ms);
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->at("state").as_string(), "active");
}

TEST(Presence, EventsAreOrderedAndResumable) {
  ServerProcess s;
  auto desk = Desk(s);
  auto a = User(s, "a");
  auto first = desk->WaitFor("presence", 2000ms);
  ASSERT_TRUE(first);
  int64_t seq1 = first->at("event_seq").as_int64();
  desk->Close();
  // While the desk is away: b comes online, a leaves.
  auto b = User(s, "b");
  a->Close();
  ASSERT_TRUE(Eventually(3000ms, [&] { return !OnlineByQuery(s, "a"); }));
  auto desk2 = std::make_unique<WsClient>();
  ASSERT_TRUE(desk2->Connect(s.port()));
  auto w = desk2->Hello(MintToken("manager", "m1"), ",\"presence_after\":" + std::to_string(seq1));
  ASSERT_TRUE(w);
  desk2->AutoPing();
  EXPECT_EQ(w->at("event_seq").as_int64(), seq1 + 2);
  auto e2 = desk2->WaitFor("presence", 1000ms);
  auto e3 = desk2->WaitFor("presence", 1000ms);
  ASSERT_TRUE(e2 && e3);
  EXPECT_EQ(e2->at("event_seq").as_int64(), seq1 + 1);
  EXPECT_TRUE(IsPresence(*e2, "b", true));
  EXPECT_EQ(e3->at("event_seq").as_int64(), seq1 + 2);
  EXPECT_TRUE(IsPresence(*e3, "a", false));
  // Live events continue the numbering.
  auto c = User(s, "c");
  auto e4 = desk2->WaitFor("presence", 2000ms);
  ASSERT_TRUE(e4);
  EXPECT_EQ(e4->at("event_seq").as_int64(), seq1 + 3);
}

TEST(Presence, TooOldResumeGetsReset) {
  ServerProcess s("", "presence_event_buffer = 16");
  auto desk = Desk(s);
  auto first = desk->WaitFor("presence", 300ms);  // none yet
  EXPECT_FALSE(first);
  std::vector<std::unique_ptr<WsClient>> users;
  for (int i = 0; i < 20; ++i) users.push_back(User(s, "u" + std::to_string(i)));
  int64_t last = 0;
  for (int i = 0; i < 20; ++i) {
    auto ev = desk->WaitFor("presence", 2000ms);
    ASSERT_TRUE(ev);
    last = ev->at("event_seq").as_int64();
  }
  for (int64_t after :
       {last - 19 - 1, int64_t{1}, last + 1000}) {  // too old, an old run, the future
    WsClient d;
    ASSERT_TRUE(d.Connect(s.port()));
    ASSERT_TRUE(
        d.Hello(MintToken("manager", "m1"), ",\"presence_after\":" + std::to_string(after)));
    auto reset = d.WaitFor("presence_reset", 1000ms);
    ASSERT_TRUE(reset) << "after=" << after;
    EXPECT_EQ(reset->at("event_seq").as_int64(), last);
  }
}

TEST(Presence, ChannelsNeverSeeEachOther) {
  ServerProcess s;
  auto other_desk = Desk(s, "", "other");
  auto alice = User(s, "alice");  // in acme
  EXPECT_FALSE(other_desk->WaitFor("presence", 1000ms));
  HttpResult r = Http(s.port(), "POST", "/v1/presence/query", R"({"user_ids":["alice"]})",
                      MintToken("manager", "m1", "other"));
  ASSERT_EQ(r.status, 200);
  EXPECT_FALSE(r.Json().at("users").at("alice").at("online").as_bool());
}

TEST(Presence, UsersNeverSeePresence) {
  ServerProcess s;
  auto bob = User(s, "bob");
  auto alice = User(s, "alice");
  EXPECT_FALSE(bob->WaitFor("presence", 1000ms));
  HttpResult r = Http(s.port(), "POST", "/v1/presence/query", R"({"user_ids":["alice"]})",
                      MintToken("user", "bob"));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.Json().at("error").at("code").as_string(), "forbidden");
}

TEST(Metrics, ExposesTheSeries) {
  ServerProcess s;
  auto alice = User(s, "alice");
  Query(s, {"alice"});
  HttpResult m = Http(s.port(), "GET", "/metrics", "", kMetricsToken);
  ASSERT_EQ(m.status, 200);
  for (const char* needle :
       {"onlined_connections 1", "onlined_online_users{channel=\"acme\"} 1",
        "onlined_online_users{channel=\"other\"} 0", "onlined_presence_events_total 1",
        "onlined_frames_in_total", "onlined_frames_out_total",
        "onlined_presence_query_seconds_bucket", "onlined_presence_query_seconds_count 1"}) {
    EXPECT_NE(m.body.find(needle), std::string::npos) << needle;
  }
  EXPECT_EQ(Http(s.port(), "GET", "/healthz").status, 200);
  EXPECT_EQ(Http(s.port(), "GET", "/readyz").status, 200);
}

}  // namespace
}  // namespace onlined::testing
