// Messages and the SMS fallback end to end: the real binary, a real
// WebSocket client, and a fake SMS provider (fake_sms.py) on 127.0.0.1.
// Test settings: sms_delay 1 s, ack_timeout 1 s, outbox looked at every 50 ms.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <boost/json.hpp>
#include <ctime>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "harness.h"
#include "notify/webhook.h"

namespace onlined::testing {
namespace {

namespace json = boost::json;

std::string SmsToml(uint16_t fake_port) {
  return "[sms]\nprovider = \"twilio\"\nbase_url = \"http://127.0.0.1:" +
         std::to_string(fake_port) +
         "\"\naccount_sid = \"ACtest\"\nauth_token = \"sms-token\"\nfrom = "
         "\"+15550000000\"\ntimeout_ms = 700\n";
}

const char* kAcme = "sms_delay_s = 1\nack_timeout_s = 1\nquiet_hours = \"off\"\n";
const char* kTop = "notify_tick_ms = 50\nmax_text_bytes = 100\n";

class Messages : public ::testing::Test {
 protected:
  Messages() : server_(SmsToml(fake_.port()), kTop, kAcme) {}

  std::string Manager() { return MintToken("manager", "m1"); }

  std::string OpenChat(const std::string& user) {
    HttpResult r =
        Http(server_.port(), "POST", "/v1/user-chats", "{\"user_id\":\"" + user + "\"}", Manager());
    EXPECT_EQ(r.status, 201) << r.body;
    return std::string(r.Json().at("chat_id").as_string());
  }
  HttpResult Post(const std::string& chat, const std::string& text, const std::string& key = "") {
    std::vector<std::pair<std::string, std::string>> h;
    if (!key.empty()) h.emplace_back("Idempotency-Key", key);
    return Http(server_.port(), "POST", "/v1/user-chats/" + chat + "/messages",
                json::serialize(json::object{{"text", text}}), Manager(), h);
  }
  void Profile(const std::string& user, const std::string& phone, bool opt_in) {
    HttpResult r = Http(
        server_.port(), "PUT", "/v1/users/" + user,
        json::serialize(json::object{{"name", user}, {"phone", phone}, {"sms_opt_in", opt_in}}),
        Manager());
    ASSERT_EQ(r.status, 200) << r.body;
  }
  json::array Notifications(const std::string& user) {
    HttpResult r = Http(server_.port(), "GET", "/v1/notifications?user_id=" + user, "", Manager());
    EXPECT_EQ(r.status, 200) << r.body;
    return r.Json().at("notifications").as_array();
  }
  // Polls until the user's newest notification is in `state`; returns it.
  std::optional<json::object> WaitState(const std::string& user, const std::string& state,
                                        Ms timeout = 8000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto ns = Notifications(user);
      if (!ns.empty() && ns[0].at("state").as_string() == state) return ns[0].as_object();
      std::this_thread::sleep_for(50ms);
    }
    auto ns = Notifications(user);
    ADD_FAILURE() << "no notification in state " << state << ": " << json::serialize(ns);
    return std::nullopt;
  }
  size_t SmsTo(const std::string& phone) {
    size_t n = 0;
    for (const auto& r : fake_.Requests()) n += r.at("form").at("To").as_string() == phone;
    return n;
  }
  std::unique_ptr<WsClient> UserConn(const std::string& user, const std::string& extra = "") {
    auto c = std::make_unique<WsClient>();
    EXPECT_TRUE(c->Connect(server_.port()));
    EXPECT_TRUE(c->Hello(MintToken("user", user), extra));
    c->AutoPing();
    return c;
  }
  HttpResult Webhook(const std::string& path, notify::Form form,
                     const std::string& token = "sms-token") {
    // Inbound messages carry the provider's id, as the provider sends them.
    if (path == "/v1/sms/inbound" && notify::FormValue(form, "MessageSid").empty()) {
      form.emplace_back("MessageSid", "SMin" + std::to_string(++inbound_seq_));
    }
    std::string url = "http://127.0.0.1:" + std::to_string(server_.port()) + path;
    return Http(server_.port(), "POST", path, notify::FormEncode(form), "",
                {{"Content-Type", "application/x-www-form-urlencoded"},
                 {"Host", "127.0.0.1:" + std::to_string(server_.port())},
                 {"X-Twilio-Signature", notify::TwilioSignature(token, url, form)}});
  }

  FakeSms fake_;
  ServerProcess server_;
  int inbound_seq_ = 0;
};

TEST_F(Messages, OnlineUserWhoAcksGetsNoSms) {
  Profile("ann", "+15550000001", true);
  std::string chat = OpenChat("ann");
  auto ann = UserConn("ann");
  ASSERT_EQ(Post(chat, "hello ann").status, 201);
  auto m = ann->WaitFor("message");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->at("text").as_string(), "hello ann");
  EXPECT_EQ(m->at("seq").as_int64(), 1);
  EXPECT_EQ(m->at("from").as_string(), "manager");
  ann->Send(R"({"type":"ack","chat_id":")" + chat + R"(","seq":1})");
  auto n = WaitState("ann", "cancelled");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->at("reason").as_string(), "delivered");
  EXPECT_EQ(SmsTo("+15550000001"), 0u);
}

TEST_F(Messages, OfflineUserGetsExactlyOneSmsTellingOfAllMessages) {
  Profile("bea", "+15550000002", true);
  std::string chat = OpenChat("bea");
  auto sent_at = std::chrono::steady_clock::now();
  for (const char* t : {"one", "two", "three"}) ASSERT_EQ(Post(chat, t).status, 201);
  auto n = WaitState("bea", "sent");
  ASSERT_TRUE(n);
  EXPECT_GE(std::chrono::steady_clock::now() - sent_at, 900ms);  // not before sms_delay
  EXPECT_EQ(n->at("first_seq").as_int64(), 1);
  EXPECT_EQ(n->at("last_seq").as_int64(), 3);
  std::this_thread::sleep_for(1500ms);  // nothing more comes
  auto reqs = fake_.Requests();
  ASSERT_EQ(reqs.size(), 1u);
  const auto& form = reqs[0].at("form");
  EXPECT_EQ(form.at("To").as_string(), "+15550000002");
  EXPECT_EQ(form.at("From").as_string(), "+15550000000");
  std::string body(form.at("Body").as_string());
  EXPECT_NE(body.find("3 new messages"), std::string::npos) << body;
  EXPECT_NE(body.find("three"), std::string::npos) << body;
  EXPECT_EQ(reqs[0].at("path").as_string(), "/2010-04-01/Accounts/ACtest/Messages.json");
  EXPECT_EQ(reqs[0].at("auth").as_string(), "Basic QUN0ZXN0OnNtcy10b2tlbg==");  // ACtest:sms-token
  EXPECT_EQ(Notifications("bea").size(), 1u);
  EXPECT_FALSE(n->at("provider_sid").as_string().empty());
}

TEST_F(Messages, UserWhoReadsBeforeTheDelayGetsNone) {
  Profile("cat", "+15550000003", true);
  std::string chat = OpenChat("cat");
  ASSERT_EQ(Post(chat, "read me").status, 201);  // offline: scheduled
  auto cat = UserConn("cat");
  auto m = cat->WaitFor("message");  // replayed on connect
  ASSERT_TRUE(m);
  cat->Send(R"({"type":"read","chat_id":")" + chat + R"(","seq":1})");
  auto n = WaitState("cat", "cancelled");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->at("reason").as_string(), "read");
  EXPECT_EQ(SmsTo("+15550000003"), 0u);
}

TEST_F(Messages, OptedOutUserGetsNoneAndStartOptsBackIn) {
  Profile("dan", "+15550000004", true);
  // A forged STOP is refused.
  HttpResult forged =
      Webhook("/v1/sms/inbound", {{"From", "+15550000004"}, {"Body", "STOP"}}, "wrong-token");
  EXPECT_EQ(forged.status, 403);
  HttpResult stop = Webhook("/v1/sms/inbound", {{"From", "+15550000004"}, {"Body", "Stop"}});
  ASSERT_EQ(stop.status, 200) << stop.body;
  std::string chat = OpenChat("dan");
  ASSERT_EQ(Post(chat, "are you there").status, 201);
  auto n = WaitState("dan", "cancelled");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->at("reason").as_string(), "not_opted_in");
  EXPECT_EQ(SmsTo("+15550000004"), 0u);
  ASSERT_EQ(Webhook("/v1/sms/inbound", {{"From", "+15550000004"}, {"Body", "START"}}).status, 200);
  ASSERT_EQ(Post(chat, "now?").status, 201);
  EXPECT_TRUE(WaitState("dan", "sent"));
  EXPECT_EQ(SmsTo("+15550000004"), 1u);
}

// The SMS settings are applied only by a restart: a token changed in the
// file and reloaded (SIGHUP) changes neither the provider's token nor the
// webhooks' (which had taken the new one while the provider kept the old:
// one of the two was always wrong).
TEST_F(Messages, AnSmsTokenChangedBySighupWaitsForARestart) {
  std::string text;
  {
    std::ifstream f(server_.config_path());
    text.assign(std::istreambuf_iterator<char>(f), {});
  }
  const std::string from = "auth_token = \"sms-token\"";
  const size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos);
  text.replace(at, from.size(), "auth_token = \"sms-token-2\"");
  {
    std::ofstream f(server_.config_path(), std::ios::trunc);
    f << text;
  }
  server_.Signal(SIGHUP);
  ASSERT_TRUE(Eventually(
      3s, [&] { return server_.Stderr().find("settings reloaded") != std::string::npos; }));
  EXPECT_NE(server_.Stderr().find("running as before): [sms]"), std::string::npos);
  Profile("sam", "+15550000015", true);
  EXPECT_EQ(Webhook("/v1/sms/inbound", {{"From", "+15550000015"}, {"Body", "HELP"}}).status, 200);
  EXPECT_EQ(Webhook("/v1/sms/inbound", {{"From", "+15550000015"}, {"Body", "HELP"}}, "sms-token-2")
                .status,
            403);
  ASSERT_EQ(Post(OpenChat("sam"), "after the reload").status, 201);
  ASSERT_TRUE(WaitState("sam", "sent"));
  auto reqs = fake_.Requests();
  ASSERT_FALSE(reqs.empty());
  EXPECT_EQ(reqs.back().at("auth").as_string(), "Basic QUN0ZXN0OnNtcy10b2tlbg==");  // the old
}

TEST_F(Messages, AReplayedInboundWebhookIsNotAppliedAgain) {
  // A signed webhook carries no time: replaying yesterday's STOP after
  // today's START must not opt the user out again.
  Profile("rex", "+15550000014", true);
  ASSERT_EQ(Webhook("/v1/sms/inbound",
                    {{"From", "+15550000014"}, {"Body", "STOP"}, {"MessageSid", "SMstop1"}})
                .status,
            200);
  ASSERT_EQ(Webhook("/v1/sms/inbound",
                    {{"From", "+15550000014"}, {"Body", "START"}, {"MessageSid", "SMstart1"}})
                .status,
            200);
  HttpResult replay = Webhook(
      "/v1/sms/inbound", {{"From", "+15550000014"}, {"Body", "STOP"}, {"MessageSid", "SMstop1"}});
  EXPECT_EQ(replay.status, 200);  // answered, so the provider does not retry, but not applied
  ASSERT_EQ(Post(OpenChat("rex"), "still opted in?").status, 201);
  EXPECT_TRUE(WaitState("rex", "sent"));
  EXPECT_EQ(SmsTo("+15550000014"), 1u);
}

TEST_F(Messages, IdempotencyKeysAreEachManagersOwn) {
  std::string chat = OpenChat("kim");
  auto send_as = [&](const std::string& manager) {
    return Http(server_.port(), "POST", "/v1/user-chats/" + chat + "/messages",
                R"({"text":"on my way"})", MintToken("manager", manager),
                {{"Idempotency-Key", "1"}});
  };
  HttpResult a = send_as("m1"), b = send_as("m2"), a2 = send_as("m1");
  ASSERT_EQ(a.status, 201) << a.body;
  ASSERT_EQ(b.status, 201) << b.body;
  EXPECT_NE(a.Json().at("id"), b.Json().at("id")) << "two managers' messages were merged into one";
  EXPECT_EQ(a.Json().at("id"), a2.Json().at("id")) << "a manager's retry is still the same message";
}

TEST_F(Messages, ProviderErrorIsRetriedOnceThenSent) {
  fake_.Script({"500"});
  Profile("eve", "+15550000005", true);
  ASSERT_EQ(Post(OpenChat("eve"), "retry me").status, 201);
  auto n = WaitState("eve", "sent", 12000ms);  // backoff 2 s +- 50 %
  ASSERT_TRUE(n);
  EXPECT_EQ(n->at("attempts").as_int64(), 2);
  EXPECT_EQ(SmsTo("+15550000005"), 2u);  // one failed request, one good one
}

TEST_F(Messages, Provider400FailsWithTheCodeAndIsNotRetried) {
  fake_.Script({"400"});
  Profile("fay", "+15550000006", true);
  ASSERT_EQ(Post(OpenChat("fay"), "bad number").status, 201);
  auto n = WaitState("fay", "failed");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->at("reason").as_string(), "http_400:21211");
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(SmsTo("+15550000006"), 1u);
}

TEST_F(Messages, HangingProviderTimesOutAndIsRetried) {
  fake_.Script({"hang"});  // the first request never gets an answer
  Profile("hob", "+15550000008", true);
  ASSERT_EQ(Post(OpenChat("hob"), "hello?").status, 201);
  auto n = WaitState("hob", "sent", 12000ms);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->at("attempts").as_int64(), 2);
  EXPECT_EQ(SmsTo("+15550000008"), 2u);
  // The server kept serving meanwhile.
  EXPECT_EQ(Http(server_.port(), "GET", "/healthz").status, 200);
}

TEST_F(Messages, GarbageAnswerIsNotSentTwice) {
  fake_.Script({"garbage"});  // 200 with a body that is not JSON
  Profile("ida", "+15550000009", true);
  ASSERT_EQ(Post(OpenChat("ida"), "hi").status, 201);
  auto n = WaitState("ida", "sent");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->at("provider_status").as_string(), "unknown");  // accepted, answer not understood
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(SmsTo("+15550000009"), 1u);  // a 2xx is never retried: that could send it twice
}

TEST_F(Messages, StatusCallbacksMoveForwardOnly) {
  Profile("gil", "+15550000007", true);
  ASSERT_EQ(Post(OpenChat("gil"), "status").status, 201);
  auto n = WaitState("gil", "sent");
  ASSERT_TRUE(n);
  std::string sid(n->at("provider_sid").as_string());
  ASSERT_EQ(Webhook("/v1/sms/status", {{"MessageSid", sid}, {"MessageStatus", "delivered"}}).status,
            200);
  ASSERT_EQ(Webhook("/v1/sms/status", {{"MessageSid", sid}, {"MessageStatus", "sent"}}).status,
            200);
  EXPECT_EQ(Notifications("gil")[0].at("provider_status").as_string(), "delivered");
  EXPECT_EQ(Webhook("/v1/sms/status", {{"MessageSid", "SMnope"}, {"MessageStatus", "sent"}}).status,
            404);
  EXPECT_EQ(Webhook("/v1/sms/status", {{"MessageSid", sid}, {"MessageStatus", "delivered"}}, "bad")
                .status,
            403);
}

TEST_F(Messages, IdempotencyKeyReturnsTheSameMessageOr409) {
  std::string chat = OpenChat("hal");
  HttpResult a = Post(chat, "once", "key-1");
  HttpResult b = Post(chat, "once", "key-1");
  ASSERT_EQ(a.status, 201);
  ASSERT_EQ(b.status, 201);
  EXPECT_EQ(a.Json().at("id"), b.Json().at("id"));
  EXPECT_EQ(a.Json().at("seq"), b.Json().at("seq"));
  HttpResult c = Post(chat, "different", "key-1");
  EXPECT_EQ(c.status, 409);
  EXPECT_EQ(c.Json().at("error").at("code").as_string(), "idempotency_conflict");
  HttpResult list = Http(server_.port(), "GET", "/v1/user-chats/" + chat + "/messages?after_seq=0",
                         "", Manager());
  EXPECT_EQ(list.Json().at("messages").as_array().size(), 1u);
}

TEST_F(Messages, BadInputsGetClearAnswers) {
  std::string chat = OpenChat("ivy");
  EXPECT_EQ(Post("c_nope", "x").status, 404);
  HttpResult other = Http(server_.port(), "POST", "/v1/user-chats/" + chat + "/messages",
                          R"({"text":"x"})", MintToken("manager", "m", "other"));
  EXPECT_EQ(other.status, 404);  // a chat of another channel does not exist there
  EXPECT_EQ(Post(chat, "").status, 400);
  HttpResult big = Post(chat, std::string(101, 'x'));
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(big.Json().at("error").at("code").as_string(), "text_too_long");
  EXPECT_EQ(Http(server_.port(), "GET", "/v1/user-chats?cursor=garbage", "", Manager()).status,
            400);
  EXPECT_EQ(Http(server_.port(), "GET", "/v1/user-chats?limit=0", "", Manager()).status, 400);
  EXPECT_EQ(Http(server_.port(), "GET", "/v1/user-chats", "", MintToken("user", "ivy")).status,
            403);
  EXPECT_EQ(Http(server_.port(), "PUT", "/v1/users/ivy", R"({"phone":"12345"})", Manager()).status,
            400);
  EXPECT_EQ(
      Http(server_.port(), "POST", "/v1/user-chats/" + chat + "/messages", "{not json", Manager())
          .status,
      400);
  EXPECT_EQ(Http(server_.port(), "GET", "/v1/notifications", "", Manager()).status, 400);
  // Nothing above stored anything.
  HttpResult list =
      Http(server_.port(), "GET", "/v1/user-chats/" + chat + "/messages", "", Manager());
  EXPECT_TRUE(list.Json().at("messages").as_array().empty());
}

TEST_F(Messages, ReconnectingUserGetsExactlyWhatItMissedInOrderThenNew) {
  std::string chat = OpenChat("jon");
  auto jon = UserConn("jon");
  for (int i = 1; i <= 3; ++i) ASSERT_EQ(Post(chat, "m" + std::to_string(i)).status, 201);
  for (int i = 1; i <= 3; ++i) {
    auto m = jon->WaitFor("message");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->at("seq").as_int64(), i);
  }
  jon->Close();
  for (int i = 4; i <= 5; ++i) ASSERT_EQ(Post(chat, "m" + std::to_string(i)).status, 201);
  // What the first hello's replay read (it may have raced the first post).
  const int64_t replayed = MetricValue(server_.port(), "onlined_messages_replayed_total");
  auto again = UserConn("jon", ",\"resume\":{\"" + chat + "\":3}");
  for (int i = 4; i <= 5; ++i) {
    auto m = again->WaitFor("message");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->at("seq").as_int64(), i);
    EXPECT_EQ(m->at("text").as_string(), "m" + std::to_string(i));
  }
  ASSERT_EQ(Post(chat, "m6").status, 201);
  auto m6 = again->WaitFor("message");
  ASSERT_TRUE(m6);
  EXPECT_EQ(m6->at("seq").as_int64(), 6);
  EXPECT_FALSE(again->WaitFor("message", 500ms));  // nothing doubled
  // Only the two it missed were read for it; a hello that names no seq
  // gets (and costs) the chat's whole history, six.
  EXPECT_EQ(MetricValue(server_.port(), "onlined_messages_replayed_total"), replayed + 2);
  auto fresh = UserConn("jon");
  for (int i = 1; i <= 6; ++i) {
    auto m = fresh->WaitFor("message");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->at("seq").as_int64(), i);
  }
  EXPECT_EQ(MetricValue(server_.port(), "onlined_messages_replayed_total"), replayed + 8);
}

TEST_F(Messages, UserSendsOverWebSocketIdempotently) {
  auto desk = std::make_unique<WsClient>();
  ASSERT_TRUE(desk->Connect(server_.port()));
  ASSERT_TRUE(desk->Hello(Manager()));
  desk->AutoPing();
  auto kim = UserConn("kim");
  kim->Send(R"({"type":"send","client_msg_id":"u1","text":"hi, I need help"})");
  auto sent = kim->WaitFor("sent");
  ASSERT_TRUE(sent);
  EXPECT_EQ(sent->at("client_msg_id").as_string(), "u1");
  EXPECT_EQ(sent->at("seq").as_int64(), 1);
  std::string chat(sent->at("chat_id").as_string());
  auto on_desk = desk->WaitFor("message");
  ASSERT_TRUE(on_desk);
  EXPECT_EQ(on_desk->at("from").as_string(), "user");
  EXPECT_EQ(on_desk->at("text").as_string(), "hi, I need help");
  kim->Send(R"({"type":"send","client_msg_id":"u1","text":"hi, I need help"})");  // a retry
  auto again = kim->WaitFor("sent");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->at("seq").as_int64(), 1);
  kim->Send(R"({"type":"send","chat_id":"c_notmine","client_msg_id":"u2","text":"x"})");
  auto err = kim->WaitFor("error");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->at("code").as_string(), "unknown_chat");
  // The desk sees the receipt of a read.
  kim->Send(R"({"type":"read","chat_id":")" + chat + R"(","seq":1})");
  auto receipt = desk->WaitFor("receipt");
  ASSERT_TRUE(receipt);
  EXPECT_EQ(receipt->at("read_seq").as_int64(), 1);
}

TEST_F(Messages, UserChatsAreNewestFirstPagedAndCarryPresence) {
  std::vector<std::string> chats;
  for (int i = 0; i < 5; ++i) {
    chats.push_back(OpenChat("p" + std::to_string(i)));
    ASSERT_EQ(Post(chats.back(), "hi " + std::to_string(i)).status, 201);
    std::this_thread::sleep_for(5ms);
  }
  Profile("p4", "+15550001234", false);  // a name for p4
  auto p4 = UserConn("p4");
  std::vector<std::string> seen;
  std::string cursor;
  for (int page = 0; page < 5; ++page) {
    HttpResult r =
        Http(server_.port(), "GET",
             "/v1/user-chats?limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor), "", Manager());
    ASSERT_EQ(r.status, 200) << r.body;
    auto v = r.Json();
    for (const auto& c : v.at("user_chats").as_array()) {
      seen.emplace_back(c.at("chat_id").as_string());
      bool online = c.at("user").at("online").as_bool();
      EXPECT_EQ(online, c.at("user").at("id").as_string() == "p4");
      EXPECT_EQ(c.at("user").at("name"),
                c.at("user").at("id"));  // Profile() names users by their id
      EXPECT_EQ(std::string(c.at("last_message").at("text").as_string()).substr(0, 3), "hi ");
    }
    if (v.at("next_cursor").is_null()) break;
    cursor = std::string(v.at("next_cursor").as_string());
  }
  ASSERT_EQ(seen.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(seen[i], chats[4 - i]);  // newest first, no repeats
}

TEST(QuietHours, NotificationWaitsForTheirEnd) {
  // Quiet hours from an hour ago to an hour from now, in UTC.
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char window[32];
  snprintf(window, sizeof window, "%02d:%02d-%02d:%02d", (utc.tm_hour + 23) % 24, utc.tm_min,
           (utc.tm_hour + 1) % 24, utc.tm_min);
  FakeSms fake;
  ServerProcess s(
      SmsToml(fake.port()), kTop,
      std::string("sms_delay_s = 1\nack_timeout_s = 1\ntime_zone = \"UTC\"\nquiet_hours = \"") +
          window + "\"\n");
  std::string manager = MintToken("manager", "m1");
  ASSERT_EQ(Http(s.port(), "PUT", "/v1/users/qui", R"({"phone":"+15550000077","sms_opt_in":true})",
                 manager)
                .status,
            200);
  HttpResult c = Http(s.port(), "POST", "/v1/user-chats", R"({"user_id":"qui"})", manager);
  std::string chat(c.Json().at("chat_id").as_string());
  ASSERT_EQ(Http(s.port(), "POST", "/v1/user-chats/" + chat + "/messages",
                 R"({"text":"late at night"})", manager)
                .status,
            201);
  std::this_thread::sleep_for(2500ms);  // past sms_delay
  auto ns = Http(s.port(), "GET", "/v1/notifications?user_id=qui", "", manager)
                .Json()
                .at("notifications")
                .as_array();
  ASSERT_EQ(ns.size(), 1u);
  EXPECT_EQ(ns[0].at("state").as_string(), "scheduled");
  EXPECT_EQ(ns[0].at("reason").as_string(), "quiet_hours");
  int64_t due = ns[0].at("due_at").as_int64();
  int64_t expect_end = (static_cast<int64_t>(now) + 3600) * 1000;
  EXPECT_NEAR(static_cast<double>(due), static_cast<double>(expect_end),
              61000.0);  // the end, to the minute
  EXPECT_EQ(fake.Requests().size(), 0u);
}

TEST(Crash, Kill9LosesNoAcknowledgedMessageAndNotificationsStillFire) {
  FakeSms fake;
  ServerProcess s(SmsToml(fake.port()), kTop,
                  "sms_delay_s = 2\nack_timeout_s = 1\nquiet_hours = \"off\"\n");
  std::string manager = MintToken("manager", "m1");
  HttpResult c = Http(s.port(), "POST", "/v1/user-chats", R"({"user_id":"zed"})", manager);
  ASSERT_EQ(c.status, 201);
  std::string chat(c.Json().at("chat_id").as_string());
  ASSERT_EQ(Http(s.port(), "PUT", "/v1/users/zed", R"({"phone":"+15550000099","sms_opt_in":true})",
                 manager)
                .status,
            200);
  // Steady sends from 4 clients; kill -9 while they run.
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::map<int64_t, std::string> acked;  // seq -> id of every 201
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) {
        try {
          HttpResult r =
              Http(s.port(), "POST", "/v1/user-chats/" + chat + "/messages",
                   "{\"text\":\"t" + std::to_string(t) + "-" + std::to_string(i) + "\"}", manager);
          if (r.status == 201) {
            auto v = r.Json();
            std::lock_guard lock(mu);
            acked[v.at("seq").as_int64()] = std::string(v.at("id").as_string());
          }
        } catch (...) {
          return;  // the server is gone
        }
      }
    });
  }
  std::this_thread::sleep_for(700ms);
  s.Signal(SIGKILL);
  stop = true;
  for (auto& t : senders) t.join();
  s.WaitExit(3000ms);
  ASSERT_GT(acked.size(), 20u);
  s.Restart();
  json::array msgs;
  for (;;) {  // every stored message, in pages
    HttpResult list = Http(
        s.port(), "GET",
        "/v1/user-chats/" + chat + "/messages?limit=1000&after_seq=" + std::to_string(msgs.size()),
        "", manager);
    ASSERT_EQ(list.status, 200);
    auto page = list.Json().at("messages").as_array();
    if (page.empty()) break;
    for (auto& m : page) msgs.push_back(m);
  }
  std::set<std::string> ids;
  for (size_t i = 0; i < msgs.size(); ++i) {
    EXPECT_EQ(msgs[i].at("seq").as_int64(), static_cast<int64_t>(i + 1))
        << "gap or duplicate at " << i;
    ids.emplace(msgs[i].at("id").as_string());
  }
  EXPECT_EQ(ids.size(), msgs.size());
  for (const auto& [seq, id] : acked) {
    ASSERT_LE(seq, static_cast<int64_t>(msgs.size())) << "acknowledged message " << seq << " lost";
    EXPECT_EQ(msgs[seq - 1].at("id").as_string(), id);
  }
  // The notification scheduled before the kill fires after the restart, once.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  size_t sms = 0;
  while (std::chrono::steady_clock::now() < deadline && sms == 0) {
    std::this_thread::sleep_for(100ms);
    sms = fake.Requests().size();
  }
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(fake.Requests().size(), 1u);
}

}  // namespace
}  // namespace onlined::testing
