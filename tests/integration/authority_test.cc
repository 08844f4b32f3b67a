// A session's authority end to end (docs/protocol.md, "WebSocket"): a
// session lasts as long as its token, a refresh extends it, and a refresh
// that is not the same principal's changes nothing. The real binary, real
// sockets; tokens a few seconds long.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <thread>

#include "harness.h"

namespace onlined::testing {
namespace {

namespace json = boost::json;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Refresh(const std::string& token) {
  return R"({"type":"refresh","token":")" + token + "\"}";
}

class Authority : public ::testing::Test {
 protected:
  // A desk on a token that ends in `ttl_s`; its welcome in *welcome.
  std::unique_ptr<WsClient> Desk(int64_t ttl_s, json::value* welcome = nullptr) {
    auto c = std::make_unique<WsClient>();
    EXPECT_TRUE(c->Connect(server_.port()));
    auto w = c->Hello(MintToken("manager", "m1", "acme", ttl_s));
    EXPECT_TRUE(w.has_value());
    if (w && welcome != nullptr) *welcome = *w;
    c->AutoPing();
    return c;
  }

  ServerProcess server_;
};

TEST_F(Authority, ASessionEndsWhenItsTokenDoes) {
  json::value welcome;
  const int64_t before = NowMs();
  auto desk = Desk(3, &welcome);
  // The welcome says when: the token's exp (whole seconds), in ms.
  ASSERT_TRUE(welcome.as_object().contains("expires_at")) << json::serialize(welcome);
  const int64_t expires_at = welcome.at("expires_at").as_int64();
  EXPECT_GE(expires_at, before + 2000);
  EXPECT_LE(expires_at, before + 4000);
  // Alive up to it (heartbeats keep it), then ended with 4001.
  std::this_thread::sleep_for(
      std::chrono::milliseconds(std::max<int64_t>(0, expires_at - NowMs() - 500)));
  EXPECT_FALSE(desk->closed()) << "ended before the token did";
  auto err = desk->WaitFor("error", 3000ms);
  ASSERT_TRUE(err) << "no error frame at the token's end";
  EXPECT_EQ(err->at("code").as_string(), "session_expired");
  auto code = desk->WaitClosed(2000ms);
  ASSERT_TRUE(code) << "still open after the token's end";
  EXPECT_EQ(*code, 4001);
  EXPECT_EQ(desk->close_reason(), "session_expired");
  EXPECT_GE(NowMs(), expires_at) << "closed before expires_at";
  EXPECT_LE(NowMs(), expires_at + 1500) << "closed long after expires_at";
}

TEST_F(Authority, ARefreshedSessionGoesOnAndKeepsReceiving) {
  json::value welcome;
  auto desk = Desk(2, &welcome);
  const int64_t old_end = welcome.at("expires_at").as_int64();
  desk->Send(Refresh(MintToken("manager", "m1", "acme", 60)));
  auto r = desk->WaitFor("refreshed", 2000ms);
  ASSERT_TRUE(r) << "no answer to the refresh";
  EXPECT_GE(r->at("expires_at").as_int64(), NowMs() + 50000);
  // Past the old end the desk is still live and still hears the channel.
  std::this_thread::sleep_for(
      std::chrono::milliseconds(std::max<int64_t>(0, old_end - NowMs() + 1200)));
  EXPECT_FALSE(desk->closed()) << "the refresh did not extend the session";
  WsClient user;
  ASSERT_TRUE(user.Connect(server_.port()));
  ASSERT_TRUE(user.Hello(MintToken("user", "ann")));
  auto p = desk->WaitFor("presence", 3000ms);
  ASSERT_TRUE(p) << "the refreshed desk hears nothing";
  EXPECT_EQ(p->at("user_id").as_string(), "ann");
}

TEST_F(Authority, ARefreshOfAnotherPrincipalChangesNothing) {
  json::value welcome;
  auto desk = Desk(3, &welcome);
  const int64_t end = welcome.at("expires_at").as_int64();
  // Another subject, another role, a forged and an expired token: each
  // refused, the session kept on its own token, and so still ending at it.
  const std::pair<std::string, std::string> tries[] = {
      {MintToken("manager", "m2", "acme", 60), "refresh_mismatch"},
      {MintToken("user", "m1", "acme", 60), "refresh_mismatch"},
      {MintToken("manager", "m1", "acme", 60, "not-the-channel-secret-123"), "bad_token"},
      {MintToken("manager", "m1", "acme", -10), "token_expired"},
  };
  for (const auto& [token, code] : tries) {
    desk->Send(Refresh(token));
    auto e = desk->WaitFor("error", 2000ms);
    ASSERT_TRUE(e) << "no refusal for " << code;
    EXPECT_EQ(e->at("code").as_string(), code);
  }
  EXPECT_FALSE(desk->closed()) << "a refused refresh cut the session";
  std::this_thread::sleep_for(std::chrono::milliseconds(std::max<int64_t>(0, end - NowMs())));
  auto closed = desk->WaitClosed(2500ms);
  ASSERT_TRUE(closed) << "a refused refresh extended the session";
  EXPECT_EQ(*closed, 4001);
}

TEST_F(Authority, AUserSessionEndsWithItsTokenAndTheUserGoesOffline) {
  auto desk = Desk(60);
  WsClient user;
  ASSERT_TRUE(user.Connect(server_.port()));
  auto w = user.Hello(MintToken("user", "bob", "acme", 2));
  ASSERT_TRUE(w);
  user.AutoPing();
  auto on = desk->WaitFor("presence", 3000ms);
  ASSERT_TRUE(on);
  EXPECT_TRUE(on->at("online").as_bool());
  auto code = user.WaitClosed(4000ms);
  ASSERT_TRUE(code) << "the user's session outlived its token";
  EXPECT_EQ(*code, 4001);
  // A close like any other: offline after the grace.
  auto off = desk->WaitFor("presence", 4000ms);
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->at("online").as_bool());
}

// One user session cannot flood the store and every desk: a burst of 20
// sends, then one a second (the defaults); the rest are refused with
// rate_limited and a wait, the connection stays, and nothing refused is
// stored or reaches the desk.
TEST_F(Authority, AUserSendingFasterThanItsChannelAllowsIsRefusedNotStored) {
  auto desk = Desk(60);
  WsClient user;
  ASSERT_TRUE(user.Connect(server_.port()));
  ASSERT_TRUE(user.Hello(MintToken("user", "flo")));
  user.AutoPing();
  for (int i = 0; i < 30; ++i) {
    user.Send(R"({"type":"send","client_msg_id":"m)" + std::to_string(i) + R"(","text":")" +
              std::string(1000, 'x') + R"("})");
  }
  int sent = 0, limited = 0;
  while (sent + limited < 30) {
    auto text = user.Next(3000ms);
    ASSERT_TRUE(text) << sent << " sent, " << limited << " refused, then nothing";
    boost::system::error_code ec;
    json::value v = json::parse(*text, ec);
    if (ec || !v.is_object() || !v.as_object().contains("type")) continue;
    const std::string type(v.at("type").as_string());
    if (type != "sent" && type != "error") continue;  // pongs, its own messages
    const json::value* f = &v;
    if (type == "sent") {
      ++sent;
    } else {
      EXPECT_EQ(f->at("code").as_string(), "rate_limited") << json::serialize(*f);
      EXPECT_GT(f->at("retry_after_ms").as_int64(), 0);
      ++limited;
    }
  }
  EXPECT_EQ(sent, 20);
  EXPECT_EQ(limited, 10);
  EXPECT_FALSE(user.closed());
  int at_desk = 0;
  while (desk->WaitFor("message", 1000ms)) ++at_desk;
  EXPECT_EQ(at_desk, 20) << "the desk got what was refused";
  // A second later one more goes through.
  std::this_thread::sleep_for(1100ms);
  user.Send(R"({"type":"send","client_msg_id":"late","text":"hi"})");
  auto late = user.WaitFor("sent", 3000ms);
  EXPECT_TRUE(late) << "the pace never let another send through";
}

}  // namespace
}  // namespace onlined::testing
