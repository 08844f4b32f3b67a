#pragma once
// net::Server: HTTP/1.1 and WebSocket on one port, one acceptor per loop
// (SO_REUSEPORT, the kernel spreads connections), shared-nothing: a
// connection lives and dies on the loop that accepted it.
//
// Admission control: past max_connections an upgrade is refused with 503 and
// Retry-After; when the process runs out of file descriptors accepting pauses
// briefly instead of spinning.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/loops.h"
#include "base/metrics.h"
#include "net/handler.h"

namespace onlined::net {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: pick one; see port()
  size_t max_frame_bytes = 64 * 1024;
  size_t max_body_bytes = 1024 * 1024;
  size_t send_queue_max = 1024;
  int64_t max_connections = 0;  // 0: unlimited
  int64_t retry_after_ms = 5000;
  int64_t http_idle_timeout_ms = 30000;
};

class Server {
 public:
  // Handlers must outlive the server.
  Server(base::LoopGroup& loops, base::Metrics& metrics, ServerOptions opts, HttpHandler& http,
         WsAcceptor& ws);
  ~Server();

  // Binds and starts accepting on every loop. Throws std::system_error if
  // the address cannot be bound.
  void Start();
  // Stops accepting and closes every WebSocket with 1001 (going away).
  void Stop();

  uint16_t port() const { return port_; }
  int64_t connections() const { return ws_connections_.load(std::memory_order_relaxed); }

  // Options that can change live (SIGHUP).
  void SetLimits(int64_t max_connections, size_t send_queue_max, size_t max_frame_bytes);

  struct Impl;

 private:
  friend struct Impl;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
  std::atomic<int64_t> ws_connections_{0};
};

}  // namespace onlined::net
