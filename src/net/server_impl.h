#pragma once
// Internal to net/: the server's shared state and the session classes.
// Includes Beast; only net/*.cc may include this header.
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <mutex>
#include <optional>
#include <unordered_set>

#include "net/admission.h"
#include "net/poller.h"
#include "net/server.h"
#include "proto/errors.h"

namespace onlined::net {

// An HTTP error answer from the contract's table (proto/errors.h): its
// status and `{"error":{"code","message"}}`.
Response ErrorResponse(proto::Error e, std::string_view message);

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

class WsConn;

struct Server::Impl {
  Impl(Server& s, base::LoopGroup& l, base::Metrics& m, ServerOptions o, HttpHandler& h,
       WsAcceptor& w)
      : server(s), loops(l), metrics(m), opts(o), http(h), ws(w) {}

  Server& server;
  base::LoopGroup& loops;
  base::Metrics& metrics;
  ServerOptions opts;
  HttpHandler& http;
  WsAcceptor& ws;
  Admission admission;
  std::atomic<int64_t> retry_after_ms{5000};
  std::atomic<size_t> send_queue_max{1024};
  std::atomic<size_t> desk_send_queue_max{8192};
  std::atomic<size_t> max_frame_bytes{64 * 1024};
  std::atomic<size_t> ws_read_budget{1 << 20};
  std::atomic<bool> stopping{false};

  struct PerLoop {
    std::unique_ptr<tcp::acceptor> acceptor;
    std::unique_ptr<asio::steady_timer> backoff;  // after EMFILE
    std::unique_ptr<Poller> poller;               // upgraded connections
    std::unordered_set<WsConn*> sessions;
    std::vector<std::shared_ptr<WsConn>> dirty;  // frames queued, writev after the running handlers
    bool flush_posted = false;
    // Reads of this loop's connections: the first Poller::kSlicesBytes are
    // the Poller's batched reads, the 64 KiB after them a connection's own.
    static constexpr size_t kScratchBytes = Poller::kSlicesBytes + 64 * 1024;
    std::vector<char> scratch = std::vector<char>(kScratchBytes);
    // FlushDirty's batched writes (Poller::batch_io): one per connection
    // with at most 4 frames queued (more go by writev, up to 32 a call).
    struct OutSlot {
      msghdr msg{};
      std::array<iovec, 8> iov{};
    };
    std::vector<OutSlot> out;
    std::vector<int32_t> out_res;
  };
  std::vector<PerLoop> per_loop;

  // Descriptors held back to answer with when out of them, one per acceptor,
  // shared by the loops. ShedOne gives one up for a moment; another loop's
  // accept can take the freed number in between, and then that reserve is
  // short until a descriptor frees up. While short, the loops refill the
  // pool before they admit anyone (the first socket accepted then is refused
  // if nothing else is free), so no loop is left unable to answer.
  std::mutex reserve_mu;
  std::vector<int> reserves;  // guarded by reserve_mu, with the two below
  size_t reserves_out = 0;    // taken by a ShedOne that runs now
  size_t reserves_wanted = 0;
  std::atomic<bool> reserve_short{false};
  int TakeReserve();  // -1 if none is held nor free
  // Adds `fd` to the pool (closed if the pool is whole); `taken`: it stands
  // for one that TakeReserve handed out (fd -1: that one is lost).
  void PutReserve(int fd, bool taken);
  bool RefillReserves(tcp::socket& s, size_t loop);  // while short: true if `s` was refused

  struct Ids {
    base::Metrics::Id ws_open, ws_accepted, ws_closed, ws_refused, ws_slow, frames_in, frames_out,
        bytes_in, http_requests, http_errors, accept_errors, http_open, refused_total,
        refused_per_ip, refused_fd, refused_handshake, refused_flood, refused_in_flight,
        http_timeouts, io_batched_read, io_batched_write, io_uring_renewals, io_uring_off,
        refused_max_connections, refusal_body_too_large, refusal_headers_too_large,
        refusal_bad_request, refusal_overloaded, ws_read_yields;
  } m{};

  void Accept(size_t loop);
  // Out of descriptors: frees the reserve, accepts one socket, answers it 503
  // and closes it, takes the reserve back.
  void ShedOne(size_t loop);
  void FlushDirty(size_t loop);
  // Teardown, loops stopped: drops the connections' references to themselves.
  void ReleaseSessions();
  // Takes over an upgraded socket. `req` is the upgrade request; `leftover`
  // what the client sent after it (frames pipelined behind the upgrade).
  void StartWebSocket(size_t loop, tcp::socket socket, Admission::Slot slot,
                      http::request<http::string_body> req, Request app_req, std::string leftover);
  // The 503 + Retry-After answer of a socket refused before any request.
  std::string RefusalBytes(std::string_view message) const;
  // Answers `s` with that 503 and closes it, counted (every refusal at
  // accept, `overloaded`, and `reason` if any).
  void RefuseAtAccept(tcp::socket& s, size_t loop, std::string_view message,
                      std::optional<base::Metrics::Id> reason);
  // The same on a bare descriptor (closed after): when descriptors are short,
  // registering it with the loop's epoll could fail.
  void RefuseAtAccept(int fd, size_t loop, std::string_view message,
                      std::optional<base::Metrics::Id> reason);
  void CountRefusal(size_t loop, std::optional<base::Metrics::Id> reason);
};

// Writes `bytes`, shuts down the sending side and reads what the peer still
// sends (up to a bound, for at most a second) before closing, so the peer sees
// the answer instead of a reset (a lingering close).
// `slot` is given back when the socket is closed.
void WriteAndLinger(tcp::socket socket, std::string bytes, Admission::Slot slot = {});

// Converts a Beast request into the application's Request.
// With `with_body` the body is moved out of `req`.
Request ToAppRequest(http::request<http::string_body>& req, std::string remote, size_t loop,
                     bool with_body);
// The status line and header fields that go before `r.body` (whose size is
// the Content-Length, also for HEAD): Server, Content-Type, Cache-Control,
// r.headers (a field whose name is not a token or whose value holds a
// control character is dropped),
// Connection, Content-Length.
std::string ResponseHead(const Response& r, unsigned version, bool keep_alive);

}  // namespace onlined::net
