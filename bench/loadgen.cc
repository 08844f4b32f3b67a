// loadgen: opens many WebSocket connections to onlined (as users), keeps them
// alive with heartbeats at a set rate, and optionally sends bulk presence
// queries at a set rate; records latencies. One thread, one process; the
// driver (bench/run) starts several to stay under the per-process file limit.
//
// Output: progress on stderr; "READY <n>" on stdout once connected, then one
// JSON line of results when done.
#include <netinet/in.h>
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "auth/token.h"
#include "base/clock.h"

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  std::string channel = "bench";
  std::string secret;
  int conns = 1000;
  int offset = 0;           // first user index
  int sources = 4;          // 127.0.0.2 .. 127.0.0.(1+sources)
  int inflight = 256;       // handshakes in flight
  double hb_per_conn = 1.0; // heartbeats per connection per second
  double duration_s = 10;
  double query_rate = 0;    // presence queries per second (100 ids each)
  int query_ids = 100;
  int query_conns = 4;
  int total_users = 0;      // ids to pick from for queries (default conns)
  bool wait_stdin = false;  // after the run, hold connections until stdin closes
};

// Latency samples in microseconds (bounded reservoir).
struct Histogram {
  std::vector<uint32_t> v;
  uint64_t count = 0;
  std::mt19937 rng{42};
  void Add(int64_t us) {
    ++count;
    if (v.size() < 2'000'000) {
      v.push_back(static_cast<uint32_t>(std::min<int64_t>(us, UINT32_MAX)));
    } else {
      std::uniform_int_distribution<uint64_t> d(0, count - 1);
      uint64_t k = d(rng);
      if (k < v.size()) v[k] = static_cast<uint32_t>(us);
    }
  }
  std::string Json() {
    std::sort(v.begin(), v.end());
    auto q = [&](double p) -> double {
      if (v.empty()) return 0;
      return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))] / 1000.0;
    };
    char buf[256];
    snprintf(buf, sizeof buf, R"({"count":%llu,"p50_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"max_ms":%.3f})",
             static_cast<unsigned long long>(count), q(0.5), q(0.99), q(0.999), v.empty() ? 0.0 : v.back() / 1000.0);
    return buf;
  }
};

constexpr unsigned char kMask[4] = {0x12, 0x34, 0x56, 0x78};

// A masked client text frame.
std::string ClientFrame(std::string_view payload) {
  std::string f;
  f.push_back(static_cast<char>(0x81));
  size_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(0x80 | n));
  } else if (n < 65536) {
    f.push_back(static_cast<char>(0x80 | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xff));
  } else {
    f.push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((static_cast<uint64_t>(n) >> (8 * i)) & 0xff));
  }
  f.append(reinterpret_cast<const char*>(kMask), 4);
  for (size_t i = 0; i < n; ++i) f.push_back(static_cast<char>(payload[i] ^ kMask[i % 4]));
  return f;
}

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch()).count();
}

class Loadgen;

struct Conn {
  Loadgen* lg;
  tcp::socket sock;
  int index;
  enum { kConnecting, kUpgrading, kHello, kLive, kDead } state = kConnecting;
  char buf[512];
  size_t have = 0;
  int64_t ping_sent_us = 0;  // 0: no ping outstanding
  bool writing = false;
  std::string hello;  // upgrade + hello, freed once sent
  explicit Conn(Loadgen* l, asio::io_context& io, int i) : lg(l), sock(io), index(i) {}
};

class Loadgen {
 public:
  Loadgen(Options o) : o_(std::move(o)), ping_(ClientFrame(R"({"type":"ping"})")), tick_(io_) {}

  int Run();

  // Stats
  int live = 0, failed = 0, dead = 0;
  uint64_t pings = 0, pongs = 0, frames_in = 0, queries_ok = 0, queries_err = 0;
  Histogram hb_lat, q_lat, connect_lat;

 private:
  friend struct Conn;
  void StartMore();
  void Connect(Conn* c);
  void Read(Conn* c);
  void OnData(Conn* c);
  void Fail(Conn* c);
  void Tick();
  void StartQueries();
  void Query(size_t q);

  Options o_;
  asio::io_context io_{1};
  std::vector<std::unique_ptr<Conn>> conns_;
  std::string ping_;
  asio::steady_timer tick_;
  int next_ = 0, in_flight_ = 0;
  int64_t start_us_ = 0, steady_start_us_ = 0;
  bool ready_printed_ = false, stopping_ = false;
  size_t hb_cursor_ = 0;
  double hb_debt_ = 0;

  struct QueryConn {
    std::unique_ptr<tcp::socket> sock;
    std::string req, resp;
    int64_t sent_us = 0;
    bool busy = false;
  };
  std::vector<QueryConn> qconns_;
  double q_debt_ = 0;
  std::mt19937 rng_{7};
};

void Loadgen::Connect(Conn* c) {
  ++in_flight_;
  int64_t t0 = NowUs();
  boost::system::error_code ec;
  c->sock.open(tcp::v4(), ec);
  int one = 1;
  setsockopt(c->sock.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  c->sock.set_option(tcp::no_delay(true), ec);
  std::string src = "127.0.0." + std::to_string(2 + c->index % o_.sources);
  c->sock.bind(tcp::endpoint(asio::ip::make_address(src), 0), ec);
  if (ec) return Fail(c);
  std::string user = "u" + std::to_string(o_.offset + c->index);
  std::string token = onlined::auth::Mint(
      {o_.channel, user, onlined::auth::Role::kUser, onlined::base::WallMs() / 1000 + 86400}, o_.secret);
  c->hello = "GET /v1/connect HTTP/1.1\r\nHost: " + o_.host +
             "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n" +
             ClientFrame(R"({"type":"hello","token":")" + token + "\"}");
  c->sock.async_connect(tcp::endpoint(asio::ip::make_address(o_.host), o_.port), [this, c, t0](auto ec) {
    if (ec) return Fail(c);
    c->state = Conn::kUpgrading;
    asio::async_write(c->sock, asio::buffer(c->hello), [this, c, t0](auto ec, size_t) {
      if (ec) return Fail(c);
      std::string().swap(c->hello);
      connect_lat.Add(NowUs() - t0);
      Read(c);
    });
  });
}

void Loadgen::Read(Conn* c) {
  c->sock.async_read_some(asio::buffer(c->buf + c->have, sizeof c->buf - c->have), [this, c](auto ec, size_t n) {
    if (ec) return Fail(c);
    c->have += n;
    OnData(c);
    if (c->state != Conn::kDead) Read(c);
  });
}

void Loadgen::OnData(Conn* c) {
  size_t pos = 0;
  if (c->state == Conn::kUpgrading) {
    std::string_view s(c->buf, c->have);
    size_t end = s.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      if (c->have == sizeof c->buf) Fail(c);
      return;
    }
    if (s.substr(0, 12) != "HTTP/1.1 101") return Fail(c);
    pos = end + 4;
    c->state = Conn::kHello;
  }
  // Server frames: unmasked. Keep partial frames for the next read.
  for (;;) {
    if (c->have - pos < 2) break;
    auto* b = reinterpret_cast<unsigned char*>(c->buf + pos);
    size_t len = b[1] & 0x7f, hdr = 2;
    if (len == 126) {
      if (c->have - pos < 4) break;
      len = (b[2] << 8) | b[3];
      hdr = 4;
    } else if (len == 127) {
      return Fail(c);  // not expected in this load
    }
    if (hdr + len > sizeof c->buf) return Fail(c);
    if (c->have - pos < hdr + len) break;
    std::string_view payload(c->buf + pos + hdr, len);
    uint8_t opcode = b[0] & 0x0f;
    ++frames_in;
    if (opcode == 8) return Fail(c);  // close
    if (c->state == Conn::kHello) {
      if (payload.find("\"welcome\"") != std::string_view::npos) {
        c->state = Conn::kLive;
        ++live;
        --in_flight_;
        StartMore();
      } else {
        return Fail(c);
      }
    } else if (payload == R"({"type":"pong"})") {
      ++pongs;
      if (c->ping_sent_us) {
        hb_lat.Add(NowUs() - c->ping_sent_us);
        c->ping_sent_us = 0;
      }
    }
    pos += hdr + len;
  }
  if (pos > 0) {
    memmove(c->buf, c->buf + pos, c->have - pos);
    c->have -= pos;
  }
}

void Loadgen::Fail(Conn* c) {
  if (c->state == Conn::kDead) return;
  if (c->state == Conn::kLive) {
    --live;
    ++dead;
  } else {
    ++failed;
    --in_flight_;
  }
  c->state = Conn::kDead;
  boost::system::error_code ec;
  c->sock.close(ec);
  if (!stopping_) StartMore();
}

void Loadgen::StartMore() {
  while (next_ < o_.conns && in_flight_ < o_.inflight) Connect(conns_[next_++].get());
  if (!ready_printed_ && next_ == o_.conns && in_flight_ == 0) {
    ready_printed_ = true;
    fprintf(stderr, "loadgen: %d live, %d failed in %.2f s\n", live, failed, (NowUs() - start_us_) / 1e6);
    printf("READY %d %.3f\n", live, (NowUs() - start_us_) / 1e6);
    fflush(stdout);
    steady_start_us_ = NowUs();
    Tick();
    if (o_.query_rate > 0) StartQueries();
  }
}

void Loadgen::Tick() {
  constexpr int kTickMs = 10;
  int64_t now = NowUs();
  if (now - steady_start_us_ > o_.duration_s * 1e6) {
    stopping_ = true;
    io_.stop();
    return;
  }
  // Heartbeats: spread evenly over the connections.
  hb_debt_ += o_.hb_per_conn * static_cast<double>(conns_.size()) * kTickMs / 1000.0;
  while (hb_debt_ >= 1 && !conns_.empty()) {
    hb_debt_ -= 1;
    Conn* c = conns_[hb_cursor_++ % conns_.size()].get();
    if (c->state != Conn::kLive || c->writing) continue;
    c->writing = true;
    c->ping_sent_us = NowUs();
    ++pings;
    asio::async_write(c->sock, asio::buffer(ping_), [this, c](auto ec, size_t) {
      c->writing = false;
      if (ec) Fail(c);
    });
  }
  if (o_.query_rate > 0) {
    q_debt_ += o_.query_rate * kTickMs / 1000.0;
    for (size_t q = 0; q < qconns_.size() && q_debt_ >= 1; ++q) {
      if (qconns_[q].busy) continue;
      q_debt_ -= 1;
      Query(q);
    }
    if (q_debt_ > 100) q_debt_ = 100;  // closed loop when saturated: do not build a backlog
  }
  tick_.expires_after(std::chrono::milliseconds(kTickMs));
  tick_.async_wait([this](auto ec) {
    if (!ec) Tick();
  });
}

void Loadgen::StartQueries() {
  std::string token = onlined::auth::Mint(
      {o_.channel, "bench-desk", onlined::auth::Role::kManager, onlined::base::WallMs() / 1000 + 86400}, o_.secret);
  qconns_.resize(o_.query_conns);
  for (auto& q : qconns_) {
    q.sock = std::make_unique<tcp::socket>(io_);
    q.sock->connect(tcp::endpoint(asio::ip::make_address(o_.host), o_.port));
    q.sock->set_option(tcp::no_delay(true));
    q.req = "Bearer " + token;  // kept; the request is built per query
  }
}

void Loadgen::Query(size_t qi) {
  QueryConn& q = qconns_[qi];
  int users = o_.total_users > 0 ? o_.total_users : o_.conns;
  std::uniform_int_distribution<int> pick(0, users - 1);
  std::string body = R"({"user_ids":[)";
  for (int i = 0; i < o_.query_ids; ++i) {
    if (i) body += ',';
    body += "\"u" + std::to_string(pick(rng_)) + "\"";
  }
  body += "]}";
  auto req = std::make_shared<std::string>("POST /v1/presence/query HTTP/1.1\r\nHost: x\r\nAuthorization: " + q.req +
                                           "\r\nContent-Type: application/json\r\nContent-Length: " +
                                           std::to_string(body.size()) + "\r\n\r\n" + body);
  q.busy = true;
  q.sent_us = NowUs();
  q.resp.clear();
  asio::async_write(*q.sock, asio::buffer(*req), [this, qi, req](auto ec, size_t) {
    if (ec) {
      ++queries_err;
      return;
    }
    // Read until the whole body (Content-Length) is in.
    auto buf = std::make_shared<std::array<char, 65536>>();
    auto step = std::make_shared<std::function<void()>>();
    *step = [this, qi, buf, step] {
      QueryConn& q = qconns_[qi];
      q.sock->async_read_some(asio::buffer(*buf), [this, qi, buf, step](auto ec, size_t n) {
        QueryConn& q = qconns_[qi];
        if (ec) {
          ++queries_err;
          return;
        }
        q.resp.append(buf->data(), n);
        size_t he = q.resp.find("\r\n\r\n");
        if (he != std::string::npos) {
          size_t cl = q.resp.find("Content-Length: ");
          if (cl == std::string::npos) cl = q.resp.find("content-length: ");
          size_t len = cl == std::string::npos ? 0 : std::stoul(q.resp.substr(cl + 16));
          if (q.resp.size() >= he + 4 + len) {
            q_lat.Add(NowUs() - q.sent_us);
            if (q.resp.compare(0, 12, "HTTP/1.1 200") == 0) ++queries_ok; else ++queries_err;
            q.busy = false;
            return;
          }
        }
        (*step)();
      });
    };
    (*step)();
  });
}

int Loadgen::Run() {
  for (int i = 0; i < o_.conns; ++i) conns_.push_back(std::make_unique<Conn>(this, io_, i));
  start_us_ = NowUs();
  StartMore();
  io_.run();
  double secs = (NowUs() - steady_start_us_) / 1e6;
  printf(R"({"live":%d,"failed":%d,"dropped":%d,"connect_s":%.3f,"steady_s":%.3f,"pings":%llu,"pongs":%llu,)"
         R"("heartbeat_rtt":%s,"queries_ok":%llu,"queries_err":%llu,"query_latency":%s,"handshake":%s})"
         "\n",
         live, failed, dead, (steady_start_us_ - start_us_) / 1e6, secs, static_cast<unsigned long long>(pings),
         static_cast<unsigned long long>(pongs), hb_lat.Json().c_str(), static_cast<unsigned long long>(queries_ok),
         static_cast<unsigned long long>(queries_err), q_lat.Json().c_str(), connect_lat.Json().c_str());
  fflush(stdout);
  if (o_.wait_stdin) {
    char b[64];
    while (fread(b, 1, sizeof b, stdin) > 0) {
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        fprintf(stderr, "loadgen: %s needs a value\n", a.c_str());
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--host") o.host = val();
    else if (a == "--port") o.port = static_cast<uint16_t>(std::stoi(val()));
    else if (a == "--channel") o.channel = val();
    else if (a == "--secret") o.secret = val();
    else if (a == "--conns") o.conns = std::stoi(val());
    else if (a == "--offset") o.offset = std::stoi(val());
    else if (a == "--sources") o.sources = std::stoi(val());
    else if (a == "--inflight") o.inflight = std::stoi(val());
    else if (a == "--hb-per-conn") o.hb_per_conn = std::stod(val());
    else if (a == "--duration") o.duration_s = std::stod(val());
    else if (a == "--query-rate") o.query_rate = std::stod(val());
    else if (a == "--query-ids") o.query_ids = std::stoi(val());
    else if (a == "--query-conns") o.query_conns = std::stoi(val());
    else if (a == "--total-users") o.total_users = std::stoi(val());
    else if (a == "--wait-stdin") o.wait_stdin = true;
    else {
      fprintf(stderr, "loadgen: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (o.secret.empty()) {
    fprintf(stderr, "loadgen: --secret is required\n");
    return 2;
  }
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  Loadgen lg(o);
  return lg.Run();
}
