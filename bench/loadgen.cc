// loadgen: opens many WebSocket connections to onlined (as users), keeps them
// alive with heartbeats at a set rate, and optionally sends bulk presence
// queries at a set rate; records latencies. One thread, one process; the
// driver (bench/run) starts several to stay under the per-process file limit.
//
// Output: progress on stderr; "READY <n>" on stdout once connected, then one
// JSON line of results when done. SIGUSR1 prints "MARK <pongs> <pings>" (so the driver
// can line a CPU sample up with a heartbeat count); with --streams-on-mark K
// the HTTP load (queries, sends, lists) starts at the K-th mark, not at READY.
// SIGINT ends the run early, with the usual report.
#include <netinet/in.h>
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <unordered_map>
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
  uint16_t http_port = 0;  // HTTP load (sends, queries, lists) to another node; 0: `port`
  std::string channel = "bench";
  std::string secret;
  int conns = 1000;
  int offset = 0;            // first user index
  int sources = 4;           // 127.0.0.2 .. 127.0.0.(1+sources)
  int inflight = 256;        // handshakes in flight
  double hb_per_conn = 1.0;  // heartbeats per connection per second
  double duration_s = 10;
  double query_rate = 0;  // presence queries per second (100 ids each)
  int query_ids = 100;
  int query_conns = 4;
  int total_users = 0;      // ids to pick from for queries (default conns)
  bool wait_stdin = false;  // after the run, hold connections until stdin closes
  std::string chats_file;   // "<user> <chat_id> [<seq>]" lines: where sends go
  // --resume: each user's hello names its chat with the newest seq it has
  // (the chats file's third column, as a widget keeps it), so that a
  // reconnect replays only what it missed, not the chat's last 500 messages;
  // at the end the file gets the newest seq each user received, for the next
  // run's hello.
  bool resume = false;
  double send_rate = 0;  // manager messages per second (POST), to connected users' chats
  int send_conns = 8;
  double list_rate = 0;  // GET /v1/user-chats?limit=50 per second
  int list_conns = 2;
  bool socketio =
      false;           // speak Socket.IO (Engine.IO v4 over WebSocket) instead of onlined's frames
  bool storm = false;  // after the steady phase, drop every connection at once and reconnect all
  int streams_on_mark = 0;  // start the HTTP streams at this SIGUSR1 (0: at READY)
  int desks = 0;  // the first `desks` connections are managers ("desk<i>"), who get every message
  bool ack = false;  // users ack what they receive as the widget does (not Socket.IO): below
  // --ack-delay-ms: how long an ack waits for more messages to cover (the
  // widget's 250 ms); 0 acks each message as it arrives (a client that
  // does not coalesce; still one frame in flight per connection).
  int64_t ack_delay_us = 250000;
  // How often heartbeats and HTTP requests go out: what is owed since the
  // last tick goes at once, so a request stream at R/s arrives in bursts of
  // R * tick. 10 ms (the default) is what every recorded run used until
  // 2026-12-03; the deliver scenario passes 1 (sends from many independent
  // managers do not arrive 40 at a time).
  int tick_us = 10000;
  // --tick-jitter: each tick comes after a wait drawn afresh, uniformly from
  // 0 to two ticks (one on average), instead of a tick's length after the
  // last one ended. Several loaders' bursts then meet or miss each other anew
  // every tick, the same mix in every round. Without it they met or
  // interleaved as the loaders' start times fell and drifted slowly (each
  // period was a tick plus the tick's own work), so a round could keep one
  // arrangement, and the server's batching with it. Not a fixed grid either:
  // bursts locked to one (tried in run 27) meet the kernel's 4 ms scheduler
  // tick at the same points every time, and /proc/stat, which samples at that
  // tick, then missed most of the server's busy time.
  bool tick_jitter = false;
  // HTTP requests as a Poisson process (the count owed per tick drawn from
  // Poisson(rate x time passed)), as from many independent senders; else
  // evenly, rate x time passed.
  bool poisson = false;
  // HTTP latencies also as buckets of three significant digits (bucket's
  // floor in µs -> count), so that the driver can pool several loaders'
  // answers into one distribution instead of taking the worst loader's p99.
  bool latency_buckets = false;
  double churn_rate =
      0;  // > 0: open-loop handshakes at this rate for `duration`, each closed after its
          // welcome or refusal (admission under overload); no steady phase
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
  std::string Json(bool buckets = false) {
    std::sort(v.begin(), v.end());
    auto q = [&](double p) -> double {
      if (v.empty()) return 0;
      return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))] / 1000.0;
    };
    char buf[256];
    snprintf(buf, sizeof buf,
             R"({"count":%llu,"p50_ms":%.3f,"p99_ms":%.3f,"p999_ms":%.3f,"max_ms":%.3f})",
             static_cast<unsigned long long>(count), q(0.5), q(0.99), q(0.999),
             v.empty() ? 0.0 : v.back() / 1000.0);
    std::string j = buf;
    if (buckets) {
      // Runs of equal floors in the sorted samples: {"floor_us":count,...}.
      j.pop_back();
      j += R"(,"buckets":{)";
      size_t i = 0;
      while (i < v.size()) {
        const uint32_t floor = ThreeDigits(v[i]);
        size_t n = 0;
        while (i < v.size() && ThreeDigits(v[i]) == floor) ++i, ++n;
        j += (j.back() == '{' ? "\"" : ",\"") + std::to_string(floor) + "\":" + std::to_string(n);
      }
      j += "}}";
    }
    return j;
  }
  // us rounded down to three significant digits (1234 -> 1230).
  static uint32_t ThreeDigits(uint32_t us) {
    uint32_t step = 1;
    while (us / step >= 1000) step *= 10;
    return us / step * step;
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
    for (int i = 7; i >= 0; --i)
      f.push_back(static_cast<char>((static_cast<uint64_t>(n) >> (8 * i)) & 0xff));
  }
  f.append(reinterpret_cast<const char*>(kMask), 4);
  for (size_t i = 0; i < n; ++i) f.push_back(static_cast<char>(payload[i] ^ kMask[i % 4]));
  return f;
}

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch())
      .count();
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
  std::string hello;      // upgrade + hello, freed once sent
  std::string sio_hello;  // Socket.IO: namespace connect + hello, sent after the open packet
  int64_t t0_us = 0;      // when the connect began
  // --ack: the newest message received and the newest acked. As the widget
  // does, an ack goes --ack-delay-ms after the first message it covers, with
  // the newest seq by then; one frame in flight at a time.
  std::string ack_chat;
  int64_t ack_want = 0, ack_sent = 0;
  bool ack_queued = false;
  std::string ack_frame;
  int64_t seen_seq = 0;  // --resume: the newest seq of its chat it has
  explicit Conn(Loadgen* l, asio::io_context& io, int i) : lg(l), sock(io), index(i) {}
};

class Loadgen {
 public:
  Loadgen(Options o)
      : o_(std::move(o)),
        ping_(ClientFrame(o_.socketio ? R"(42["ping"])" : R"({"type":"ping"})")),
        eio_pong_(ClientFrame("3")),
        tick_(io_),
        marks_(io_, SIGUSR1, SIGINT) {}

  int Run();

  // Stats
  int live = 0, failed = 0, dead = 0;
  uint64_t pings = 0, pongs = 0, frames_in = 0, messages_in = 0, desk_messages_in = 0,
           acks_sent = 0;
  Histogram hb_lat, connect_lat, deliver_lat, desk_lat;
  // Churn: handshakes admitted (welcome) and their latency; refusals that
  // carried a retry hint (HTTP 503 + Retry-After, close 1013 + retry_after_ms).
  Histogram welcome_lat;
  uint64_t churn_offered = 0, churn_skipped = 0, admitted = 0, refused_503 = 0, refused_1013 = 0;
  int64_t churn_last_us_ = 0;

 private:
  friend struct Conn;
  void StartMore();
  void Connect(Conn* c);
  void Read(Conn* c);
  void OnData(Conn* c);
  void Fail(Conn* c);
  void SendAck(Conn* c);
  void Tick();
  void WaitMark();
  void ChurnTick();
  enum class ChurnEnd { kWelcome, k503WithHint, k1013WithHint, kOther };
  void EndChurn(Conn* c, ChurnEnd how);
  struct HttpStream;
  void StartStreams();
  void Issue(HttpStream& s);
  void Watch(HttpStream& s, size_t k);
  void LinkDown(HttpStream& s, size_t k, bool in_flight);
  std::string QueryBody();
  tcp::endpoint HttpEndpoint() const {
    return {asio::ip::make_address(o_.host),
            static_cast<uint16_t>(o_.http_port != 0 ? o_.http_port : o_.port)};
  }

  Options o_;
  // --ack: connections whose ack is due, in the order they become due (one
  // delay for all).
  std::deque<std::pair<int64_t, Conn*>> ack_due_;
  asio::io_context io_{1};
  std::vector<std::unique_ptr<Conn>> conns_;
  std::string ping_;
  std::string eio_pong_;  // Socket.IO: the answer to the server's Engine.IO ping
  asio::steady_timer tick_;
  asio::signal_set marks_;
  int marks_seen_ = 0;
  bool streams_started_ = false;
  int next_ = 0, in_flight_ = 0;
  int64_t start_us_ = 0, steady_start_us_ = 0;
  bool ready_printed_ = false, stopping_ = false;
  bool storming_ = false;
  int64_t storm_start_us_ = 0;
  double storm_s_ = -1;
  std::vector<std::unique_ptr<Conn>>
      graveyard_;  // dropped by the storm; their handlers may still run
  size_t hb_cursor_ = 0;
  double hb_debt_ = 0;
  int64_t last_tick_us_ = 0;  // when Tick last ran (0: not yet)

  // One kind of HTTP load (presence queries, sends, chat lists): a rate,
  // keep-alive connections each with one request at a time, a histogram.
  struct HttpStream {
    std::string name;
    double rate = 0, debt = 0;
    std::function<std::string()> build;     // the next request, whole
    Histogram lat, ok_lat;                  // every answer; the 2xx ones
    uint64_t ok = 0, err = 0, refused = 0;  // refused: 503 with Retry-After (also in err)
    uint64_t lost = 0;                      // err without an answer (the connection failed)
    // Keep-alive connections the server closed while they were idle (its
    // idle timeout: onlined's http_idle_timeout_ms, Node's keepAliveTimeout;
    // or after an answer with "Connection: close"): not an error, the link
    // reconnects as any HTTP client's pool does.
    uint64_t idle_closed = 0;
    uint64_t sent = 0;
    std::map<int, uint64_t> statuses;  // the answers that were not 2xx
    struct Link {
      std::unique_ptr<tcp::socket> sock;
      std::shared_ptr<std::array<char, 65536>> buf;
      std::string resp;
      int64_t sent_us = 0;
      uint64_t gen = 0;  // the socket's generation: a stale handler sees another
      bool busy = false;
      bool dead = false;  // down (reconnecting, or for good): not claimed
    };
    std::vector<Link> links;
  };
  std::vector<std::unique_ptr<HttpStream>> streams_;
  std::string desk_token_;
  std::vector<std::string> chat_of_;  // by connection index
  // The chats file's lines, in order (--resume rewrites it at the end).
  struct ChatLine {
    std::string user, chat;
    int64_t seq = -1;  // -1: no third column
  };
  std::vector<ChatLine> chat_lines_;
  std::unordered_map<std::string, size_t> line_of_user_;
  void ReadChats();
  void WriteResume();
  std::vector<int64_t> send_t_;    // send number -> time the POST was written
  std::vector<uint8_t> user_got_;  // send number -> its user has it (replays do not count twice)
  std::mt19937 rng_{7};
  std::mt19937 tick_rng_{std::random_device{}()};  // each loader its own waits (--tick-jitter)
};

void Loadgen::Connect(Conn* c) {
  ++in_flight_;
  int64_t t0 = NowUs();
  c->t0_us = t0;
  boost::system::error_code ec;
  c->sock.open(tcp::v4(), ec);
  int one = 1;
  setsockopt(c->sock.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  c->sock.set_option(tcp::no_delay(true), ec);
  std::string src = "127.0.0." + std::to_string(2 + c->index % o_.sources);
  c->sock.bind(tcp::endpoint(asio::ip::make_address(src), 0), ec);
  if (ec) return Fail(c);
  bool desk = c->index < o_.desks;
  std::string user =
      desk ? "desk" + std::to_string(c->index) : "u" + std::to_string(o_.offset + c->index);
  auto role = desk ? onlined::auth::Role::kManager : onlined::auth::Role::kUser;
  std::string token = onlined::auth::Mint(
      {o_.channel, user, role, onlined::base::WallMs() / 1000 + 86400}, o_.secret);
  std::string path = o_.socketio ? "/socket.io/?EIO=4&transport=websocket" : "/v1/connect";
  c->hello = "GET " + path + " HTTP/1.1\r\nHost: " + o_.host +
             "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
             "dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n";
  if (o_.socketio) {
    // Engine.IO drops frames sent before its open packet, and Socket.IO drops
    // a client whose event arrives before its namespace connect completed:
    // "40" waits for the open packet, the hello for the connect's answer.
    c->sio_hello = ClientFrame(R"(42["hello",{"token":")" + token + "\"}]");
  } else {
    std::string resume;
    if (auto it = line_of_user_.find(user); o_.resume && !desk && it != line_of_user_.end()) {
      const ChatLine& l = chat_lines_[it->second];
      const int64_t seq = std::max(l.seq, c->seen_seq);
      if (seq >= 0) resume = R"(,"resume":{")" + l.chat + "\":" + std::to_string(seq) + "}";
    }
    c->hello += ClientFrame(R"({"type":"hello","token":")" + token + "\"" + resume + "}");
  }
  c->sock.async_connect(
      tcp::endpoint(asio::ip::make_address(o_.host), o_.port), [this, c, t0](auto ec) {
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
  c->sock.async_read_some(asio::buffer(c->buf + c->have, sizeof c->buf - c->have),
                          [this, c](auto ec, size_t n) {
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
    if (s.substr(0, 12) != "HTTP/1.1 101") {
      if (o_.churn_rate > 0 && s.substr(0, 12) == "HTTP/1.1 503") {
        return EndChurn(c, s.find("Retry-After: ") != std::string_view::npos
                               ? ChurnEnd::k503WithHint
                               : ChurnEnd::kOther);
      }
      return Fail(c);
    }
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
    if (opcode == 8 && o_.churn_rate > 0 && c->state == Conn::kHello && payload.size() >= 2 &&
        ((static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1])) == 1013) {
      return EndChurn(c, payload.find("retry_after_ms") != std::string_view::npos
                             ? ChurnEnd::k1013WithHint
                             : ChurnEnd::kOther);
    }
    if (opcode == 8) return Fail(c);      // close
    if (o_.socketio && payload == "2") {  // Engine.IO ping: answer or be dropped
      if (!c->writing) {
        c->writing = true;
        asio::async_write(c->sock, asio::buffer(eio_pong_), [this, c](auto ec, size_t) {
          c->writing = false;
          if (ec) Fail(c);
        });
      }
    } else if (c->state == Conn::kHello) {
      if (o_.socketio && payload.find("welcome") == std::string_view::npos) {
        // "0{...}" (open), then "40{...}" (namespace connected), then the welcome event.
        std::shared_ptr<std::string> out;
        if (payload.size() > 1 && payload[0] == '0' && payload[1] == '{') {
          out = std::make_shared<std::string>(ClientFrame("40"));
        } else if (payload.size() > 1 && payload.substr(0, 2) == "40" && !c->sio_hello.empty()) {
          out = std::make_shared<std::string>(std::move(c->sio_hello));
          c->sio_hello.clear();
        }
        if (out) {
          asio::async_write(c->sock, asio::buffer(*out), [this, c, out](auto ec, size_t) {
            if (ec) Fail(c);
          });
        }
      } else if (payload.find("\"welcome\"") != std::string_view::npos && o_.churn_rate > 0) {
        welcome_lat.Add(NowUs() - c->t0_us);
        return EndChurn(c, ChurnEnd::kWelcome);
      } else if (payload.find("\"welcome\"") != std::string_view::npos) {
        c->state = Conn::kLive;
        ++live;
        --in_flight_;
        StartMore();
      } else {
        return Fail(c);
      }
    } else if (payload.starts_with(R"({"type":"message")") ||
               payload.starts_with(R"(42["message")")) {
      bool desk = c->index < o_.desks;
      ++(desk ? desk_messages_in : messages_in);
      if ((o_.ack || o_.resume) && !desk && !o_.socketio) {
        // {"type":"message","chat_id":"c_...","seq":N,...}: the server's own
        // spelling, so plain finds are enough for a load tool.
        size_t ci = payload.find(R"("chat_id":")");
        size_t si = payload.find(R"("seq":)");
        if (ci != std::string_view::npos && si != std::string_view::npos) {
          c->seen_seq =
              std::max<int64_t>(c->seen_seq, std::strtoll(payload.data() + si + 6, nullptr, 10));
          size_t end = payload.find('"', ci + 11);
          if (o_.ack && end != std::string_view::npos) {
            c->ack_chat.assign(payload.substr(ci + 11, end - ci - 11));
            c->ack_want = std::max(c->ack_want, c->seen_seq);
            if (o_.ack_delay_us == 0) {
              SendAck(c);
            } else if (!c->ack_queued) {
              c->ack_queued = true;
              ack_due_.emplace_back(NowUs() + o_.ack_delay_us, c);
            }
          }
        }
      }
      size_t t = payload.find(R"("text":"b)");
      if (t != std::string_view::npos) {
        size_t n = static_cast<size_t>(std::strtoull(payload.data() + t + 9, nullptr, 10));
        if (n < send_t_.size() && desk) {
          desk_lat.Add(NowUs() - send_t_[n]);
        } else if (n < send_t_.size() && !user_got_[n]) {
          deliver_lat.Add(NowUs() - send_t_[n]);
          user_got_[n] = 1;
        }
      }
    } else if (payload == R"({"type":"pong"})" || payload == R"(42["pong"])") {
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

void Loadgen::ReadChats() {
  if (o_.chats_file.empty()) return;
  std::ifstream f(o_.chats_file);
  std::string line;
  while (std::getline(f, line)) {
    ChatLine l;
    char user[128], chat[128];
    long long seq = -1;
    const int got = sscanf(line.c_str(), "%127s %127s %lld", user, chat, &seq);
    if (got < 2) continue;
    l.user = user;
    l.chat = chat;
    l.seq = got == 3 ? seq : -1;
    line_of_user_[l.user] = chat_lines_.size();
    chat_lines_.push_back(std::move(l));
  }
}

// --resume: the newest seq each of this loader's users has, for the next
// loader's hello (a widget keeps it across reloads). Lines of users this
// loader did not hold stay as they were.
void Loadgen::WriteResume() {
  if (!o_.resume || chat_lines_.empty()) return;
  for (const auto& c : conns_) {
    if (c->index < o_.desks) continue;
    auto it = line_of_user_.find("u" + std::to_string(o_.offset + c->index));
    if (it != line_of_user_.end()) {
      chat_lines_[it->second].seq = std::max(chat_lines_[it->second].seq, c->seen_seq);
    }
  }
  const std::string tmp = o_.chats_file + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    for (const auto& l : chat_lines_) {
      f << l.user << ' ' << l.chat;
      if (l.seq >= 0) f << ' ' << l.seq;
      f << '\n';
    }
  }
  std::rename(tmp.c_str(), o_.chats_file.c_str());
}

void Loadgen::SendAck(Conn* c) {
  if (c->writing || c->state != Conn::kLive || c->ack_want <= c->ack_sent) return;
  c->writing = true;
  c->ack_sent = c->ack_want;
  c->ack_frame = ClientFrame(R"({"type":"ack","chat_id":")" + c->ack_chat + R"(","seq":)" +
                             std::to_string(c->ack_sent) + "}");
  ++acks_sent;
  asio::async_write(c->sock, asio::buffer(c->ack_frame), [this, c](auto ec, size_t) {
    c->writing = false;
    if (ec) return Fail(c);
    SendAck(c);
  });
}

void Loadgen::Fail(Conn* c) {
  if (c->state == Conn::kDead) return;
  if (o_.churn_rate > 0) {
    ++failed;
    --in_flight_;
    c->state = Conn::kDead;
    boost::system::error_code ec;
    c->sock.close(ec);
    return;
  }
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
  if (storming_ && next_ == o_.conns && in_flight_ == 0) {
    storm_s_ = (NowUs() - storm_start_us_) / 1e6;
    fprintf(stderr, "loadgen: storm: %d back in %.3f s (%d failed)\n", live, storm_s_, failed);
    storming_ = false;
    stopping_ = true;
    io_.stop();
    return;
  }
  if (!ready_printed_ && next_ == o_.conns && in_flight_ == 0) {
    ready_printed_ = true;
    fprintf(stderr, "loadgen: %d live, %d failed in %.2f s\n", live, failed,
            (NowUs() - start_us_) / 1e6);
    printf("READY %d %.3f\n", live, (NowUs() - start_us_) / 1e6);
    fflush(stdout);
    steady_start_us_ = NowUs();
    if (o_.streams_on_mark == 0) {
      streams_started_ = true;
      StartStreams();
    }
    Tick();
  }
}

// Churn: one connection ends (welcome, or a refusal): it is closed and kept
// until the run ends (its handlers may still be queued).
void Loadgen::EndChurn(Conn* c, ChurnEnd how) {
  switch (how) {
    case ChurnEnd::kWelcome:
      ++admitted;
      break;
    case ChurnEnd::k503WithHint:
      ++refused_503;
      break;
    case ChurnEnd::k1013WithHint:
      ++refused_1013;
      break;
    case ChurnEnd::kOther:
      ++failed;
      break;
  }
  c->state = Conn::kDead;
  --in_flight_;
  boost::system::error_code ec;
  c->sock.close(ec);
}

// Churn: handshakes at o_.churn_rate, open loop: they go out on time whatever
// the server answers, up to o_.inflight at once (beyond: counted as skipped).
void Loadgen::ChurnTick() {
  constexpr int kTickMs = 5;
  int64_t now = NowUs();
  if (now - start_us_ > o_.duration_s * 1e6) {
    // Let the last handshakes finish (bounded), then report.
    if (in_flight_ > 0 && now - start_us_ < (o_.duration_s + 3) * 1e6) {
      tick_.expires_after(std::chrono::milliseconds(kTickMs));
      tick_.async_wait([this](auto ec) {
        if (!ec) ChurnTick();
      });
      return;
    }
    stopping_ = true;
    io_.stop();
    return;
  }
  // By the time that passed, not the ticks: a late tick must not lower the rate.
  if (churn_last_us_ == 0) churn_last_us_ = now;
  hb_debt_ += o_.churn_rate * static_cast<double>(now - churn_last_us_) / 1e6;
  churn_last_us_ = now;
  while (hb_debt_ >= 1) {
    hb_debt_ -= 1;
    ++churn_offered;
    if (in_flight_ >= o_.inflight) {
      ++churn_skipped;
      continue;
    }
    conns_.push_back(std::make_unique<Conn>(this, io_, static_cast<int>(conns_.size())));
    Connect(conns_.back().get());
  }
  tick_.expires_after(std::chrono::milliseconds(kTickMs));
  tick_.async_wait([this](auto ec) {
    if (!ec) ChurnTick();
  });
}

void Loadgen::WaitMark() {
  marks_.async_wait([this](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGINT) {  // the driver ends the run: report now
      stopping_ = true;
      io_.stop();
      return;
    }
    ++marks_seen_;
    printf("MARK %llu %llu\n", static_cast<unsigned long long>(pongs),
           static_cast<unsigned long long>(pings));
    fflush(stdout);
    if (!streams_started_ && marks_seen_ == o_.streams_on_mark) {
      streams_started_ = true;
      StartStreams();
    }
    WaitMark();
  });
}

void Loadgen::Tick() {
  int64_t now = NowUs();
  if (now - steady_start_us_ > o_.duration_s * 1e6) {
    if (o_.storm && storm_start_us_ == 0) {
      // Every connection drops at once (a network blip), then all reconnect.
      storm_start_us_ = now;
      storming_ = true;
      for (auto& cp : conns_) {
        cp->state = Conn::kDead;
        boost::system::error_code ec;
        cp->sock.close(ec);
        graveyard_.push_back(std::move(cp));
      }
      conns_.clear();
      for (int i = 0; i < o_.conns; ++i) conns_.push_back(std::make_unique<Conn>(this, io_, i));
      live = 0;
      next_ = 0;
      in_flight_ = 0;
      StartMore();
      return;  // no more heartbeats: the storm ends the run
    }
    if (storming_) return;
    stopping_ = true;
    io_.stop();
    return;
  }
  // What is owed accrues with the time that passed, not per tick: a busy
  // loop makes ticks late, and a per-tick amount would then offer less than
  // the rate asked for (it did: ~10 % short at 8,000 heartbeats/s).
  const double elapsed_s =
      last_tick_us_ == 0 ? o_.tick_us / 1e6 : std::min(0.1, (now - last_tick_us_) / 1e6);
  last_tick_us_ = now;
  while (!ack_due_.empty() && ack_due_.front().first <= now) {
    Conn* c = ack_due_.front().second;
    ack_due_.pop_front();
    c->ack_queued = false;
    SendAck(c);
  }
  // Heartbeats: spread evenly over the connections.
  hb_debt_ += o_.hb_per_conn * static_cast<double>(conns_.size()) * elapsed_s;
  while (hb_debt_ >= 1 && !conns_.empty()) {
    hb_debt_ -= 1;
    Conn* c = conns_[hb_cursor_++ % conns_.size()].get();
    if (c->state != Conn::kLive || c->writing) continue;
    c->writing = true;
    c->ping_sent_us = NowUs();
    ++pings;
    asio::async_write(c->sock, asio::buffer(ping_), [this, c](auto ec, size_t) {
      c->writing = false;
      if (ec) return Fail(c);
      if (o_.ack) SendAck(c);
    });
  }
  for (auto& sp : streams_) {
    HttpStream& s = *sp;
    const double owed = s.rate * elapsed_s;
    s.debt += o_.poisson && owed > 0 ? std::poisson_distribution<int>(owed)(rng_) : owed;
    for (auto& l : s.links) {
      if (s.debt < 1) break;
      if (l.busy || l.dead) continue;
      s.debt -= 1;
      l.busy = true;  // claimed: Issue sends on it
    }
    if (s.debt > 100) s.debt = 100;  // saturated: closed loop, no backlog
    Issue(s);
  }
  // What is owed accrues with the time that passed, so a random wait keeps the rate.
  tick_.expires_after(std::chrono::microseconds(
      o_.tick_jitter ? std::uniform_int_distribution<int>(0, 2 * o_.tick_us)(tick_rng_)
                     : o_.tick_us));
  tick_.async_wait([this](auto ec) {
    if (!ec) Tick();
  });
}

std::string Loadgen::QueryBody() {
  int users = o_.total_users > 0 ? o_.total_users : o_.conns;
  std::uniform_int_distribution<int> pick(0, users - 1);
  std::string body = R"({"user_ids":[)";
  for (int i = 0; i < o_.query_ids; ++i) {
    if (i) body += ',';
    body += "\"u" + std::to_string(pick(rng_)) + "\"";
  }
  body += "]}";
  return body;
}

void Loadgen::StartStreams() {
  desk_token_ =
      "Bearer " + onlined::auth::Mint({o_.channel, "bench-desk", onlined::auth::Role::kManager,
                                       onlined::base::WallMs() / 1000 + 86400},
                                      o_.secret);
  auto add = [&](std::string name, double rate, int conns, std::function<std::string()> build) {
    if (rate <= 0) return;
    auto s = std::make_unique<HttpStream>();
    s->name = std::move(name);
    s->rate = rate;
    s->build = std::move(build);
    s->links.resize(static_cast<size_t>(conns));
    for (auto& l : s->links) {
      l.sock = std::make_unique<tcp::socket>(io_);
      l.sock->connect(HttpEndpoint());
      l.sock->set_option(tcp::no_delay(true));
      l.buf = std::make_shared<std::array<char, 65536>>();
    }
    streams_.push_back(std::move(s));
    for (size_t k = 0; k < streams_.back()->links.size(); ++k) Watch(*streams_.back(), k);
  };
  auto request = [this](const std::string& method, const std::string& target,
                        const std::string& body) {
    return method + " " + target + " HTTP/1.1\r\nHost: x\r\nAuthorization: " + desk_token_ +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n\r\n" + body;
  };
  add("query", o_.query_rate, o_.query_conns,
      [this, request] { return request("POST", "/v1/presence/query", QueryBody()); });
  add("list", o_.list_rate, o_.list_conns,
      [request] { return request("GET", "/v1/user-chats?limit=50", ""); });
  if (o_.send_rate > 0) {
    chat_of_.resize(conns_.size());
    for (size_t i = static_cast<size_t>(std::max(0, o_.desks)); i < conns_.size(); ++i) {
      auto it = line_of_user_.find("u" + std::to_string(o_.offset + static_cast<int>(i)));
      if (it != line_of_user_.end()) chat_of_[i] = chat_lines_[it->second].chat;
    }
    send_t_.reserve(static_cast<size_t>(o_.send_rate * (o_.duration_s + 5)));
    add("send", o_.send_rate, o_.send_conns, [this, request] {
      std::uniform_int_distribution<size_t> pick(0, conns_.size() - 1);
      size_t i = pick(rng_);
      for (int tries = 0; tries < 8 && (chat_of_[i].empty() || conns_[i]->state != Conn::kLive);
           ++tries) {
        i = pick(rng_);
      }
      size_t n = send_t_.size();
      send_t_.push_back(NowUs());
      user_got_.push_back(0);
      return request("POST", "/v1/user-chats/" + chat_of_[i] + "/messages",
                     "{\"text\":\"b" + std::to_string(n) + "\"}");
    });
  }
}

// Sends one request on every claimed (busy, not yet sent) link of `s`. The
// answer is read by the link's Watch.
void Loadgen::Issue(HttpStream& s) {
  for (size_t k = 0; k < s.links.size(); ++k) {
    auto& l = s.links[k];
    if (!l.busy || l.sent_us != 0 || l.dead) continue;
    auto req = std::make_shared<std::string>(s.build());
    l.sent_us = NowUs();
    ++s.sent;
    l.resp.clear();
    HttpStream* sp = &s;
    asio::async_write(*l.sock, asio::buffer(*req),
                      [this, sp, k, req, gen = l.gen](auto ec, size_t) {
                        if (ec && sp->links[k].gen == gen) LinkDown(*sp, k, true);
                      });
  }
}

// Every link always has one read pending, idle or not: an answer completes
// its request; the end of the stream while idle is the server closing a
// keep-alive connection (the link reconnects); while a request is out, that
// request is lost.
void Loadgen::Watch(HttpStream& s, size_t k) {
  auto& l = s.links[k];
  HttpStream* sp = &s;
  l.sock->async_read_some(
      asio::buffer(*l.buf), [this, sp, k, buf = l.buf, gen = l.gen](auto ec, size_t n) {
        auto& l = sp->links[k];
        if (l.gen != gen) return;  // a socket already given up
        if (ec) return LinkDown(*sp, k, l.sent_us != 0);
        // Bytes nobody asked for: a connection out of step, started afresh.
        if (l.sent_us == 0) return LinkDown(*sp, k, false);
        l.resp.append(buf->data(), n);
        size_t he = l.resp.find("\r\n\r\n");
        if (he != std::string::npos) {
          size_t cl = l.resp.find("Content-Length: ");
          if (cl == std::string::npos) cl = l.resp.find("content-length: ");
          size_t len = cl == std::string::npos ? 0 : std::stoul(l.resp.substr(cl + 16));
          if (l.resp.size() >= he + 4 + len) {
            sp->lat.Add(NowUs() - l.sent_us);
            bool good = l.resp.compare(0, 10, "HTTP/1.1 2") == 0;
            good ? ++sp->ok : ++sp->err;
            if (good) sp->ok_lat.Add(NowUs() - l.sent_us);
            if (!good && l.resp.size() >= 12) ++sp->statuses[std::atoi(l.resp.c_str() + 9)];
            if (!good && l.resp.compare(0, 12, "HTTP/1.1 503") == 0 &&
                l.resp.find("Retry-After: ") < he) {
              ++sp->refused;
            }
            l.busy = false;
            l.sent_us = 0;
            if (sp->debt >= 1 && !stopping_) {  // behind the rate: the next one now
              sp->debt -= 1;
              l.busy = true;
              Issue(*sp);
            }
          }
        }
        Watch(*sp, k);
      });
}

// A link's socket failed or was closed by the server: a request it carried
// is lost (counted, never sent again: a POST may have been acted on); the
// link reconnects and is claimed again once connected.
void Loadgen::LinkDown(HttpStream& s, size_t k, bool in_flight) {
  auto& l = s.links[k];
  ++l.gen;
  if (in_flight) {
    ++s.err;
    ++s.lost;
  } else {
    ++s.idle_closed;
  }
  l.sent_us = 0;
  l.busy = false;
  l.dead = true;
  // The old socket goes: its pending operations end aborted, and their
  // handlers touch only the link, which gen tells them is no longer theirs.
  l.sock = std::make_unique<tcp::socket>(io_);
  if (stopping_) return;
  HttpStream* sp = &s;
  l.sock->async_connect(HttpEndpoint(), [this, sp, k, gen = l.gen](auto ec) {
    auto& l = sp->links[k];
    if (l.gen != gen) return;
    if (ec) return;  // stays down: the stream has its other links
    boost::system::error_code ignored;
    l.sock->set_option(tcp::no_delay(true), ignored);
    l.dead = false;
    Watch(*sp, k);
  });
}

int Loadgen::Run() {
  start_us_ = NowUs();
  WaitMark();
  if (o_.churn_rate > 0) {
    conns_.reserve(static_cast<size_t>(o_.churn_rate * o_.duration_s) + 16);
    steady_start_us_ = start_us_;
    printf("READY 0 0\n");
    fflush(stdout);
    ChurnTick();
    io_.run();
    double secs = (NowUs() - start_us_) / 1e6;
    printf(
        R"({"churn":{"offered":%llu,"skipped":%llu,"admitted":%llu,"refused_503":%llu,"refused_1013":%llu,)"
        R"("failed":%d,"seconds":%.3f,"welcome_latency":%s}})"
        "\n",
        static_cast<unsigned long long>(churn_offered),
        static_cast<unsigned long long>(churn_skipped), static_cast<unsigned long long>(admitted),
        static_cast<unsigned long long>(refused_503), static_cast<unsigned long long>(refused_1013),
        failed, secs, welcome_lat.Json().c_str());
    fflush(stdout);
    return 0;
  }
  ReadChats();
  for (int i = 0; i < o_.conns; ++i) conns_.push_back(std::make_unique<Conn>(this, io_, i));
  StartMore();
  io_.run();
  WriteResume();
  double secs = (NowUs() - steady_start_us_) / 1e6;
  std::string streams = "{";
  for (size_t i = 0; i < streams_.size(); ++i) {
    auto& s = *streams_[i];
    if (i) streams += ",";
    // Requests waiting over a second for their answer when the run ended (a
    // server that hangs): neither ok nor err, and in no latency. Younger
    // ones were merely in flight.
    size_t unanswered = 0;
    const int64_t now_us = NowUs();
    for (const auto& l : s.links)
      unanswered += l.sent_us != 0 && !l.dead && now_us - l.sent_us > 1000000;
    streams +=
        "\"" + s.name + "\":{\"ok\":" + std::to_string(s.ok) +
        ",\"unanswered\":" + std::to_string(unanswered) + ",\"lost\":" + std::to_string(s.lost) +
        ",\"idle_closed\":" + std::to_string(s.idle_closed) + ",\"statuses\":{" +
        [&s] {
          std::string j;
          for (const auto& [code, n] : s.statuses) {
            j += (j.empty() ? "\"" : ",\"") + std::to_string(code) + "\":" + std::to_string(n);
          }
          return j;
        }() +
        "}" + ",\"err\":" + std::to_string(s.err) + ",\"refused\":" + std::to_string(s.refused) +
        ",\"per_s\":" + std::to_string(static_cast<double>(s.ok) / secs) +
        ",\"latency\":" + s.lat.Json(o_.latency_buckets) + ",\"ok_latency\":" + s.ok_lat.Json() +
        "}";
  }
  streams += "}";
  printf(
      R"({"live":%d,"failed":%d,"dropped":%d,"connect_s":%.3f,"steady_s":%.3f,"pings":%llu,"pongs":%llu,)"
      R"("heartbeat_rtt":%s,"handshake":%s,"messages_in":%llu,"acks_sent":%llu,"deliver_latency":%s,"desk_messages_in":%llu,)"
      R"("desk_deliver_latency":%s,"http":%s,"storm_s":%.3f})"
      "\n",
      live, failed, dead, (steady_start_us_ - start_us_) / 1e6, secs,
      static_cast<unsigned long long>(pings), static_cast<unsigned long long>(pongs),
      hb_lat.Json().c_str(), connect_lat.Json().c_str(),
      static_cast<unsigned long long>(messages_in), static_cast<unsigned long long>(acks_sent),
      deliver_lat.Json().c_str(), static_cast<unsigned long long>(desk_messages_in),
      desk_lat.Json().c_str(), streams.c_str(), storm_s_);
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
    if (a == "--host")
      o.host = val();
    else if (a == "--port")
      o.port = static_cast<uint16_t>(std::stoi(val()));
    else if (a == "--http-port")
      o.http_port = static_cast<uint16_t>(std::stoi(val()));
    else if (a == "--channel")
      o.channel = val();
    else if (a == "--secret")
      o.secret = val();
    else if (a == "--conns")
      o.conns = std::stoi(val());
    else if (a == "--offset")
      o.offset = std::stoi(val());
    else if (a == "--sources")
      o.sources = std::stoi(val());
    else if (a == "--inflight")
      o.inflight = std::stoi(val());
    else if (a == "--hb-per-conn")
      o.hb_per_conn = std::stod(val());
    else if (a == "--duration")
      o.duration_s = std::stod(val());
    else if (a == "--query-rate")
      o.query_rate = std::stod(val());
    else if (a == "--query-ids")
      o.query_ids = std::stoi(val());
    else if (a == "--query-conns")
      o.query_conns = std::stoi(val());
    else if (a == "--total-users")
      o.total_users = std::stoi(val());
    else if (a == "--ack")
      o.ack = true;
    else if (a == "--resume")
      o.resume = true;
    else if (a == "--ack-delay-ms")
      o.ack_delay_us = std::stoll(val()) * 1000;
    else if (a == "--wait-stdin")
      o.wait_stdin = true;
    else if (a == "--chats-file")
      o.chats_file = val();
    else if (a == "--send-rate")
      o.send_rate = std::stod(val());
    else if (a == "--send-conns")
      o.send_conns = std::stoi(val());
    else if (a == "--list-rate")
      o.list_rate = std::stod(val());
    else if (a == "--list-conns")
      o.list_conns = std::stoi(val());
    else if (a == "--socketio")
      o.socketio = true;
    else if (a == "--storm")
      o.storm = true;
    else if (a == "--streams-on-mark")
      o.streams_on_mark = std::stoi(val());
    else if (a == "--desks")
      o.desks = std::stoi(val());
    else if (a == "--tick-ms")
      o.tick_us = static_cast<int>(std::clamp(std::stod(val()), 0.1, 100.0) * 1000);
    else if (a == "--tick-jitter")
      o.tick_jitter = true;
    else if (a == "--poisson")
      o.poisson = true;
    else if (a == "--latency-buckets")
      o.latency_buckets = true;
    else if (a == "--churn-rate")
      o.churn_rate = std::stod(val());
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
