// Deadlines on a test clock: an onlined node in this process (app::Node, the
// same wiring as the binary) whose loops run on a base::ManualClock, reached
// over real sockets by the real WebSocket client. Time moves only when the
// test moves it, so the grace and the heartbeat timeout are checked at their
// edges (one millisecond before: nothing; a wheel tick after: the event) instead of in
// sleep windows that a loaded machine (a sanitizer build, -j2) stretches. The
// loops read wall time from the same clock, so a token's exp is one of these
// deadlines too.
//
// Real time still passes for the work itself (a frame crossing the socket);
// the waits below are for that work, bounded and generous, never for a
// deadline.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <thread>

#include "app/node.h"
#include "base/clock.h"
#include "config/config.h"
#include "harness.h"

namespace onlined::testing {
namespace {

namespace json = boost::json;

constexpr int64_t kGraceMs = 800;
// The loops' wheel tick: a deadline fires at the first tick edge at or after
// it (base::TimingWheel), so "at it" below means within one tick after.
constexpr int64_t kTickMs = 100;
constexpr int64_t kRetainMs = 24 * 3600 * 1000;  // presence::TableOptions' default

class TestClock : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/onlined-clock-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    const std::string toml = std::string("listen = \"127.0.0.1:0\"\n") +  //
                             "data_dir = \"" + dir_ + "\"\n" +            //
                             "heartbeat_s = 1\n" +                        //
                             "offline_grace_ms = " + std::to_string(kGraceMs) + "\n" +
                             "hello_timeout_ms = 1500\n" +  //
                             "threads = 2\n" +              //
                             "metrics_listen = \"\"\n" +    //
                             "log_level = \"warn\"\n" +     //
                             "[[channels]]\nid = \"acme\"\nsecret = \"" + kSecret + "\"\n";
    node_ = app::Node::Start(config::LoadFromString(toml, {}, {}, "deadline_test"), {},
                             clock_.AsSteadyClock());
    port_ = node_->port();
  }

  void TearDown() override {
    node_->Stop();
    node_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Moves the clock and has every loop fire what is now due.
  void Advance(int64_t ms) {
    clock_.Advance(ms);
    node_->TickLoops();
  }

  // A desk that answers for itself: its heartbeat is sent by Keep() before
  // the clock moves, so only the connections a test leaves silent time out.
  std::unique_ptr<WsClient> Desk() {
    auto c = std::make_unique<WsClient>();
    EXPECT_TRUE(c->Connect(port_));
    EXPECT_TRUE(c->Hello(MintToken("manager", "m1")).has_value());
    return c;
  }

  std::unique_ptr<WsClient> User(const std::string& user) {
    auto c = std::make_unique<WsClient>();
    EXPECT_TRUE(c->Connect(port_));
    auto w = c->Hello(MintToken("user", user));
    EXPECT_TRUE(w.has_value());
    if (w) timeout_ms_ = w->at("heartbeat_timeout_ms").as_int64();
    return c;
  }

  // Moves the clock by `ms` in steps of a second, `desk` beating before each
  // (so that only the connections a test leaves silent time out).
  void AdvanceKeeping(WsClient& desk, int64_t ms) {
    int64_t moved = 0;
    while (moved + 1000 < ms) {
      Keep(desk);
      Advance(1000);
      moved += 1000;
    }
    Keep(desk);
    Advance(ms - moved);
  }

  // A heartbeat, answered: the server has seen the frame at the clock's now.
  static void Keep(WsClient& c) {
    c.Send(R"({"type":"ping"})");
    ASSERT_TRUE(c.WaitFor("pong", 5000ms));
  }

  json::object Info(const std::string& user) {
    HttpResult r = Http(port_, "POST", "/v1/presence/query", R"({"user_ids":[")" + user + R"("]})",
                        MintToken("manager", "m1"));
    EXPECT_EQ(r.status, 200) << r.body;
    return r.Json().at("users").at(user).as_object();
  }

  // Until the node has taken in what the socket said (a close, an open).
  void AwaitSessions(const std::string& user, int64_t n) {
    for (int i = 0; i < 500 && Info(user).at("sessions").as_int64() != n; ++i)
      std::this_thread::sleep_for(10ms);
    ASSERT_EQ(Info(user).at("sessions").as_int64(), n);
  }

  // A desk that saw alice come online, then her one session close: her
  // grace runs from the clock's now. The desk's heartbeat is fresh.
  std::unique_ptr<WsClient> DeskAfterAliceLeft() {
    auto desk = Desk();
    auto alice = User("alice");
    EXPECT_TRUE(desk->WaitFor("presence", 5000ms));
    alice->Close();
    AwaitSessions("alice", 0);
    Keep(*desk);
    return desk;
  }

  static bool IsPresence(const json::value& v, const std::string& user, bool online) {
    return v.at("user_id").as_string() == user && v.at("online").as_bool() == online;
  }

  // How long to listen for a frame that must not come: the frame would be
  // on its way already (the loops fired what was due before TickLoops
  // returned), so this is the socket's latency with a margin, not a deadline.
  static constexpr Ms kQuiet = 300ms;

  // Off the tick grid, so a deadline falls inside a tick: firing early (at the
  // start of the deadline's tick) would show as an event one step too soon.
  base::ManualClock clock_{1'000'050};
  std::string dir_;
  std::unique_ptr<app::Node> node_;
  uint16_t port_ = 0;
  int64_t timeout_ms_ = 0;
};

TEST_F(TestClock, CloseGoesOfflineAtTheGraceNeverBefore) {
  auto desk = DeskAfterAliceLeft();  // alice closed, now in her grace
  Advance(kGraceMs - 1);
  EXPECT_FALSE(desk->WaitFor("presence", kQuiet));  // one millisecond short: still online
  EXPECT_TRUE(Info("alice").at("online").as_bool());
  Advance(kTickMs);
  auto ev = desk->WaitFor("presence", 5000ms);
  ASSERT_TRUE(ev);
  EXPECT_TRUE(IsPresence(*ev, "alice", false));
  EXPECT_FALSE(Info("alice").at("online").as_bool());
  EXPECT_GT(Info("alice").at("last_seen").as_int64(), 0);
}

TEST_F(TestClock, AReconnectOneMillisecondBeforeTheGraceDoesNotFlap) {
  auto desk = DeskAfterAliceLeft();
  Advance(kGraceMs - 1);
  auto again = User("alice");  // a page reload, at the last moment
  AwaitSessions("alice", 1);
  for (int i = 0; i < 4; ++i) {  // far past where the grace would have ended
    Keep(*again);
    Keep(*desk);
    Advance(kGraceMs);
  }
  EXPECT_FALSE(desk->WaitFor("presence", kQuiet));  // no offline, no second online
  EXPECT_TRUE(Info("alice").at("online").as_bool());
}

TEST_F(TestClock, ASilentSessionEndsAtTheHeartbeatTimeoutNotBefore) {
  auto desk = Desk();
  auto alice = User("alice");
  ASSERT_TRUE(desk->WaitFor("presence", 5000ms));
  ASSERT_GT(timeout_ms_, 1000);
  Keep(*alice);  // alice's last frame, at the clock's now; then silence
  AdvanceKeeping(*desk, timeout_ms_ - 1);
  EXPECT_FALSE(desk->WaitFor("presence", kQuiet));
  EXPECT_FALSE(alice->closed());
  EXPECT_EQ(Info("alice").at("sessions").as_int64(), 1);
  Keep(*desk);
  Advance(kTickMs);  // the timeout: cut, and offline at once (no grace for the silent)
  EXPECT_TRUE(alice->WaitClosed(5000ms));
  auto ev = desk->WaitFor("presence", 5000ms);
  ASSERT_TRUE(ev);
  EXPECT_TRUE(IsPresence(*ev, "alice", false));
}

// The loop's time is as old as its last tick: a frame that came later in
// that tick is counted from when it came, not from the tick (the session was
// cut up to a tick early, more on a busy loop).
TEST_F(TestClock, ASilentSessionsTimeoutCountsFromItsFrameNotFromTheLastTick) {
  auto desk = Desk();
  auto alice = User("alice");
  ASSERT_TRUE(desk->WaitFor("presence", 5000ms));
  ASSERT_GT(timeout_ms_, 1000);
  clock_.Advance(kTickMs - 10);            // time moves on, the loops do not tick
  Keep(*alice);                            // alice's last frame, late in the tick
  AdvanceKeeping(*desk, timeout_ms_ - 1);  // 1 ms short of the timeout from the frame
  EXPECT_FALSE(alice->WaitClosed(kQuiet)) << "cut before its timeout";
  EXPECT_EQ(Info("alice").at("sessions").as_int64(), 1);
  Keep(*desk);
  Advance(kTickMs);
  EXPECT_TRUE(alice->WaitClosed(5000ms));
}

TEST_F(TestClock, HeartbeatsKeepASessionAliveFarPastTheTimeout) {
  auto desk = Desk();
  auto alice = User("alice");
  ASSERT_TRUE(desk->WaitFor("presence", 5000ms));
  for (int i = 0; i < 20; ++i) {  // 20 s of clock, ten times the timeout
    Keep(*alice);
    Keep(*desk);
    Advance(1000);
  }
  EXPECT_FALSE(desk->WaitFor("presence", kQuiet));
  EXPECT_FALSE(alice->closed());
  EXPECT_TRUE(Info("alice").at("online").as_bool());
}

TEST_F(TestClock, OneOfTwoTabsClosedStaysOnlinePastTheGrace) {
  auto desk = Desk();
  auto tab1 = User("alice");
  auto tab2 = User("alice");
  ASSERT_TRUE(desk->WaitFor("presence", 5000ms));
  tab1->Close();
  AwaitSessions("alice", 1);
  Keep(*tab2);
  Keep(*desk);
  Advance(kGraceMs * 2);
  EXPECT_FALSE(desk->WaitFor("presence", kQuiet));
  json::object info = Info("alice");
  EXPECT_TRUE(info.at("online").as_bool());
  EXPECT_EQ(info.at("sessions").as_int64(), 1);
}

TEST_F(TestClock, AnOfflineUserIsForgottenAtTheRetentionNotBefore) {
  auto desk = DeskAfterAliceLeft();
  Advance(kGraceMs + kTickMs);
  ASSERT_TRUE(desk->WaitFor("presence", 5000ms));  // offline; last_seen kept from here
  ASSERT_FALSE(Info("alice").at("last_seen").is_null());
  desk->Close();  // from here on only HTTP asks: no heartbeat to keep
  Advance(kRetainMs - 1);
  EXPECT_FALSE(Info("alice").at("last_seen").is_null());  // one millisecond short
  Advance(kTickMs);
  EXPECT_TRUE(Info("alice").at("last_seen").is_null());  // forgotten
}

TEST_F(TestClock, ASessionEndsAtItsTokensExpNeverBefore) {
  WsClient c;
  ASSERT_TRUE(c.Connect(port_));
  auto w = c.Hello(MintToken("manager", "m1", "acme", 5));
  ASSERT_TRUE(w);
  const int64_t exp_ms = w->at("expires_at").as_int64();
  // The loops read wall time from the test's clock: exp is this far ahead.
  int64_t left = exp_ms - clock_.Wall();
  ASSERT_GT(left, 3000);  // a 5 s token, whole seconds, minus the time taken so far
  // Heartbeats (each step under the timeout) carry the session to its exp.
  while (left - 1 > 1000) {
    Keep(c);
    Advance(1000);
    left -= 1000;
  }
  Keep(c);
  Advance(left - 1);  // one millisecond short: still live
  EXPECT_FALSE(c.WaitFor("error", kQuiet));
  EXPECT_FALSE(c.closed());
  Keep(c);
  Advance(kTickMs);
  auto err = c.WaitFor("error", 5000ms);
  ASSERT_TRUE(err) << "no error frame at the token's exp";
  EXPECT_EQ(err->at("code").as_string(), "session_expired");
  auto code = c.WaitClosed(5000ms);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 4001);
}

TEST_F(TestClock, NoHelloWithinItsDeadlineIsRefusedAtIt) {
  WsClient c;
  ASSERT_TRUE(c.Connect(port_));
  // The upgrade is served; no hello follows. Let the node register the
  // connection's deadline at the clock's now before moving it.
  std::this_thread::sleep_for(100ms);
  Advance(1499);
  EXPECT_FALSE(c.WaitClosed(kQuiet));
  Advance(kTickMs);
  auto err = c.WaitFor("error", 5000ms);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->at("code").as_string(), "hello_timeout");
}

}  // namespace
}  // namespace onlined::testing
