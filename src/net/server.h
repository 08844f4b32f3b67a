#pragma once
// net::Server: HTTP/1.1 and WebSocket on one port, one acceptor per loop
// (SO_REUSEPORT, the kernel spreads connections), shared-nothing: a
// connection lives and dies on the loop that accepted it.
//
// Admission control (net/admission.h): every accepted socket counts against
// max_connections and max_connections_per_ip (past them: 503 + Retry-After
// and close); handshakes are rate-limited (past it: close 1013 with
// retry_after_ms); HTTP requests in flight are capped (503). Idle HTTP
// sockets time out. One descriptor per loop is kept in reserve, so that when
// the process runs out of them a connection is still accepted, answered 503
// and closed, instead of waiting unanswered in the backlog.
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
  // A desk's connection (WsConnection::UseDeskQueue): it gets the channel's
  // every event, in bursts when many users act at once.
  size_t desk_send_queue_max = 8192;
  // What one connection's reads may take per wakeup before the loop's other
  // connections and timers run (the rest is read after them).
  size_t ws_read_budget_bytes = 1 << 20;
  int64_t max_connections = 0;         // every socket, HTTP or WebSocket; 0: unlimited
  int64_t max_connections_per_ip = 0;  // 0: unlimited
  double handshakes_per_s = 0;         // 0: unlimited
  double handshake_burst = 0;          // 0: one second's worth
  int64_t max_http_in_flight = 0;      // 0: unlimited
  int64_t retry_after_ms = 5000;
  int64_t http_idle_timeout_ms = 10000;  // a request's headers, and keep-alive between requests
  // Stop(): each WebSocket's close (1001) carries a retry hint drawn from
  // [0, drain_spread_ms], so that clients come back spread over the window
  // (to the other nodes of a cluster) instead of all at once. 0: no hint.
  int64_t drain_spread_ms = 0;
  // HTTP only: no WebSocket upgrades (the metrics listener).
  bool http_only = false;
  // Read the ready WebSockets of a wakeup, and write a flush's dirty ones,
  // in one io_uring system call each (net/batch_io.h) where the kernel
  // allows it; false: one read or write system call per socket.
  bool io_uring = true;
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
  // Stops accepting and closes every WebSocket with 1001 (going away), with
  // the retry hint `{"code":"shutting_down","retry_after_ms":N}` as the
  // reason when drain_spread_ms is set.
  void Stop();

  uint16_t port() const { return port_; }

  // Options that can change live (SIGHUP): the admission limits, the send
  // queue cap and the frame limit. Other fields of `o` are ignored.
  void SetLimits(const ServerOptions& o);

  struct Impl;

 private:
  friend struct Impl;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
};

}  // namespace onlined::net
