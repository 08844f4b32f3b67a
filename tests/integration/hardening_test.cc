// What an attacker can send, against the real binary: each case is a defect
// that was found on an earlier main (docs/security.md lists them), with the
// behaviour that replaced it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <thread>

#include "harness.h"

namespace onlined::testing {
namespace {

namespace json = boost::json;

// A raw TCP client: connects from `source` (a loopback address), writes
// without reading unless told.
class RawClient {
 public:
  RawClient(uint16_t port, const char* source = "127.0.0.1", int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (rcvbuf > 0) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    inet_pton(AF_INET, source, &src.sin_addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) return;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  bool ok() const { return ok_; }
  // False once the peer has reset or closed the connection.
  bool Write(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // What arrives within `timeout` (or until the peer closes).
  std::string Read(Ms timeout) {
    timeval tv{0, 50000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[8192];
    while (std::chrono::steady_clock::now() < deadline) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) {
        closed_ = true;
        break;
      }
      if (n > 0) out.append(buf, static_cast<size_t>(n));
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        closed_ = true;
        break;
      }
    }
    return out;
  }
  // What has already arrived, without waiting.
  std::string ReadNow() {
    std::string out;
    char buf[8192];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) closed_ = true;
        return out;
      }
      out.append(buf, static_cast<size_t>(n));
    }
  }
  bool closed() const { return closed_; }

 private:
  int fd_ = -1;
  bool ok_ = false;
  bool closed_ = false;
};

std::string HelloFrame(const std::string& role, const std::string& sub,
                       const std::string& extra = "") {
  return MaskedFrame(0x81,
                     R"({"type":"hello","token":")" + MintToken(role, sub) + "\"" + extra + "}");
}

// True if an HTTP GET /healthz from 127.0.0.1 is answered 200 within `timeout`.
bool HealthzAnswers(uint16_t port, Ms timeout) {
  std::string out =
      RawExchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout);
  return out.rfind("HTTP/1.1 200", 0) == 0;
}

TEST(Hardening, PingsThatAreNeverReadCannotGrowTheServer) {
  // Defect: pongs were queued past send_queue_max; a client that sent pings
  // and never read grew the server by ~100 MB a second.
  ServerProcess s;
  for (bool after_hello : {false, true}) {
    RawClient c(s.port(), "127.0.0.1", 4096);
    ASSERT_TRUE(c.ok());
    std::string start = UpgradeRequest();
    if (after_hello) start += HelloFrame("user", "pinger");
    ASSERT_TRUE(c.Write(start));
    std::this_thread::sleep_for(100ms);
    const int64_t before = RssBytes(s.pid());
    std::string burst;
    for (int i = 0; i < 500; ++i) burst += MaskedFrame(0x89, std::string(125, 'p'));
    size_t sent = 0;
    auto deadline = std::chrono::steady_clock::now() + 3s;
    while (sent < (size_t{40} << 20) && std::chrono::steady_clock::now() < deadline &&
           c.Write(burst)) {
      sent += burst.size();
    }
    std::this_thread::sleep_for(300ms);
    const int64_t grew = RssBytes(s.pid()) - before;
    EXPECT_LT(grew, 16 << 20) << "server grew by " << grew << " bytes for " << sent
                              << " bytes of pings";
    EXPECT_LT(sent, size_t{40} << 20) << "the connection was never cut";
  }
  HttpResult m = Http(s.port(), "GET", "/metrics", "", kMetricsToken);
  EXPECT_NE(m.body.find("onlined_ws_slow_consumer_total 2"), std::string::npos)
      << m.body.substr(0, 2000);
  EXPECT_TRUE(HealthzAnswers(s.port(), 1000ms));
}

// A client that keeps its socket full does not hold its loop: past
// ws_read_budget_bytes in one wakeup its reads yield to the loop's other
// work, and the rest is read after, nothing lost and in order.
TEST(Hardening, ReadsPastTheBudgetYieldToTheLoopAndLoseNothing) {
  ServerProcess s("", "ws_read_budget_bytes = 4096");
  WsClient c;
  ASSERT_TRUE(c.Connect(s.port()));
  ASSERT_TRUE(c.Hello(MintToken("user", "reader")));
  // Sent while the server is stopped: its next wakeup finds 20 KB waiting.
  s.Signal(SIGSTOP);
  ASSERT_TRUE(Eventually(2s, [&] {
    std::ifstream stat("/proc/" + std::to_string(s.pid()) + "/stat");
    std::string pid, comm, state;
    stat >> pid >> comm >> state;
    return state == "T";
  }));
  for (int i = 0; i < 20; ++i) {
    c.Send(R"({"type":"zz)" + std::to_string(i) + R"(","pad":")" + std::string(1000, 'p') +
           R"("})");
  }
  c.Send(R"({"type":"ping"})");
  std::this_thread::sleep_for(50ms);
  s.Signal(SIGCONT);
  for (int i = 0; i < 20; ++i) {
    SCOPED_TRACE("frame " + std::to_string(i));
    auto err = c.Next();
    ASSERT_TRUE(err);
    EXPECT_NE(err->find("'zz" + std::to_string(i) + "'"), std::string::npos) << *err;
  }
  auto pong = c.Next();
  ASSERT_TRUE(pong);
  EXPECT_NE(pong->find(R"("pong")"), std::string::npos) << *pong;
  EXPECT_GE(MetricValue(s.port(), "onlined_ws_read_yields_total"), 1);
}

// A desk gets the channel's every message, event and receipt: its queue is
// deeper (desk_send_queue_max) than a user's (send_queue_max). With the same
// burst and neither reading, the user is cut as a slow consumer; the desk is
// not, and reads every message afterwards.
TEST(Hardening, ADeskHasADeeperSendQueueThanAUser) {
  ServerProcess s("", "send_queue_max = 32\ndesk_send_queue_max = 2048\nmax_text_bytes = 60000\n",
                  "manager_sends_per_s = 0\n");
  const std::string mgr = MintToken("manager", "m1");
  HttpResult c = Http(s.port(), "POST", "/v1/user-chats", R"({"user_id":"ann"})", mgr);
  ASSERT_EQ(c.status, 201) << c.body;
  const std::string chat(c.Json().at("chat_id").as_string());
  RawClient user(s.port(), "127.0.0.1", 4096);
  RawClient desk(s.port(), "127.0.0.1", 4096);
  ASSERT_TRUE(user.ok() && desk.ok());
  ASSERT_TRUE(user.Write(UpgradeRequest() + HelloFrame("user", "ann")));
  ASSERT_TRUE(desk.Write(UpgradeRequest() + HelloFrame("manager", "m1")));
  std::this_thread::sleep_for(300ms);
  // 200 messages of 60,000 bytes: more than the sockets' buffers hold (the
  // kernel's send buffer grows to 4 MiB), and than 32 frames.
  const std::string text(60000, 'x');
  constexpr int kMessages = 200;
  // Both keep pinging (the heartbeat timeout is short here, and the posts
  // slow under a sanitizer): only its queue may end a connection.
  const std::string ping = MaskedFrame(0x81, R"({"type":"ping"})");
  for (int i = 0; i < kMessages; ++i) {
    HttpResult r = Http(s.port(), "POST", "/v1/user-chats/" + chat + "/messages",
                        R"({"text":")" + text + "\"}", mgr);
    ASSERT_EQ(r.status, 201) << r.body;
    if (i % 10 == 0) {
      desk.Write(ping);
      user.Write(ping);
    }
  }
  EXPECT_GE(MetricValue(s.port(), "onlined_ws_slow_consumer_total"), 1) << "the user was not cut";
  std::string got;
  auto count = [&got] {
    int n = 0;
    for (size_t p = got.find(R"("type":"message")"); p != std::string::npos;
         p = got.find(R"("type":"message")", p + 1)) {
      ++n;
    }
    return n;
  };
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (count() < kMessages && !desk.closed() && std::chrono::steady_clock::now() < deadline) {
    got += desk.Read(200ms);
    desk.Write(ping);
  }
  EXPECT_EQ(count(), kMessages) << "the desk was cut or lost messages";
  EXPECT_FALSE(desk.closed());
  user.Read(500ms);
  EXPECT_TRUE(user.closed()) << "the user's connection outlived its queue's cap";
}

TEST(Hardening, DeskResumingFromFarBackGetsAResetNotACut) {
  // Defect: a replay longer than send_queue_max cut the desk before its
  // welcome was flushed, and the desk retried the same number forever.
  ServerProcess s("", "desk_send_queue_max = 32\n");
  uint64_t from = 0;
  {
    WsClient desk;
    ASSERT_TRUE(desk.Connect(s.port()));
    auto w = desk.Hello(MintToken("manager", "m1"));
    ASSERT_TRUE(w);
    from = w->at("event_seq").to_number<uint64_t>();
  }
  {
    // 40 users come (40 online events) and go (40 offline after the grace).
    std::vector<std::unique_ptr<WsClient>> users;
    for (int i = 0; i < 40; ++i) {
      users.push_back(std::make_unique<WsClient>());
      ASSERT_TRUE(users.back()->Connect(s.port()));
      ASSERT_TRUE(users.back()->Hello(MintToken("user", "u" + std::to_string(i))));
    }
  }
  // Their 40 offline events are out once the last of them is offline.
  std::string ids;
  for (int i = 0; i < 40; ++i) ids += (i ? ",\"u" : "\"u") + std::to_string(i) + "\"";
  ASSERT_TRUE(Eventually(5000ms, [&] {
    HttpResult r = Http(s.port(), "POST", "/v1/presence/query", R"({"user_ids":[)" + ids + "]}",
                        MintToken("manager", "m1"));
    return r.status == 200 && r.body.find("\"online\":true") == std::string::npos;
  }));
  for (int attempt = 0; attempt < 2; ++attempt) {  // and again: it never loops into a cut
    WsClient desk;
    ASSERT_TRUE(desk.Connect(s.port()));
    auto w = desk.Hello(MintToken("manager", "m1"), ",\"presence_after\":" + std::to_string(from));
    ASSERT_TRUE(w) << "the desk was cut before its welcome";
    EXPECT_GE(w->at("event_seq").to_number<uint64_t>(), from + 80);
    auto reset = desk.WaitFor("presence_reset", 2000ms);
    ASSERT_TRUE(reset);
    desk.Send(R"({"type":"ping"})");
    EXPECT_TRUE(desk.WaitFor("pong"));
  }
  // A short resume still replays the events themselves.
  WsClient desk;
  ASSERT_TRUE(desk.Connect(s.port()));
  auto w = desk.Hello(MintToken("manager", "m1"));
  ASSERT_TRUE(w);
  uint64_t now = w->at("event_seq").to_number<uint64_t>();
  desk.Close();
  {
    WsClient u;
    ASSERT_TRUE(u.Connect(s.port()));
    ASSERT_TRUE(u.Hello(MintToken("user", "late")));
    std::this_thread::sleep_for(200ms);
  }
  WsClient again;
  ASSERT_TRUE(again.Connect(s.port()));
  ASSERT_TRUE(
      again.Hello(MintToken("manager", "m1"), ",\"presence_after\":" + std::to_string(now)));
  auto p = again.WaitFor("presence", 2000ms);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->at("user_id").as_string(), "late");
}

TEST(Hardening, StateTogglesAreCoalescedNotFannedOut) {
  // Defect: every idle/active toggle of a user was one event to every desk.
  ServerProcess s;
  WsClient desk;
  ASSERT_TRUE(desk.Connect(s.port()));
  ASSERT_TRUE(desk.Hello(MintToken("manager", "m1")));
  RawClient user(s.port());
  ASSERT_TRUE(user.ok());
  std::string bytes = UpgradeRequest() + HelloFrame("user", "toggler");
  ASSERT_TRUE(user.Write(bytes));
  user.Read(200ms);
  std::string toggles;
  for (int i = 0; i < 1000; ++i) {
    toggles += MaskedFrame(0x81, i % 2 == 0 ? R"({"type":"state","state":"idle"})"
                                            : R"({"type":"state","state":"active"})");
  }
  toggles += MaskedFrame(0x81, R"({"type":"state","state":"idle"})");  // the last word
  ASSERT_TRUE(user.Write(toggles));
  int events = 0;
  std::string last_state;
  auto deadline = std::chrono::steady_clock::now() + 2500ms;
  while (std::chrono::steady_clock::now() < deadline) {
    auto f = desk.Next(100ms);
    if (!f) continue;
    json::value v = json::parse(*f);
    if (v.at("type").as_string() != "presence" || v.at("user_id").as_string() != "toggler")
      continue;
    ++events;
    if (v.as_object().contains("state")) last_state = std::string(v.at("state").as_string());
    user.Write(MaskedFrame(0x81, R"({"type":"ping"})"));
  }
  EXPECT_LE(events, 5) << "1001 toggles became " << events << " events";
  EXPECT_EQ(last_state, "idle") << "the last state must reach the desk";
}

TEST(Hardening, HeadGetsHeadersOnlyAndKeepAliveStaysInStep) {
  // Defect: HEAD answers carried a body, read by the client as the next response.
  ServerProcess s;
  std::string out = RawExchange(s.port(),
                                "HEAD /desk HTTP/1.1\r\nHost: x\r\n\r\n"
                                "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                1000ms);
  ASSERT_EQ(out.rfind("HTTP/1.1 200", 0), 0u) << out;
  size_t second = out.find("HTTP/1.1 ", 1);
  ASSERT_NE(second, std::string::npos) << out;
  std::string head = out.substr(0, second);
  EXPECT_NE(head.find("Content-Length: "), std::string::npos);
  EXPECT_EQ(head.substr(head.find("\r\n\r\n") + 4), "") << "HEAD carried a body";
  EXPECT_EQ(out.substr(second, 15), "HTTP/1.1 200 OK");
  EXPECT_NE(out.find(R"({"status":"ok"})", second), std::string::npos);
}

void RaiseOwnFileLimit() {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

TEST(Hardening, IdleSocketsFromOneAddressCannotStarveOthers) {
  // Defect: only upgraded WebSockets were counted; idle TCP connections that
  // never sent a request took every descriptor, and /healthz went unanswered.
  RaiseOwnFileLimit();
  ServerProcess s("", "max_connections_per_ip = 64\nhttp_idle_timeout_ms = 1000\n", "", 512);
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 600; ++i) {
    idle.push_back(std::make_unique<RawClient>(s.port(), "127.0.0.2"));
    ASSERT_TRUE(idle.back()->ok()) << i;
  }
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(HealthzAnswers(s.port(), 1500ms)) << "another address was starved";
  // Past the cap the sockets were answered at once, with a retry hint.
  std::string refused = idle.back()->Read(500ms);
  EXPECT_EQ(refused.rfind("HTTP/1.1 503", 0), 0u) << refused;
  EXPECT_NE(refused.find("Retry-After: "), std::string::npos) << refused;
  // The admitted idle ones time out and are closed by the server.
  std::string first = idle.front()->Read(2500ms);
  EXPECT_TRUE(idle.front()->closed()) << "an idle socket was kept open past http_idle_timeout_ms";
  WsClient fresh;
  EXPECT_TRUE(fresh.Connect(s.port()));
}

TEST(Hardening, OutOfDescriptorsTheServerStillAnswers503) {
  // accept() failing with EMFILE left clients waiting unanswered: a reserve
  // descriptor now lets the server accept, answer 503 and close.
  RaiseOwnFileLimit();
  ServerProcess s(
      "", "max_connections_per_ip = 0\nmax_connections = 100000\nhttp_idle_timeout_ms = 2000\n", "",
      300);
  std::vector<std::unique_ptr<RawClient>> many;
  for (int i = 0; i < 400; ++i) {
    many.push_back(std::make_unique<RawClient>(s.port(), "127.0.0.3"));
    ASSERT_TRUE(many.back()->ok()) << i;
  }
  // Each loop answers one socket waiting on its listener per pause (20 ms),
  // oldest first, from a pool of reserve descriptors the loops share. None
  // of the last 20 is left silent: each is answered 503 (shed) or, if a
  // descriptor was free when it was accepted, serves its request. Which of
  // the 400 are shed depends on timing; that some are does not. (A reserve
  // that another loop's accept took in the moment it was freed is refilled
  // once a descriptor frees up: here the admitted ones answer and close, or
  // time out after http_idle_timeout_ms.)
  for (size_t i = many.size() - 20; i < many.size(); ++i) {
    many[i]->Write("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  }
  int shed = 0, served = 0, closed = 0, silent = 0;
  std::string outcomes;  // one letter per socket, newest first, for a failure's message
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + 15s;
  for (size_t i = many.size(); i-- > many.size() - 20;) {
    auto left = std::chrono::duration_cast<Ms>(deadline - std::chrono::steady_clock::now());
    std::string out = many[i]->Read(std::max(left, Ms(100)));
    if (out.find("out of file descriptors") != std::string::npos) {
      ++shed;
      outcomes += 'S';
    } else if (out.rfind("HTTP/1.1 200", 0) == 0) {
      ++served;
      outcomes += 'O';
    } else if (many[i]->closed()) {
      ++closed;
      outcomes += 'C';
    } else {
      ++silent;
      outcomes += '-';
    }
  }
  const auto took = std::chrono::duration_cast<Ms>(std::chrono::steady_clock::now() - t0);
  // The ones before them: which of these got the 503 depends on how long the
  // sheds took beside other work, against the admitted ones' idle timeout
  // that frees descriptors. Past the limit, some must have.
  int shed_before = 0;
  for (size_t i = 0; i < many.size() - 20; ++i) {
    if (many[i]->ReadNow().find("out of file descriptors") != std::string::npos) ++shed_before;
  }
  const std::string why =
      "outcomes (newest first; S shed, O served, C closed, - silent): " + outcomes + " after " +
      std::to_string(took.count()) + " ms\nserver log:\n" + s.Stderr();
  std::printf("shed: %d of the last 20, %d of the %zu before them; last 20 %s\n", shed, shed_before,
              many.size() - 20, outcomes.c_str());
  EXPECT_GT(shed + shed_before, 0)
      << "no socket past the descriptor limit got an answer; of the last 20, " << served
      << " served, " << closed << " closed; " << why;
  EXPECT_EQ(silent, 0) << "sockets left waiting with no answer; " << why;
  EXPECT_NE(s.Stderr().find("shedding"), std::string::npos) << why;
}

TEST(Hardening, HandshakesOverTheRateAreToldToComeBack) {
  ServerProcess s("", "handshakes_per_s = 5\nhandshake_burst = 5\nretry_after_ms = 1500\n");
  int admitted = 0, told = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 15; ++i) {
    auto frames = ParseServerFrames(RawExchange(s.port(), UpgradeRequest(), 30ms));
    bool closed_1013 = false;
    for (const auto& f : frames) {
      if (f.opcode == 0x8 && f.close_code() == 1013) {
        closed_1013 = f.payload.find("\"retry_after_ms\":1500") != std::string::npos;
      }
    }
    (closed_1013 ? told : admitted) += 1;
  }
  double elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(admitted, 5);
  EXPECT_LE(admitted,
            5 + static_cast<int>(elapsed_s * 5) + 1);  // the burst and what the refill adds
  EXPECT_EQ(admitted + told, 15) << "every refused upgrade carries the retry hint";
  EXPECT_GE(told, 5);
}

TEST(Hardening, MetricsAreNotOnThePublicListenerWithoutTheToken) {
  // Defect: /metrics was open to anyone and named every tenant.
  ServerProcess s;
  EXPECT_EQ(Http(s.port(), "GET", "/metrics").status, 401);
  EXPECT_EQ(Http(s.port(), "GET", "/metrics", "", "wrong-token").status, 401);
  EXPECT_EQ(Http(s.port(), "GET", "/metrics", "", kMetricsToken).status, 200);
  // Without a token configured it is not there at all; metrics_listen serves it.
  uint16_t mport = 0;
  {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    mport = ntohs(a.sin_port);
    ::close(fd);
  }
  ServerProcess apart(
      "", "metrics_listen = \"127.0.0.1:" + std::to_string(mport) + "\"\nmetrics_token = \"\"\n");
  EXPECT_EQ(Http(apart.port(), "GET", "/metrics").status, 404);
  HttpResult m = Http(mport, "GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("onlined_connections"), std::string::npos);
  EXPECT_EQ(Http(mport, "GET", "/v1/user-chats", "", MintToken("manager", "m1")).status, 404);
}

TEST(Hardening, PagesCannotBeFramedUnlessAllowed) {
  ServerProcess s;
  HttpResult r = Http(s.port(), "GET", "/desk");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.Header("Content-Security-Policy").find("frame-ancestors 'none'"), std::string::npos);
  EXPECT_EQ(r.Header("X-Frame-Options"), "DENY");
  // The pages connect to their own host only (spelled out for Safari < 16);
  // a Host that is not a plain host:port does not get into the policy.
  EXPECT_NE(r.Header("Content-Security-Policy")
                .find("connect-src 'self' ws://127.0.0.1 wss://127.0.0.1;"),
            std::string::npos)
      << r.Header("Content-Security-Policy");
  HttpResult odd = Http(s.port(), "GET", "/desk", "", "", {{"Host", "x; script-src *"}});
  EXPECT_NE(odd.Header("Content-Security-Policy").find("connect-src 'self';"), std::string::npos)
      << odd.Header("Content-Security-Policy");
  ServerProcess shop("", "frame_ancestors = \"https://shop.example\"\n");
  HttpResult w = Http(shop.port(), "GET", "/widget");
  EXPECT_NE(w.Header("Content-Security-Policy").find("frame-ancestors https://shop.example"),
            std::string::npos);
  EXPECT_EQ(w.Header("X-Frame-Options"), "");
}

}  // namespace
}  // namespace onlined::testing
