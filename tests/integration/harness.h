#pragma once
// Test harness: starts the real `onlined` binary on a free port, and talks
// to it as clients do, over real sockets (WebSocket and HTTP). Light header:
// Beast stays in harness.cc.
#include <boost/json/value.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace onlined::testing {

using namespace std::chrono_literals;
using Ms = std::chrono::milliseconds;

constexpr const char* kSecret = "acme-secret-0123456789";
constexpr const char* kOtherSecret = "other-secret-0123456789";
constexpr const char* kMetricsToken = "metrics-test-token";

// One `onlined serve` process. Killed (TERM, then KILL) when destroyed.
class ServerProcess {
 public:
  // `extra_toml` is appended to a config that defines channels "acme" and
  // "other" with short heartbeat and grace settings.
  // `acme_toml` goes inside channel "acme"'s table.
  // `file_limit` > 0 runs the server under that RLIMIT_NOFILE (soft and hard).
  explicit ServerProcess(const std::string& extra_toml = "", const std::string& top_toml = "",
                         const std::string& acme_toml = "", int file_limit = 0);
  ~ServerProcess();

  // Starts the server again on the same config and data dir (after a kill).
  void Restart();

  uint16_t port() const { return port_; }
  int pid() const { return pid_; }
  const std::string& config_path() const { return config_path_; }
  void Signal(int sig) const;
  // Waits for exit; returns the exit status, or -1 on timeout.
  int WaitExit(Ms timeout);
  std::string Stderr() const;

 private:
  void Start();
  int pid_ = -1;
  uint16_t port_ = 0;
  int file_limit_ = 0;
  std::string dir_, config_path_;
};

// A PostgreSQL of the test's own (scripts/test-postgres.sh) in a temporary
// directory, for tests that stop it; others share the run's (TEST_POSTGRES_DIR).
class PostgresServer {
 public:
  PostgresServer();   // initdb and start
  ~PostgresServer();  // stop and remove
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;
  void Halt();   // stops the server (connections cut), keeps its data
  void Start();  // starts it again, on the same port
  void Pause();  // SIGSTOP: connections stay open, nothing answers
  void Resume();
  // postgresql://postgres@127.0.0.1:PORT (add "/dbname").
  const std::string& url() const { return url_; }

 private:
  std::string dir_, url_;
};

// A NATS cluster of the test's own (scripts/nats-cluster.sh): `n` routed
// nats-server processes on free 127.0.0.1 ports, JetStream in a temporary
// directory, the client DISCONNECT advisories visible to plain clients.
class NatsCluster {
 public:
  explicit NatsCluster(int n = 3);
  ~NatsCluster();  // stop all and remove
  NatsCluster(const NatsCluster&) = delete;
  NatsCluster& operator=(const NatsCluster&) = delete;
  // nats://127.0.0.1:PORT of server i (0-based).
  const std::string& url(size_t i) const { return urls_.at(i); }
  size_t size() const { return urls_.size(); }
  void Kill(size_t i);     // kill -9
  void Restart(size_t i);  // on its ports, with its files

 private:
  std::string dir_;
  std::vector<std::string> urls_;
};

// The resident memory of a process, in bytes (VmRSS), or -1.
int64_t RssBytes(int pid);

// Asks `done` every `every` until it says yes (true) or `timeout` passes
// (false, after one last ask): a test waits for a state, not for a guess of
// how long it takes.
bool Eventually(Ms timeout, const std::function<bool()>& done, Ms every = 20ms);

// A token of the test channels (acme, other) signed with their secret, or
// with `secret` and a `kid` header if given; `iat` (seconds) if not 0.
std::string MintToken(const std::string& role, const std::string& sub,
                      const std::string& channel = "acme", int64_t ttl_s = 3600,
                      const std::string& secret = "", const std::string& kid = "", int64_t iat = 0);

struct HttpResult {
  int status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string Header(const std::string& name) const;
  boost::json::value Json() const;
};
HttpResult Http(uint16_t port, const std::string& method, const std::string& target,
                const std::string& body = "", const std::string& token = "",
                const std::vector<std::pair<std::string, std::string>>& headers = {});

// One series of the server's /metrics (read with the metrics token): the
// name with its labels, e.g. `onlined_rate_limited_total{kind="receipt"}`;
// -1 if it is not there.
int64_t MetricValue(uint16_t port, const std::string& series);

// The fake SMS provider (fake_sms.py), started for one test.
class FakeSms {
 public:
  FakeSms();
  ~FakeSms();
  uint16_t port() const { return port_; }
  // The next answers, e.g. {"500", "201"} or {"400"} or {"hang"}, or
  // {"slow:1500"} (201 after 1.5 s).
  void Script(const std::vector<std::string>& responses);
  // What it received so far: [{"path","auth","form":{...},"at"}].
  boost::json::array Requests();

 private:
  int pid_ = -1;
  int stdin_fd_ = -1;
  uint16_t port_ = 0;
};

// Raw TCP: sends `bytes`, then returns everything the server sends until
// it closes or `timeout` passes.
std::string RawExchange(uint16_t port, const std::string& bytes, Ms timeout = 1500ms);
// The upgrade request for /v1/connect, and a masked client frame.
std::string UpgradeRequest();
// A masked client frame; payloads of any size (16- and 64-bit lengths).
std::string MaskedFrame(uint8_t first_byte, const std::string& payload, bool masked = true);

// The frames a server sent, parsed from raw bytes after the 101 response.
struct ServerFrame {
  uint8_t opcode = 0;
  std::string payload;
  // For a close frame: its code (1005 if it carried none).
  int close_code() const;
};
std::vector<ServerFrame> ParseServerFrames(const std::string& raw);

// A WebSocket client with its own I/O thread; messages queue up for Next().
class WsClient {
 public:
  WsClient();
  ~WsClient();
  // Opens TCP and does the upgrade. On an HTTP refusal returns false and
  // sets *status (and *body).
  bool Connect(uint16_t port, const std::string& target = "/v1/connect", int* status = nullptr,
               std::string* body = nullptr);
  void Send(const std::string& text);
  void SendBinary(const std::string& data);
  // The next text message, or nullopt after `timeout` or once closed.
  std::optional<std::string> Next(Ms timeout = 3000ms);
  // Skips messages until one of the given type arrives (and matches `pred`).
  std::optional<boost::json::value> WaitFor(
      const std::string& type, Ms timeout = 3000ms,
      const std::function<bool(const boost::json::value&)>& pred = {});
  // Waits until the server ends the connection; returns its close code
  // (1006 when there was no close frame), or nullopt on timeout.
  std::optional<int> WaitClosed(Ms timeout = 3000ms);
  bool closed() const;
  // The reason of the server's close frame (after WaitClosed).
  std::string close_reason() const;
  // Clean close handshake from the client side.
  void Close();
  // Drops the TCP connection without a close frame.
  void Abort();
  // Sends {"type":"ping"} every `interval` from the I/O thread, as a real
  // client's heartbeat does, until closed.
  void AutoPing(Ms interval = 500ms);

  // hello with a token; returns the welcome frame (or nullopt).
  std::optional<boost::json::value> Hello(const std::string& token,
                                          const std::string& extra_json = "");

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace onlined::testing
