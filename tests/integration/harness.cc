#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "auth/token.h"
#include "base/clock.h"
#include "store/testing/test_engine.h"

extern char** environ;

namespace onlined::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;

ServerProcess::ServerProcess(const std::string& extra_toml, const std::string& top_toml,
                             const std::string& acme_toml, int file_limit)
    : file_limit_(file_limit) {
  char tmpl[] = "/tmp/onlined-test-XXXXXX";
  dir_ = mkdtemp(tmpl);
  config_path_ = dir_ + "/onlined.toml";
  // On PostgreSQL (TEST_POSTGRES_DIR): each server its own new database, unless the test
  // names one (several processes on one database).
  std::string store;
  if (store::testing::PostgresRequested() &&
      top_toml.find("store_postgres_url") == std::string::npos) {
    store = "store_engine = \"postgres\"\nstore_postgres_url = \"" +
            store::testing::NewPostgresDatabase() + "\"\n";
  }
  {
    std::ofstream f(config_path_);
    // A node id of its own, the same after Restart (as host:port would be).
    f << "listen = \"127.0.0.1:0\"\n"
      << store << "node_id = \"test-" << std::filesystem::path(dir_).filename().string() << "\"\n"
      << "data_dir = \"" << dir_ << "/data\"\n"
      << "heartbeat_s = 1\n"
      << "offline_grace_ms = 800\n"
      << "hello_timeout_ms = 1500\n"
      << "threads = 2\n"
      << (top_toml.find("metrics_listen") == std::string::npos ? "metrics_listen = \"\"\n" : "")
      << (top_toml.find("metrics_token") == std::string::npos
              ? std::string("metrics_token = \"") + kMetricsToken + "\"\n"
              : std::string())
      << top_toml << "\n"
      << "[[channels]]\nid = \"acme\"\nsecret = \"" << kSecret << "\"\n"
      << acme_toml << "\n"
      << "[[channels]]\nid = \"other\"\nsecret = \"" << kOtherSecret << "\"\n"
      << extra_toml << "\n";
  }
  Start();
}

void ServerProcess::Restart() { Start(); }

namespace {
void PgScript(const std::string& cmd, const std::string& dir) {
  const std::string line =
      std::string(TEST_POSTGRES_SCRIPT) + " " + cmd + " " + dir + " >/dev/null";
  if (std::system(line.c_str()) != 0)
    throw std::runtime_error("test-postgres.sh " + cmd + " failed");
}
}  // namespace

PostgresServer::PostgresServer() {
  char tmpl[] = "/tmp/onlined-pg-XXXXXX";
  dir_ = mkdtemp(tmpl);
  Start();
  std::ifstream f(dir_ + "/url");
  f >> url_;
}

PostgresServer::~PostgresServer() {
  try {
    PgScript("stop", dir_);
  } catch (...) {
  }
}

void PostgresServer::Halt() { PgScript("halt", dir_); }
void PostgresServer::Start() { PgScript("start", dir_); }
void PostgresServer::Pause() { PgScript("pause", dir_); }
void PostgresServer::Resume() { PgScript("resume", dir_); }

namespace {
void NatsScript(const std::string& args) {
  const std::string line = std::string(TEST_NATS_SCRIPT) + " " + args + " >/dev/null";
  if (std::system(line.c_str()) != 0) throw std::runtime_error("nats-cluster.sh " + args);
}
}  // namespace

NatsCluster::NatsCluster(int n) {
  char tmpl[] = "/tmp/onlined-nats-XXXXXX";
  dir_ = mkdtemp(tmpl);
  NatsScript("start " + dir_ + " " + std::to_string(n));
  std::ifstream f(dir_ + "/urls");
  std::string all;
  f >> all;
  std::stringstream ss(all);
  for (std::string u; std::getline(ss, u, ',');) urls_.push_back(u);
}

NatsCluster::~NatsCluster() {
  try {
    NatsScript("stop " + dir_);
  } catch (...) {
  }
}

void NatsCluster::Kill(size_t i) { NatsScript("kill " + dir_ + " " + std::to_string(i + 1)); }
void NatsCluster::Restart(size_t i) { NatsScript("restart " + dir_ + " " + std::to_string(i + 1)); }

void ServerProcess::Start() {
  port_ = 0;
  int out[2];
  if (pipe(out) != 0) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  std::string err_path = dir_ + "/stderr.log";
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::string bin = ONLINED_BINARY;
  std::vector<std::string> args = {bin, "serve", "--config", config_path_};
  std::string exe = bin;
  if (file_limit_ > 0) {
    exe = "/usr/bin/prlimit";
    std::string n = std::to_string(file_limit_);
    args.insert(args.begin(), {exe, "--nofile=" + n + ":" + n, "--"});
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (posix_spawn(&pid_, exe.c_str(), &fa, nullptr, argv.data(), environ) != 0) {
    throw std::runtime_error("cannot start " + bin);
  }
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  // Read "onlined: listening on http://127.0.0.1:PORT".
  std::string line;
  char c;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline && read(out[0], &c, 1) == 1) {
    if (c == '\n') {
      auto pos = line.rfind(':');
      if (line.find("listening") != std::string::npos && pos != std::string::npos) {
        port_ = static_cast<uint16_t>(std::stoi(line.substr(pos + 1)));
        break;
      }
      line.clear();
    } else {
      line.push_back(c);
    }
  }
  close(out[0]);
  if (port_ == 0) throw std::runtime_error("onlined did not start: " + Stderr());
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    if (WaitExit(3000ms) == -1) {
      kill(pid_, SIGKILL);
      WaitExit(3000ms);
    }
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

void ServerProcess::Signal(int sig) const { kill(pid_, sig); }

int ServerProcess::WaitExit(Ms timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(10ms);
  }
  return -1;
}

std::string ServerProcess::Stderr() const {
  std::ifstream f(dir_ + "/stderr.log");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

FakeSms::FakeSms() {
  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, in[1]);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  std::string script = FAKE_SMS_SCRIPT;
  std::vector<std::string> args = {"python3", script};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (posix_spawnp(&pid_, "python3", &fa, nullptr, argv.data(), environ) != 0)
    throw std::runtime_error("fake_sms");
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  stdin_fd_ = in[1];
  std::string line;
  char c;
  while (read(out[0], &c, 1) == 1 && c != '\n') line.push_back(c);
  close(out[0]);
  if (line.rfind("PORT ", 0) != 0) throw std::runtime_error("fake_sms did not start");
  port_ = static_cast<uint16_t>(std::stoi(line.substr(5)));
}

FakeSms::~FakeSms() {
  close(stdin_fd_);
  kill(pid_, SIGTERM);
  int status;
  waitpid(pid_, &status, 0);
}

void FakeSms::Script(const std::vector<std::string>& responses) {
  boost::json::array a;
  for (const auto& r : responses) {
    if (r == "hang" || r == "garbage" || r.rfind("slow:", 0) == 0) {
      a.push_back(boost::json::string(r));
    } else {
      a.push_back(std::stoi(r));
    }
  }
  Http(port_, "POST", "/_script", boost::json::serialize(boost::json::object{{"responses", a}}));
}

boost::json::array FakeSms::Requests() {
  return Http(port_, "GET", "/_requests").Json().as_array();
}

std::string MintToken(const std::string& role, const std::string& sub, const std::string& channel,
                      int64_t ttl_s, const std::string& secret, const std::string& kid,
                      int64_t iat) {
  auth::Role r;
  if (!auth::ParseRole(role, r)) throw std::invalid_argument("role");
  std::string key = !secret.empty() ? secret : channel == "other" ? kOtherSecret : kSecret;
  return auth::Mint({channel, sub, r, base::WallMs() / 1000 + ttl_s, iat}, key, kid);
}

std::string HttpResult::Header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (beast::iequals(k, name)) return v;
  }
  return "";
}

boost::json::value HttpResult::Json() const { return boost::json::parse(body); }

int64_t MetricValue(uint16_t port, const std::string& series) {
  HttpResult m = Http(port, "GET", "/metrics", "", kMetricsToken);
  const std::string line = series + " ";
  size_t at = m.body.rfind(line, 0) == 0 ? 0 : m.body.find("\n" + line);
  if (at == std::string::npos) return -1;
  at += m.body[at] == '\n' ? 1 : 0;
  return std::stoll(m.body.substr(at + line.size()));
}

HttpResult Http(uint16_t port, const std::string& method, const std::string& target,
                const std::string& body, const std::string& token,
                const std::vector<std::pair<std::string, std::string>>& headers) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  timeval tv{5, 0};
  setsockopt(stream.socket().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  if (method == "HEAD") parser.skip(true);  // a HEAD answer has no body
  http::read(stream, buf, parser);
  auto res = parser.release();
  HttpResult r;
  r.status = static_cast<int>(res.result_int());
  r.body = res.body();
  for (const auto& f : res)
    r.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  return r;
}

std::string RawExchange(uint16_t port, const std::string& bytes, Ms timeout) {
  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  asio::write(s, asio::buffer(bytes));
  timeval tv{0, 100000};
  setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    ssize_t n = ::recv(s.native_handle(), buf, sizeof buf, 0);
    if (n == 0) break;
    if (n > 0) out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string UpgradeRequest() {
  return "GET /v1/connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
}

int64_t RssBytes(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return -1;
}

bool Eventually(Ms timeout, const std::function<bool()>& done, Ms every) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(every);
  }
  return done();
}

int ServerFrame::close_code() const {
  if (payload.size() < 2) return 1005;
  return (static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]);
}

std::vector<ServerFrame> ParseServerFrames(const std::string& raw) {
  std::vector<ServerFrame> out;
  size_t pos = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 101", 0) != 0 || pos == std::string::npos) return out;
  pos += 4;
  while (raw.size() - pos >= 2) {
    auto b0 = static_cast<uint8_t>(raw[pos]), b1 = static_cast<uint8_t>(raw[pos + 1]);
    uint64_t len = b1 & 0x7f;
    size_t hdr = 2;
    if (len == 126) {
      if (raw.size() - pos < 4) break;
      len =
          (uint64_t{static_cast<uint8_t>(raw[pos + 2])} << 8) | static_cast<uint8_t>(raw[pos + 3]);
      hdr = 4;
    } else if (len == 127) {
      if (raw.size() - pos < 10) break;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | static_cast<uint8_t>(raw[pos + 2 + i]);
      hdr = 10;
    }
    if (raw.size() - pos - hdr < len) break;
    out.push_back(
        {static_cast<uint8_t>(b0 & 0x0f), raw.substr(pos + hdr, static_cast<size_t>(len))});
    pos += hdr + static_cast<size_t>(len);
  }
  return out;
}

std::string MaskedFrame(uint8_t first_byte, const std::string& payload, bool masked) {
  static const uint8_t mask[4] = {1, 2, 3, 4};
  std::string f;
  f.push_back(static_cast<char>(first_byte));
  uint8_t m = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    f.push_back(static_cast<char>(m | payload.size()));
  } else if (payload.size() < 65536) {
    f.push_back(static_cast<char>(m | 126));
    f.push_back(static_cast<char>(payload.size() >> 8));
    f.push_back(static_cast<char>(payload.size() & 0xff));
  } else {
    f.push_back(static_cast<char>(m | 127));
    for (int i = 7; i >= 0; --i)
      f.push_back(static_cast<char>(static_cast<uint64_t>(payload.size()) >> (8 * i)));
  }
  if (masked) f.append(reinterpret_cast<const char*>(mask), 4);
  for (size_t i = 0; i < payload.size(); ++i)
    f.push_back(masked ? static_cast<char>(payload[i] ^ mask[i % 4]) : payload[i]);
  return f;
}

struct WsClient::Impl {
  asio::io_context io;
  websocket::stream<tcp::socket> ws{io};
  beast::flat_buffer buf;
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> inbox;
  bool closed = false;
  int close_code = 0;
  std::string close_reason;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  asio::steady_timer ping_timer{io};
  std::string ping_text = R"({"type":"ping"})";

  void PingLoop(Ms interval) {
    ping_timer.expires_after(interval);
    ping_timer.async_wait([this, interval](beast::error_code ec) {
      if (ec || closed) return;
      beast::error_code wec;
      ws.text(true);
      ws.write(asio::buffer(ping_text), wec);
      PingLoop(interval);
    });
  }

  void ReadLoop() {
    ws.async_read(buf, [this](beast::error_code ec, size_t) {
      std::lock_guard lock(mu);
      if (ec) {
        closed = true;
        close_code = ec == websocket::error::closed ? ws.reason().code : 1006;
        if (ec == websocket::error::closed) close_reason = std::string(ws.reason().reason.c_str());
        cv.notify_all();
        return;
      }
      if (ws.got_text()) inbox.push_back(beast::buffers_to_string(buf.data()));
      buf.consume(buf.size());
      cv.notify_all();
      ReadLoop();
    });
  }

  template <class Fn>
  void RunSync(Fn&& fn) {
    std::promise<void> done;
    asio::post(io, [&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }
};

WsClient::WsClient() : impl_(std::make_unique<Impl>()) {}

WsClient::~WsClient() {
  Abort();
  impl_->guard.reset();
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

bool WsClient::Connect(uint16_t port, const std::string& target, int* status, std::string* body) {
  auto& ws = impl_->ws;
  ws.next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  ws.read_message_max(64 << 20);
  websocket::response_type res;
  beast::error_code ec;
  ws.handshake(res, "127.0.0.1", target, ec);
  if (status) *status = static_cast<int>(res.result_int());
  if (body) *body = res.body();
  if (ec) return false;
  impl_->guard.emplace(impl_->io.get_executor());
  impl_->thread = std::thread([this] {
    impl_->ReadLoop();
    impl_->io.run();
  });
  return true;
}

// Once the server's close has arrived (the stream is closing), nothing more
// is written, as a browser does: a frame sent after our answering close would
// be data after the close handshake, and the server's reset for it could
// overtake the close frame still unread here (the test would see 1006).
void WsClient::Send(const std::string& text) {
  impl_->RunSync([&] {
    if (!impl_->ws.is_open()) return;
    beast::error_code ec;
    impl_->ws.text(true);
    impl_->ws.write(asio::buffer(text), ec);
  });
}

void WsClient::SendBinary(const std::string& data) {
  impl_->RunSync([&] {
    if (!impl_->ws.is_open()) return;
    beast::error_code ec;
    impl_->ws.binary(true);
    impl_->ws.write(asio::buffer(data), ec);
  });
}

std::optional<std::string> WsClient::Next(Ms timeout) {
  std::unique_lock lock(impl_->mu);
  impl_->cv.wait_for(lock, timeout, [&] { return !impl_->inbox.empty() || impl_->closed; });
  if (impl_->inbox.empty()) return std::nullopt;
  std::string s = std::move(impl_->inbox.front());
  impl_->inbox.pop_front();
  return s;
}

std::optional<boost::json::value> WsClient::WaitFor(
    const std::string& type, Ms timeout,
    const std::function<bool(const boost::json::value&)>& pred) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<Ms>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto m = Next(left);
    if (!m) return std::nullopt;
    boost::system::error_code ec;
    auto v = boost::json::parse(*m, ec);
    if (ec || !v.is_object()) continue;
    const auto* t = v.as_object().if_contains("type");
    if (t && t->is_string() && t->as_string() == type && (!pred || pred(v))) return v;
  }
}

void WsClient::AutoPing(Ms interval) {
  asio::post(impl_->io, [this, interval] { impl_->PingLoop(interval); });
}

std::optional<int> WsClient::WaitClosed(Ms timeout) {
  std::unique_lock lock(impl_->mu);
  if (!impl_->cv.wait_for(lock, timeout, [&] { return impl_->closed; })) return std::nullopt;
  return impl_->close_code;
}

std::string WsClient::close_reason() const {
  std::lock_guard lock(impl_->mu);
  return impl_->close_reason;
}

bool WsClient::closed() const {
  std::lock_guard lock(impl_->mu);
  return impl_->closed;
}

void WsClient::Close() {
  if (!impl_->thread.joinable()) return;
  asio::post(impl_->io, [this] {
    impl_->ws.async_close(websocket::close_code::normal, [](beast::error_code) {});
  });
  WaitClosed(3000ms);
}

void WsClient::Abort() {
  if (!impl_->thread.joinable()) {
    beast::error_code ec;
    impl_->ws.next_layer().close(ec);
    return;
  }
  impl_->RunSync([&] {
    beast::error_code ec;
    impl_->ping_timer.cancel();
    impl_->ws.next_layer().close(ec);
  });
}

std::optional<boost::json::value> WsClient::Hello(const std::string& token,
                                                  const std::string& extra_json) {
  Send(R"({"type":"hello","token":")" + token + "\"" + extra_json + "}");
  return WaitFor("welcome", 3000ms);
}

}  // namespace onlined::testing
