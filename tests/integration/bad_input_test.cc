// Every bad input gets a clear answer, is counted, and disturbs no one else.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <fstream>
#include <set>
#include <thread>

#include "harness.h"

namespace onlined::testing {
namespace {

namespace json = boost::json;

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    // A manager who watches everything and must never notice the abuse.
    bystander_ = std::make_unique<WsClient>();
    ASSERT_TRUE(bystander_->Connect(server_.port()));
    ASSERT_TRUE(bystander_->Hello(MintToken("manager", "bystander")));
    bystander_->AutoPing();
  }
  void TearDown() override {
    bystander_->Send(R"({"type":"ping"})");
    EXPECT_TRUE(bystander_->WaitFor("pong", 2000ms)) << "the bystander was disturbed";
    EXPECT_EQ(Http(server_.port(), "GET", "/healthz").status, 200);
  }

  // Sends `frames` on a fresh connection; expects an error frame with `code`
  // and, if `close_code` is set, the server's close with it.
  void ExpectRefused(const std::vector<std::string>& frames, const std::string& code,
                     std::optional<int> close_code) {
    WsClient c;
    ASSERT_TRUE(c.Connect(server_.port()));
    for (const auto& f : frames) c.Send(f);
    auto err = c.WaitFor("error", 3000ms);
    ASSERT_TRUE(err) << "no error frame for " << code;
    EXPECT_EQ(err->at("code").as_string(), code);
    EXPECT_FALSE(err->at("message").as_string().empty());
    if (close_code) {
      auto got = c.WaitClosed(3000ms);
      ASSERT_TRUE(got) << "not closed for " << code;
      EXPECT_EQ(*got, *close_code) << code;
    }
    ExpectCounted(code);
  }

  // The refusal is counted; a close is counted when the server has ended the
  // connection, which may come a moment after the client saw the close frame.
  void ExpectCounted(const std::string& code) {
    std::string needle = "onlined_refusals_total{code=\"" + code + "\"} ";
    int64_t n = 0;
    for (int i = 0; i < 40 && n == 0; ++i) {
      if (i > 0) std::this_thread::sleep_for(50ms);
      std::string m = Http(server_.port(), "GET", "/metrics", "", kMetricsToken).body;
      auto pos = m.find(needle);
      ASSERT_NE(pos, std::string::npos) << needle;
      n = std::stoll(m.substr(pos + needle.size()));
    }
    EXPECT_GT(n, 0) << needle;
  }

  static std::string Hello(const std::string& token) {
    return R"({"type":"hello","token":")" + token + "\"}";
  }

  ServerProcess server_{"", "max_frame_bytes = 4096"};
  std::unique_ptr<WsClient> bystander_;
};

TEST_F(BadInput, UnknownToken) { ExpectRefused({Hello("garbage.token.here")}, "bad_token", 1008); }

TEST_F(BadInput, ExpiredToken) {
  ExpectRefused({Hello(MintToken("user", "u", "acme", -10))}, "token_expired", 1008);
}

// A channel bounds its tokens' lifetimes per role (defaults: managers 24 h,
// users 30 days): a ten-year manager token is refused, on the WebSocket and
// over HTTP; a day's is fine.
TEST_F(BadInput, TokenThatLivesTooLong) {
  ExpectRefused({Hello(MintToken("manager", "m", "acme", int64_t{10} * 365 * 86400))},
                "token_lifetime_too_long", 1008);
  ExpectRefused({Hello(MintToken("user", "u", "acme", 31 * 86400))}, "token_lifetime_too_long",
                1008);
  HttpResult r = Http(server_.port(), "POST", "/v1/presence/query", R"({"user_ids":["u"]})",
                      MintToken("manager", "m", "acme", 2 * 86400));
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_NE(r.body.find("token_lifetime_too_long"), std::string::npos) << r.body;
  r = Http(server_.port(), "POST", "/v1/presence/query", R"({"user_ids":["u"]})",
           MintToken("manager", "m", "acme", 86400));
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(BadInput, TokenOfUnknownChannel) {
  ExpectRefused({Hello(MintToken("user", "u", "nope", 3600, "whatever-secret-123456"))},
                "unknown_channel", 1008);
}

TEST_F(BadInput, TokenSignedByAnotherChannel) {
  // Claims acme, signed with other's secret.
  ExpectRefused({Hello(MintToken("manager", "m", "acme", 3600, kOtherSecret))}, "bad_token", 1008);
}

TEST_F(BadInput, FrameBeforeHello) {
  ExpectRefused({R"({"type":"ping"})"}, "hello_required", 1008);
}

TEST_F(BadInput, MalformedJsonBeforeHello) { ExpectRefused({"{not json"}, "bad_json", 1008); }

TEST_F(BadInput, MissingHelloTimesOut) {
  WsClient c;
  ASSERT_TRUE(c.Connect(server_.port()));
  auto err = c.WaitFor("error", 4000ms);  // hello_timeout_ms = 1500
  ASSERT_TRUE(err);
  EXPECT_EQ(err->at("code").as_string(), "hello_timeout");
  EXPECT_EQ(c.WaitClosed(2000ms), 1008);
  ExpectCounted("hello_timeout");
}

TEST_F(BadInput, MalformedJsonAfterHelloKeepsConnection) {
  WsClient c;
  ASSERT_TRUE(c.Connect(server_.port()));
  ASSERT_TRUE(c.Hello(MintToken("user", "u1")));
  c.Send("{oops");
  auto err = c.WaitFor("error");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->at("code").as_string(), "bad_json");
  c.Send(R"({"type":"dance"})");
  err = c.WaitFor("error");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->at("code").as_string(), "unknown_type");
  c.Send(R"({"type":"ack","chat_id":"c"})");
  err = c.WaitFor("error");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->at("code").as_string(), "bad_frame");
  c.Send(R"({"type":"ping"})");
  EXPECT_TRUE(c.WaitFor("pong"));  // still connected
  ExpectCounted("unknown_type");
}

TEST_F(BadInput, BinaryFrameIsRefused) {
  WsClient c;
  ASSERT_TRUE(c.Connect(server_.port()));
  ASSERT_TRUE(c.Hello(MintToken("user", "u1")));
  c.SendBinary("\x01\x02");
  auto err = c.WaitFor("error");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->at("code").as_string(), "bad_frame");
}

TEST_F(BadInput, OversizedFrameClosesWith1009) {
  WsClient c;
  ASSERT_TRUE(c.Connect(server_.port()));
  ASSERT_TRUE(c.Hello(MintToken("user", "u1")));
  c.Send(R"({"type":"ping","pad":")" + std::string(8000, 'x') + "\"}");
  EXPECT_EQ(c.WaitClosed(3000ms), 1009);
  ExpectCounted("frame_too_large");
}

TEST_F(BadInput, FloodOfBadFramesIsCut) {
  WsClient c;
  ASSERT_TRUE(c.Connect(server_.port()));
  ASSERT_TRUE(c.Hello(MintToken("user", "u1")));
  for (int i = 0; i < 60; ++i) c.Send("nope");
  EXPECT_EQ(c.WaitClosed(3000ms), 1008);
  ExpectCounted("too_many_errors");
}

TEST_F(BadInput, QueryOfMoreThan1000Ids) {
  json::array ids;
  for (int i = 0; i < 1001; ++i) ids.push_back(json::string("u" + std::to_string(i)));
  HttpResult r = Http(server_.port(), "POST", "/v1/presence/query",
                      json::serialize(json::object{{"user_ids", ids}}), MintToken("manager", "m"));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.Json().at("error").at("code").as_string(), "too_many_ids");
  ExpectCounted("too_many_ids");
}

TEST_F(BadInput, QueryWithoutTokenOrWithBadBody) {
  HttpResult r = Http(server_.port(), "POST", "/v1/presence/query", R"({"user_ids":[]})");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.Json().at("error").at("code").as_string(), "unauthorized");
  r = Http(server_.port(), "POST", "/v1/presence/query", "{bad", MintToken("manager", "m"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json().at("error").at("code").as_string(), "bad_json");
  r = Http(server_.port(), "POST", "/v1/presence/query", R"({"user_ids":[1,2]})",
           MintToken("manager", "m"));
  EXPECT_EQ(r.status, 400);
  r = Http(server_.port(), "GET", "/v1/presence/query", "", MintToken("manager", "m"));
  EXPECT_EQ(r.status, 405);
  r = Http(server_.port(), "POST", "/v1/presence/query", R"({"user_ids":["a"]})",
           MintToken("manager", "m", "acme", -5));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.Json().at("error").at("code").as_string(), "token_expired");
}

TEST_F(BadInput, PlainHttpToConnect) {
  HttpResult r = Http(server_.port(), "GET", "/v1/connect");
  EXPECT_EQ(r.status, 426);
  EXPECT_EQ(r.Json().at("error").at("code").as_string(), "not_websocket");
  ExpectCounted("not_websocket");
}

TEST_F(BadInput, UpgradeToUnknownPathAndUnknownRoute) {
  WsClient c;
  int status = 0;
  EXPECT_FALSE(c.Connect(server_.port(), "/v1/nowhere", &status));
  EXPECT_EQ(status, 404);
  EXPECT_EQ(Http(server_.port(), "GET", "/nope").status, 404);
}

TEST(Admission, OverConnectionLimitGets503WithRetryAfter) {
  ServerProcess s("", "max_connections = 2\nretry_after_ms = 3000");
  WsClient a, b, c;
  ASSERT_TRUE(a.Connect(s.port()));
  ASSERT_TRUE(b.Connect(s.port()));
  int status = 0;
  std::string body;
  EXPECT_FALSE(c.Connect(s.port(), "/v1/connect", &status, &body));
  EXPECT_EQ(status, 503);
  a.Close();
  std::this_thread::sleep_for(200ms);
  WsClient d;
  EXPECT_TRUE(d.Connect(s.port()));  // room again
}

TEST(Reload, SighupAddsAChannelWithoutDroppingConnections) {
  ServerProcess s;
  WsClient alice;
  ASSERT_TRUE(alice.Connect(s.port()));
  ASSERT_TRUE(alice.Hello(MintToken("user", "alice")));
  {
    std::ofstream f(s.config_path(), std::ios::app);
    f << "[[channels]]\nid = \"newco\"\nsecret = \"newco-secret-0123456789\"\n";
  }
  s.Signal(SIGHUP);
  std::this_thread::sleep_for(500ms);
  WsClient n;
  ASSERT_TRUE(n.Connect(s.port()));
  EXPECT_TRUE(n.Hello(MintToken("user", "x", "newco", 3600, "newco-secret-0123456789")));
  alice.Send(R"({"type":"ping"})");
  EXPECT_TRUE(alice.WaitFor("pong"));
  // A broken file is refused and the running settings stay.
  {
    std::ofstream f(s.config_path(), std::ios::app);
    f << "heartbeat_s = \"broken\"\n";
  }
  s.Signal(SIGHUP);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(Http(s.port(), "GET", "/healthz").status, 200);
  EXPECT_NE(s.Stderr().find("reload refused"), std::string::npos);
}

TEST(Shutdown, SigtermClosesConnectionsWith1001) {
  ServerProcess s;
  WsClient alice;
  ASSERT_TRUE(alice.Connect(s.port()));
  ASSERT_TRUE(alice.Hello(MintToken("user", "alice")));
  s.Signal(SIGTERM);
  EXPECT_EQ(alice.WaitClosed(3000ms), 1001);
  int status = s.WaitExit(5000ms);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// A draining node tells each client when to come back, spread over
// drain_spread_ms, so that they do not all reconnect (to the other nodes) at
// once.
TEST(Shutdown, TheCloseCarriesARetryHintSpreadOverTheWindow) {
  ServerProcess s("", "drain_spread_ms = 4000\n");
  std::vector<std::unique_ptr<WsClient>> users;
  for (int i = 0; i < 30; ++i) {
    users.push_back(std::make_unique<WsClient>());
    ASSERT_TRUE(users.back()->Connect(s.port()));
    ASSERT_TRUE(users.back()->Hello(MintToken("user", "u" + std::to_string(i))));
  }
  s.Signal(SIGTERM);
  std::set<int64_t> waits;
  for (auto& u : users) {
    ASSERT_EQ(u->WaitClosed(3000ms), 1001);
    json::value r = json::parse(u->close_reason());
    EXPECT_EQ(r.at("code").as_string(), "shutting_down");
    const int64_t w = r.at("retry_after_ms").as_int64();
    EXPECT_GE(w, 0);
    EXPECT_LE(w, 4000);
    waits.insert(w);
  }
  EXPECT_GT(waits.size(), 20u) << "the hints are not spread";
  EXPECT_GT(*waits.rbegin() - *waits.begin(), 2000) << "the hints do not cover the window";
}

// Headers over the limit are 431 (RFC 6585), not a generic 400.
TEST(HttpLimits, HeadersOverTheLimitAre431) {
  ServerProcess server;
  HttpResult r =
      Http(server.port(), "GET", "/healthz", "", "", {{"X-Padding", std::string(20 * 1024, 'a')}});
  EXPECT_EQ(r.status, 431) << r.body;
  EXPECT_NE(r.body.find("headers_too_large"), std::string::npos) << r.body;
  EXPECT_EQ(Http(server.port(), "GET", "/healthz").status, 200);
}

// A client still uploading a body over the limit gets its 413: the server
// reads and drops the rest for a while before closing (a close at once
// resets the connection, and the reset destroys the answer at the client).
TEST(HttpLimits, AnUploadOverTheLimitGetsItsAnswer) {
  ServerProcess server("", "max_body_bytes = 4096");
  for (int i = 0; i < 5; ++i) {
    HttpResult r;
    ASSERT_NO_THROW(r = Http(server.port(), "POST", "/v1/presence/query",
                             std::string(200 * 1024, ' ') + "{}", MintToken("manager", "m1")))
        << "the connection was reset before the answer could be read";
    EXPECT_EQ(r.status, 413) << r.body;
    EXPECT_NE(r.body.find("body_too_large"), std::string::npos) << r.body;
  }
}

}  // namespace
}  // namespace onlined::testing
