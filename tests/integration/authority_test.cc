// A session's authority end to end (docs/protocol.md, "WebSocket"): a
// session lasts as long as its token, a refresh extends it, and a refresh
// that is not the same principal's changes nothing. The real binary, real
// sockets; tokens a few seconds long.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
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

// --- Rotation with overlap (docs/protocol.md "Keys and rotation") ---------

constexpr const char* kOldKey = "rot-old-secret-0123456789";
constexpr const char* kNewKey = "rot-new-secret-0123456789";

// A channel "rot" with its old `secret` and a new key "k2" beside it.
const char* kRotChannel =
    "[[channels]]\nid = \"rot\"\nsecret = \"rot-old-secret-0123456789\"\n"
    "[[channels.keys]]\nkid = \"k2\"\nsecret = \"rot-new-secret-0123456789\"\n";

// Rewrites the server's config file: `from` becomes `to`.
void EditConfig(const ServerProcess& s, const std::string& from, const std::string& to) {
  std::ifstream in(s.config_path());
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos) << "not in the config: " << from;
  text.replace(at, from.size(), to);
  std::ofstream(s.config_path(), std::ios::trunc) << text;
}

std::unique_ptr<WsClient> LiveDesk(uint16_t port, const std::string& token) {
  auto c = std::make_unique<WsClient>();
  EXPECT_TRUE(c->Connect(port));
  EXPECT_TRUE(c->Hello(token)) << "hello refused";
  c->AutoPing();
  return c;
}

// Expects `c` to get the error `code` and then the close `close_code`
// within `within`.
void ExpectEnded(WsClient& c, const std::string& code, int close_code, Ms within) {
  auto err = c.WaitFor("error", within);
  ASSERT_TRUE(err) << "no error frame; expected " << code;
  EXPECT_EQ(err->at("code").as_string(), code);
  auto closed = c.WaitClosed(2000ms);
  ASSERT_TRUE(closed) << "still open after " << code;
  EXPECT_EQ(*closed, close_code);
  EXPECT_EQ(c.close_reason(), code);
}

TEST(Rotation, BothKeysVerifyThenRemovingTheOldOneEndsOnlyItsSessions) {
  ServerProcess s(kRotChannel);
  // The old key (no kid) and the new one (kid k2) both verify.
  auto old_desk = LiveDesk(s.port(), MintToken("manager", "m-old", "rot", 600, kOldKey));
  auto new_desk = LiveDesk(s.port(), MintToken("manager", "m-new", "rot", 600, kNewKey, "k2"));
  // A desk on the old key that refreshed onto the new one before the cut.
  auto moved = LiveDesk(s.port(), MintToken("manager", "m-moved", "rot", 600, kOldKey));
  moved->Send(Refresh(MintToken("manager", "m-moved", "rot", 600, kNewKey, "k2")));
  ASSERT_TRUE(moved->WaitFor("refreshed", 2000ms));
  // A kid that names no key, and the new key's secret under no kid: refused.
  for (const std::string& bad : {MintToken("manager", "x", "rot", 600, kNewKey, "k9"),
                                 MintToken("manager", "x", "rot", 600, kNewKey)}) {
    WsClient c;
    ASSERT_TRUE(c.Connect(s.port()));
    EXPECT_FALSE(c.Hello(bad));
  }
  // The old key goes (SIGHUP): its sessions end within seconds, with 4002.
  EditConfig(s, "secret = \"rot-old-secret-0123456789\"\n", "");
  const int64_t cut = NowMs();
  s.Signal(SIGHUP);
  ExpectEnded(*old_desk, "key_removed", 4002, 3000ms);
  EXPECT_LE(NowMs() - cut, 3000) << "the old key's session outlived its key";
  // The others go on and still hear the channel.
  WsClient user;
  ASSERT_TRUE(user.Connect(s.port()));
  ASSERT_TRUE(user.Hello(MintToken("user", "ulla", "rot", 600, kNewKey, "k2")));
  for (WsClient* d : {new_desk.get(), moved.get()}) {
    auto p = d->WaitFor("presence", 3000ms);
    ASSERT_TRUE(p) << "a session on the kept key hears nothing";
    EXPECT_EQ(p->at("user_id").as_string(), "ulla");
    EXPECT_FALSE(d->closed());
  }
  // With one key left, a token without kid is verified by it.
  WsClient no_kid;
  ASSERT_TRUE(no_kid.Connect(s.port()));
  EXPECT_TRUE(no_kid.Hello(MintToken("manager", "y", "rot", 600, kNewKey)));
  // And the old key's tokens are refused, on the socket and over HTTP.
  WsClient late;
  ASSERT_TRUE(late.Connect(s.port()));
  EXPECT_FALSE(late.Hello(MintToken("manager", "m-old", "rot", 600, kOldKey)));
  EXPECT_EQ(Http(s.port(), "POST", "/v1/presence/query", R"({"user_ids":["ulla"]})",
                 MintToken("manager", "m-old", "rot", 600, kOldKey))
                .status,
            401);
}

// The finding: a channel's secret changed by SIGHUP ended nothing.
TEST(Rotation, AChangedSecretEndsTheSessionsItSigned) {
  ServerProcess s;
  auto desk = LiveDesk(s.port(), MintToken("manager", "m1", "other"));
  auto acme = LiveDesk(s.port(), MintToken("manager", "m1", "acme"));
  EditConfig(s, "secret = \"other-secret-0123456789\"", "secret = \"other-rotated-0123456789\"");
  s.Signal(SIGHUP);
  ExpectEnded(*desk, "key_removed", 4002, 3000ms);
  acme->Send(R"({"type":"ping"})");
  EXPECT_TRUE(acme->WaitFor("pong")) << "another channel's session was cut";
  EXPECT_FALSE(acme->closed());
}

// --- Revocation (docs/protocol.md "Revocations") --------------------------

HttpResult Revoke(uint16_t port, const std::string& body,
                  const std::string& token = MintToken("server", "backend")) {
  return Http(port, "POST", "/v1/revocations", body, token);
}

TEST(Revocation, EndsTheSubjectsSessionsAndRefusesItsOlderTokensForGood) {
  ServerProcess s;
  const int64_t issued = NowMs() / 1000;
  const std::string m1 = MintToken("manager", "m1", "acme", 3600, "", "", issued);
  auto gone = LiveDesk(s.port(), m1);
  auto kept = LiveDesk(s.port(), MintToken("manager", "m2", "acme", 3600, "", "", issued));
  auto other_channel = LiveDesk(s.port(), MintToken("manager", "m1", "other"));
  // Only a server token may revoke, and the body names one subject.
  EXPECT_EQ(Revoke(s.port(), R"({"manager_id":"m1"})", m1).status, 403);
  EXPECT_EQ(Revoke(s.port(), R"({"manager_id":""})").status, 400);
  EXPECT_EQ(Revoke(s.port(), R"({"manager_id":"m1","user_id":"u"})").status, 400);
  EXPECT_EQ(Revoke(s.port(), "not json").status, 400);
  EXPECT_EQ(Http(s.port(), "GET", "/v1/revocations", "", MintToken("server", "b")).status, 405);

  HttpResult r = Revoke(s.port(), R"({"manager_id":"m1"})");
  ASSERT_EQ(r.status, 201) << r.body;
  auto a = r.Json();
  EXPECT_EQ(a.at("role").as_string(), "manager");
  EXPECT_EQ(a.at("subject").as_string(), "m1");
  // Kept for the longest a manager token may live (24 h by default) past it.
  EXPECT_GE(a.at("expires_at").as_int64(), a.at("revoked_at").as_int64() + 86400 * 1000);
  ExpectEnded(*gone, "session_revoked", 4003, 2000ms);
  kept->Send(R"({"type":"ping"})");
  EXPECT_TRUE(kept->WaitFor("pong"));
  EXPECT_FALSE(kept->closed()) << "another manager's session was ended";
  other_channel->Send(R"({"type":"ping"})");
  EXPECT_TRUE(other_channel->WaitFor("pong"));
  EXPECT_FALSE(other_channel->closed()) << "the same id in another channel was ended";

  // The old token is refused from now on: hello and desk calls.
  WsClient again;
  ASSERT_TRUE(again.Connect(s.port()));
  auto w = again.Hello(m1);
  EXPECT_FALSE(w);
  HttpResult q = Http(s.port(), "POST", "/v1/presence/query", R"({"user_ids":["a"]})", m1);
  EXPECT_EQ(q.status, 401);
  EXPECT_NE(q.body.find("token_revoked"), std::string::npos) << q.body;
  // A token issued after the revocation (a later second) is accepted.
  std::this_thread::sleep_for(1100ms);
  const std::string fresh = MintToken("manager", "m1", "acme", 3600, "", "", NowMs() / 1000);
  WsClient back;
  ASSERT_TRUE(back.Connect(s.port()));
  EXPECT_TRUE(back.Hello(fresh)) << "a token issued after the revocation was refused";
  // Durable: after a restart the old token is still refused.
  s.Signal(SIGKILL);
  s.WaitExit(5000ms);
  s.Restart();
  EXPECT_EQ(Http(s.port(), "POST", "/v1/presence/query", R"({"user_ids":["a"]})", m1).status, 401);
  EXPECT_EQ(Http(s.port(), "POST", "/v1/presence/query", R"({"user_ids":["a"]})", fresh).status,
            200);
}

TEST(Revocation, ARevokedUserIsCutAndGoesOffline) {
  ServerProcess s;
  auto desk = LiveDesk(s.port(), MintToken("manager", "m1"));
  WsClient tab1, tab2;
  const std::string t = MintToken("user", "eve", "acme", 3600, "", "", NowMs() / 1000);
  for (WsClient* c : {&tab1, &tab2}) {
    ASSERT_TRUE(c->Connect(s.port()));
    ASSERT_TRUE(c->Hello(t));
    c->AutoPing();
  }
  auto on = desk->WaitFor("presence", 3000ms);
  ASSERT_TRUE(on);
  EXPECT_TRUE(on->at("online").as_bool());
  ASSERT_EQ(Revoke(s.port(), R"({"user_id":"eve"})").status, 201);
  ExpectEnded(tab1, "session_revoked", 4003, 2000ms);
  ExpectEnded(tab2, "session_revoked", 4003, 2000ms);
  auto off = desk->WaitFor("presence", 4000ms);
  ASSERT_TRUE(off) << "the revoked user never went offline";
  EXPECT_FALSE(off->at("online").as_bool());
  // A user token without iat cannot show it was issued later: refused.
  WsClient c;
  ASSERT_TRUE(c.Connect(s.port()));
  EXPECT_FALSE(c.Hello(MintToken("user", "eve")));
}

// --- Rate limits (docs/protocol.md "Rate limits") -------------------------

// Sends `n` send frames on `c`; returns {sent, rate_limited}.
std::pair<int, int> SendBurst(WsClient& c, int n, const std::string& prefix) {
  for (int i = 0; i < n; ++i) {
    c.Send(R"({"type":"send","client_msg_id":")" + prefix + std::to_string(i) +
           R"(","text":"hi"})");
  }
  int sent = 0, limited = 0;
  while (sent + limited < n) {
    auto text = c.Next(3000ms);
    if (!text) break;
    boost::system::error_code ec;
    json::value v = json::parse(*text, ec);
    if (ec || !v.is_object() || !v.as_object().contains("type")) continue;
    const std::string type(v.at("type").as_string());
    if (type == "sent") ++sent;
    if (type == "error" && v.at("code").as_string() == "rate_limited") ++limited;
  }
  return {sent, limited};
}

// One user with two tabs is one sender: each tab's own pace (20) lets 40
// through, the user's pace (set to 30 here) stops the rest.
TEST(RateLimits, AUsersTabsShareOnePace) {
  ServerProcess s("", "", "user_total_send_burst = 30\nuser_total_sends_per_s = 0.5\n");
  WsClient a, b;
  for (WsClient* c : {&a, &b}) {
    ASSERT_TRUE(c->Connect(s.port()));
    ASSERT_TRUE(c->Hello(MintToken("user", "tab")));
  }
  auto [sa, la] = SendBurst(a, 20, "a");
  auto [sb, lb] = SendBurst(b, 20, "b");
  EXPECT_EQ(sa + sb, 30);
  EXPECT_EQ(la + lb, 10);
  EXPECT_FALSE(a.closed());
  EXPECT_FALSE(b.closed());
  EXPECT_EQ(MetricValue(s.port(), "onlined_rate_limited_total{kind=\"user_send\"}"), 10);
  // Another user is not held back by this one.
  WsClient other;
  ASSERT_TRUE(other.Connect(s.port()));
  ASSERT_TRUE(other.Hello(MintToken("user", "someone-else")));
  auto [so, lo] = SendBurst(other, 5, "o");
  EXPECT_EQ(so, 5);
  EXPECT_EQ(lo, 0);
}

// A user session of `user` with `n` messages sent in its chat; the chat's id.
std::string UserWithMessages(WsClient& u, uint16_t port, const std::string& user, int n) {
  EXPECT_TRUE(u.Connect(port));
  EXPECT_TRUE(u.Hello(MintToken("user", user)));
  std::string chat;
  for (int i = 0; i < n; ++i) {
    u.Send(R"({"type":"send","client_msg_id":"m)" + std::to_string(i) + R"(","text":"hello"})");
    auto sent = u.WaitFor("sent", 3000ms);
    EXPECT_TRUE(sent);
    if (sent) chat = std::string(sent->at("chat_id").as_string());
  }
  return chat;
}

// A manager's desk, pinging; false if it did not get its welcome.
bool OpenDesk(WsClient& desk, uint16_t port) {
  if (!desk.Connect(port) || !desk.Hello(MintToken("manager", "mo"))) return false;
  desk.AutoPing();
  return true;
}

std::string Receipt(const char* type, const std::string& chat, int64_t seq) {
  return std::string(R"({"type":")") + type + R"(","chat_id":")" + chat + R"(","seq":)" +
         std::to_string(seq) + "}";
}

// Receipts are marks and each write of them is a store write: a session's
// acks and reads past its pace are merged into its newest marks, not
// refused, and the desk gets the newest marks in a handful of receipts.
TEST(RateLimits, ReceiptsPastThePaceAreMergedNotRefused) {
  ServerProcess s("", "", "receipt_burst = 2\nreceipts_per_s = 2\n");
  WsClient desk;
  ASSERT_TRUE(OpenDesk(desk, s.port()));
  WsClient u;
  const std::string chat = UserWithMessages(u, s.port(), "rex", 3);
  ASSERT_FALSE(chat.empty());
  // A client that acks every message of a long replay, and reads some.
  for (int i = 0; i < 300; ++i) {
    u.Send(Receipt(i % 5 == 4 ? "read" : "ack", chat, 1 + i % 3));
  }
  u.Send(Receipt("read", chat, 3));
  EXPECT_FALSE(u.WaitFor("error", 1500ms)) << "a receipt was refused";
  EXPECT_FALSE(u.closed());
  int receipts = 0;
  bool newest = false;
  while (auto r = desk.WaitFor("receipt", 3000ms)) {
    ++receipts;
    if (r->at("ack_seq").as_int64() == 3 && r->at("read_seq").as_int64() == 3) {
      newest = true;
      break;
    }
  }
  EXPECT_TRUE(newest) << "the desk never saw the newest marks";
  EXPECT_LE(receipts, 12) << "one write per frame, not merged";
  EXPECT_EQ(MetricValue(s.port(), "onlined_rate_limited_total{kind=\"receipt\"}"), 0);
  EXPECT_GE(MetricValue(s.port(), "onlined_receipts_merged_total"), 250);
}

// Marks that wait for the pace when the session ends are written then.
TEST(RateLimits, ReceiptsWaitingForThePaceAreWrittenWhenTheSessionEnds) {
  ServerProcess s("", "", "receipt_burst = 1\nreceipts_per_s = 0.01\n");
  WsClient desk;
  ASSERT_TRUE(OpenDesk(desk, s.port()));
  WsClient u;
  const std::string chat = UserWithMessages(u, s.port(), "rex", 3);
  ASSERT_FALSE(chat.empty());
  u.Send(Receipt("ack", chat, 1));
  auto first = desk.WaitFor("receipt", 3000ms);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->at("ack_seq").as_int64(), 1);
  u.Send(Receipt("ack", chat, 2));
  u.Send(Receipt("read", chat, 3));
  EXPECT_FALSE(desk.WaitFor("receipt", 800ms)) << "the pace allows one write per 100 s";
  EXPECT_FALSE(u.WaitFor("error", 10ms));
  u.Close();
  auto last = desk.WaitFor("receipt", 3000ms);
  ASSERT_TRUE(last) << "the pending marks were lost with the session";
  EXPECT_EQ(last->at("ack_seq").as_int64(), 3);
  EXPECT_EQ(last->at("read_seq").as_int64(), 3);
}

// Pending marks are one per chat, for at most 16 chats: a receipt for a
// 17th is refused with a wait (and counts toward too_many_errors).
TEST(RateLimits, ReceiptsOfTooManyChatsAtOnceAreRefused) {
  ServerProcess s("", "", "receipt_burst = 1\nreceipts_per_s = 0.01\n");
  WsClient u;
  ASSERT_TRUE(u.Connect(s.port()));
  ASSERT_TRUE(u.Hello(MintToken("user", "rex")));
  u.Send(Receipt("ack", "c_first", 1));  // written now: the pace's one token
  for (int i = 0; i < 20; ++i) u.Send(Receipt("ack", "c_" + std::to_string(i), 1));
  int limited = 0, unknown = 0;
  while (auto e = u.WaitFor("error", 1500ms)) {
    const std::string code(e->at("code").as_string());
    if (code == "rate_limited") {
      EXPECT_GT(e->at("retry_after_ms").as_int64(), 0);
      ++limited;
    } else {
      EXPECT_EQ(code, "unknown_chat");
      EXPECT_NE(e->at("message").as_string().find("c_first"), std::string::npos) << "which chat";
      ++unknown;
    }
  }
  EXPECT_EQ(limited, 4);
  EXPECT_EQ(unknown, 1) << "c_first is nobody's chat";
  EXPECT_FALSE(u.closed());
  EXPECT_EQ(MetricValue(s.port(), "onlined_rate_limited_total{kind=\"receipt\"}"), 4);
}

// A manager's HTTP sends: past manager_send_burst, 429 with Retry-After;
// nothing refused is stored. Server tokens are not paced per subject.
TEST(RateLimits, AManagersSendsArePacedAndAReloadChangesThePace) {
  ServerProcess s("", "", "manager_send_burst = 5\nmanager_sends_per_s = 0.2\n");
  const std::string mgr = MintToken("manager", "mo");
  HttpResult c = Http(s.port(), "POST", "/v1/user-chats", R"({"user_id":"pat"})", mgr);
  ASSERT_TRUE(c.status == 200 || c.status == 201) << c.body;
  const std::string chat(c.Json().at("chat_id").as_string());
  const std::string path = "/v1/user-chats/" + chat + "/messages";
  int ok = 0, limited = 0;
  for (int i = 0; i < 8; ++i) {
    HttpResult r = Http(s.port(), "POST", path, R"({"text":"hi"})", mgr);
    if (r.status == 201) ++ok;
    if (r.status == 429) {
      ++limited;
      EXPECT_NE(r.body.find("rate_limited"), std::string::npos);
      EXPECT_GE(std::stoi(r.Header("Retry-After")), 1);
    }
  }
  EXPECT_EQ(ok, 5);
  EXPECT_EQ(limited, 3);
  HttpResult list = Http(s.port(), "GET", path, "", mgr);
  EXPECT_EQ(list.Json().at("messages").as_array().size(), 5u) << list.body;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Http(s.port(), "POST", path, R"({"text":"srv"})", MintToken("server", "be")).status,
              201);
  }
  // A reload that raises the pace applies to the same manager at once.
  EditConfig(s, "manager_send_burst = 5\nmanager_sends_per_s = 0.2\n",
             "manager_send_burst = 5\nmanager_sends_per_s = 1000\n");
  s.Signal(SIGHUP);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(Http(s.port(), "POST", path, R"({"text":"after"})", mgr).status, 201);
}

}  // namespace
}  // namespace onlined::testing
