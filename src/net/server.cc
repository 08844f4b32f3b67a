// Listener and HTTP sessions. One acceptor per loop on the same port
// (SO_REUSEPORT); each accepted socket stays on its loop.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <boost/asio/socket_base.hpp>
#include <cctype>

#include "base/clock.h"
#include "net/server_impl.h"

namespace onlined::net {

std::string_view Request::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

std::string_view Request::Path() const {
  std::string_view t(target);
  return t.substr(0, t.find('?'));
}

std::string_view Request::Query() const {
  std::string_view t(target);
  size_t q = t.find('?');
  return q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
}

Request ToAppRequest(http::request<http::string_body>& req, std::string remote, size_t loop,
                     bool with_body) {
  Request r;
  r.method = std::string(req.method_string());
  r.target = std::string(req.target());
  r.headers.reserve(8);
  for (const auto& f : req) {
    std::string name(f.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  if (with_body) r.body = std::move(req.body());
  r.remote = std::move(remote);
  r.loop = loop;
  return r;
}

namespace {

// RFC 9110 5.1 and 5.5: a field name is a token; a value has no control
// character but HTAB.
bool IsFieldName(std::string_view s) {
  constexpr std::string_view kMarks = "!#$%&'*+-.^_`|~";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum && kMarks.find(ch) == kMarks.npos) return false;
  }
  return !s.empty();
}
bool IsFieldValue(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

}  // namespace

std::string ResponseHead(const Response& r, unsigned version, bool keep_alive) {
  std::string h;
  h.reserve(160 + r.content_type.size());
  h += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  h += std::to_string(r.status);
  h += ' ';
  h += http::obsolete_reason(static_cast<http::status>(r.status));
  h += "\r\nServer: onlined\r\nContent-Type: ";
  if (IsFieldValue(r.content_type)) h += r.content_type;
  h += "\r\nCache-Control: no-store\r\n";
  for (const auto& [k, v] : r.headers) {
    if (!IsFieldName(k) || !IsFieldValue(v)) continue;
    h += k;
    h += ": ";
    h += v;
    h += "\r\n";
  }
  if (!keep_alive) {
    h += "Connection: close\r\n";
  } else if (version == 10) {
    h += "Connection: keep-alive\r\n";
  }
  h += "Content-Length: ";
  h += std::to_string(r.body.size());
  h += "\r\n\r\n";
  return h;
}

Response ErrorResponse(proto::Error e, std::string_view message) {
  Response r;
  r.status = proto::HttpStatus(e);
  r.body = R"({"error":{"code":")" + std::string(proto::Code(e)) + R"(","message":")" +
           std::string(message) + "\"}}";
  return r;
}

namespace {

std::string Peer(const tcp::socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  return ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
}

Admission::Address AddressOf(const tcp::socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  Admission::Address a{};
  if (ec) return a;
  asio::ip::address ip = ep.address();
  a = ip.is_v4() ? asio::ip::make_address_v6(asio::ip::v4_mapped, ip.to_v4()).to_bytes()
                 : ip.to_v6().to_bytes();
  return Admission::KeyOf(a);
}

// A lingering close: see WriteAndLinger.
class Linger : public std::enable_shared_from_this<Linger> {
 public:
  static constexpr size_t kMaxDrain = 256 * 1024;
  Linger(tcp::socket s, std::string bytes, Admission::Slot slot)
      : sock_(std::move(s)),
        bytes_(std::move(bytes)),
        timer_(sock_.get_executor()),
        slot_(std::move(slot)) {}
  void Run() {
    timer_.expires_after(std::chrono::seconds(1));
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->Close();
    });
    asio::async_write(sock_, asio::buffer(bytes_),
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) return self->Close();
                        beast::error_code ignore;
                        self->sock_.shutdown(tcp::socket::shutdown_send, ignore);
                        self->Drain();
                      });
  }

 private:
  void Drain() {
    sock_.async_read_some(asio::buffer(buf_),
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            self->drained_ += n;
                            if (ec || self->drained_ > kMaxDrain) return self->Close();
                            self->Drain();
                          });
  }
  void Close() {
    beast::error_code ignore;
    timer_.cancel();
    sock_.close(ignore);
    slot_.Release();
  }
  tcp::socket sock_;
  std::string bytes_;
  asio::steady_timer timer_;
  Admission::Slot slot_;  // the socket counts until it is closed
  std::array<char, 4096> buf_;
  size_t drained_ = 0;
};

// One HTTP/1.1 connection: reads requests one at a time, hands them to the
// application, writes its answers; on an upgrade it hands the socket (and
// its admission slot) over.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  static constexpr size_t kKeepAliveReadBytes = 8 * 1024;

  HttpSession(Server::Impl& impl, size_t loop, tcp::socket socket, Admission::Slot slot)
      : impl_(impl), loop_(loop), stream_(std::move(socket)), slot_(std::move(slot)) {
    remote_ = Peer(stream_.socket());
    impl_.metrics.Add(loop_, impl_.m.http_open, 1);
  }
  ~HttpSession() { impl_.metrics.Add(loop_, impl_.m.http_open, -1); }

  void Run() { DoRead(); }

 private:
  void DoRead() {
    parser_.emplace();
    parser_->body_limit(impl_.opts.max_body_bytes);
    parser_->header_limit(16 * 1024);
    stream_.expires_after(std::chrono::milliseconds(impl_.opts.http_idle_timeout_ms));
    http::async_read(
        stream_, buf_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == beast::error::timeout) impl_.metrics.Add(loop_, impl_.m.http_timeouts);
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset) {
      return Shutdown();
    }
    if (ec == http::error::body_limit) {
      impl_.metrics.Add(loop_, impl_.m.refusal_body_too_large);
      return RefuseAndLinger(
          ErrorResponse(proto::Error::kBodyTooLarge, "request body is over the limit"));
    }
    if (ec == http::error::header_limit) {
      impl_.metrics.Add(loop_, impl_.m.http_errors);
      impl_.metrics.Add(loop_, impl_.m.refusal_headers_too_large);
      return RefuseAndLinger(ErrorResponse(proto::Error::kHeadersTooLarge,
                                           "request headers are over the limit (16 KiB)"));
    }
    if (ec) {
      impl_.metrics.Add(loop_, impl_.m.http_errors);
      impl_.metrics.Add(loop_, impl_.m.refusal_bad_request);
      return RefuseAndLinger(ErrorResponse(proto::Error::kBadRequest, "malformed HTTP request"));
    }
    http::request<http::string_body> req = parser_->release();
    impl_.metrics.Add(loop_, impl_.m.http_requests);
    if (websocket::is_upgrade(req) && !impl_.opts.http_only) {
      stream_.expires_never();
      Request app_req = ToAppRequest(req, remote_, loop_, false);
      std::string leftover = beast::buffers_to_string(buf_.data());
      impl_.StartWebSocket(loop_, stream_.release_socket(), std::move(slot_), std::move(req),
                           std::move(app_req), std::move(leftover));
      return;
    }
    keep_alive_ = req.keep_alive();
    head_ = req.method() == http::verb::head;
    unsigned version = req.version();
    if (!impl_.admission.BeginRequest()) {
      impl_.metrics.Add(loop_, impl_.m.refused_in_flight);
      impl_.metrics.Add(loop_, impl_.m.refusal_overloaded);
      Response r =
          ErrorResponse(proto::Error::kOverloaded, "too many requests in flight; retry later");
      r.headers.emplace_back("Retry-After",
                             std::to_string((impl_.retry_after_ms.load() + 999) / 1000));
      return Write(std::move(r), version);
    }
    stream_.expires_never();  // the application may answer later
    // The request counts as in flight until its responder is called or
    // dropped (a handler that loses it must not leak a place).
    struct InFlight {
      explicit InFlight(Admission& adm) : a(adm) {}
      InFlight(const InFlight&) = delete;
      InFlight& operator=(const InFlight&) = delete;
      ~InFlight() { a.EndRequest(); }
      Admission& a;
    };
    auto in_flight = std::make_shared<InFlight>(impl_.admission);
    Responder respond = [self = shared_from_this(), version, in_flight](Response r) mutable {
      in_flight.reset();
      base::Loop& loop = self->impl_.loops.at(self->loop_);
      if (base::Loop::Current() == &loop) return self->Write(std::move(r), version);
      asio::post(loop.io(), [self, version, r = std::move(r)]() mutable {
        self->Write(std::move(r), version);
      });
    };
    impl_.http.Handle(ToAppRequest(req, remote_, loop_, true), std::move(respond));
  }

  // One response at a time: the next request is read when it is written.
  void Write(Response r, unsigned version) {
    if (impl_.stopping.load(std::memory_order_relaxed)) keep_alive_ = false;
    out_head_ = ResponseHead(r, version, keep_alive_);
    // HEAD: the headers GET would have (Content-Length included), no body
    // (RFC 9110 9.3.2); a body would be read as the next response.
    out_body_ = head_ ? std::string() : std::move(r.body);
    stream_.expires_after(std::chrono::seconds(30));
    std::array<asio::const_buffer, 2> out{asio::buffer(out_head_), asio::buffer(out_body_)};
    asio::async_write(stream_, out, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->out_head_.clear();
      self->out_body_ = std::string();
      if (ec || !self->keep_alive_) return self->Shutdown();
      // Beast reads into what the buffer has free, at least
      // 512 bytes, and a buffer emptied by every request never
      // grows: a 1 KiB query took three reads. A client that
      // keeps its connection gets room for a usual request in
      // one read.
      if (self->buf_.capacity() < kKeepAliveReadBytes) self->buf_.reserve(kKeepAliveReadBytes);
      self->DoRead();
    });
  }

  void Shutdown() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.close();
  }

  // A request refused before it was read whole (too large, malformed): the
  // answer, then the rest of what the client is still sending is read and
  // dropped for a while (bounded: WriteAndLinger) before the close, so that
  // a client still uploading sees the answer instead of a reset (the
  // lingering close of nginx).
  void RefuseAndLinger(Response r) {
    keep_alive_ = false;
    std::string bytes = ResponseHead(r, 11, false) + r.body;
    stream_.expires_never();
    WriteAndLinger(stream_.release_socket(), std::move(bytes), std::move(slot_));
  }

  Server::Impl& impl_;
  size_t loop_;
  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string out_head_;  // the response being written
  std::string out_body_;
  std::string remote_;
  Admission::Slot slot_;
  bool keep_alive_ = true;
  bool head_ = false;
};

}  // namespace

void WriteAndLinger(tcp::socket socket, std::string bytes, Admission::Slot slot) {
  std::make_shared<Linger>(std::move(socket), std::move(bytes), std::move(slot))->Run();
}

// A socket refused at accept holds no descriptor beyond this call (a flood of
// them must not exhaust what it is refused for): what the client already
// sent is read, so that the close is a FIN and not a reset that could
// destroy the answer, then the answer is written and the socket closed.
void RefuseFd(int fd, const std::string& bytes) {
  char buf[4096];
  for (int i = 0; i < 16 && ::recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0; ++i) {
  }
  [[maybe_unused]] ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
  for (int i = 0; i < 16 && ::recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0; ++i) {
  }
}

void RefuseNow(tcp::socket& s, const std::string& bytes) {
  RefuseFd(s.native_handle(), bytes);
  beast::error_code ignore;
  s.close(ignore);
}

std::string Server::Impl::RefusalBytes(std::string_view message) const {
  int64_t retry = retry_after_ms.load(std::memory_order_relaxed);
  std::string body = R"({"error":{"code":")" + std::string(proto::Code(proto::Error::kOverloaded)) +
                     R"(","message":")" + std::string(message) + R"(","retry_after_ms":)" +
                     std::to_string(retry) + "}}";
  return "HTTP/1.1 503 Service Unavailable\r\nServer: onlined\r\nContent-Type: application/json\r\n"
         "Cache-Control: no-store\r\nConnection: close\r\nRetry-After: " +
         std::to_string((retry + 999) / 1000) +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

void Server::Impl::RefuseAtAccept(tcp::socket& s, size_t loop, std::string_view message,
                                  std::optional<base::Metrics::Id> reason) {
  RefuseNow(s, RefusalBytes(message));
  CountRefusal(loop, reason);
}

void Server::Impl::RefuseAtAccept(int fd, size_t loop, std::string_view message,
                                  std::optional<base::Metrics::Id> reason) {
  RefuseFd(fd, RefusalBytes(message));
  ::close(fd);
  CountRefusal(loop, reason);
}

void Server::Impl::CountRefusal(size_t loop, std::optional<base::Metrics::Id> reason) {
  metrics.Add(loop, m.refused_total);
  metrics.Add(loop, m.refusal_overloaded);
  if (reason) metrics.Add(loop, *reason);
}

int Server::Impl::TakeReserve() {
  std::lock_guard lock(reserve_mu);
  int fd = -1;
  if (reserves.empty()) {
    fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  } else {
    fd = reserves.back();
    reserves.pop_back();
  }
  if (fd >= 0) ++reserves_out;
  return fd;
}

void Server::Impl::PutReserve(int fd, bool taken) {
  std::lock_guard lock(reserve_mu);
  if (taken) --reserves_out;
  if (fd >= 0 && reserves.size() + reserves_out < reserves_wanted) {
    reserves.push_back(fd);
  } else if (fd >= 0) {
    ::close(fd);
  }
  reserve_short.store(reserves.size() + reserves_out < reserves_wanted, std::memory_order_relaxed);
}

void Server::Impl::ShedOne(size_t loop) {
  PerLoop& pl = per_loop[loop];
  int reserve = TakeReserve();
  if (reserve < 0) return;  // every reserve is lost: the next pause tries again
  ::close(reserve);
  int fd = ::accept4(pl.acceptor->native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  // Answered on the bare descriptor: wrapping it in a socket registers it
  // with the loop's epoll, which can fail (and throw) in this very shortage.
  if (fd >= 0) RefuseAtAccept(fd, loop, "server is out of file descriptors", m.refused_fd);
  PutReserve(::open("/dev/null", O_RDONLY | O_CLOEXEC), true);
}

bool Server::Impl::RefillReserves(tcp::socket& s, size_t loop) {
  int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  bool refused = false;
  if (fd < 0) {
    // Nothing else is free: this socket has the number a reserve lacks.
    RefuseAtAccept(s, loop, "server is out of file descriptors", m.refused_fd);
    refused = true;
    fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  PutReserve(fd, false);
  return refused;
}

void Server::Impl::Accept(size_t loop) {
  PerLoop& pl = per_loop[loop];
  pl.acceptor->async_accept(loops.at(loop).io(), [this, loop](beast::error_code ec, tcp::socket s) {
    PerLoop& pl = per_loop[loop];
    if (ec == asio::error::operation_aborted || (ec && stopping.load())) return;
    if (ec) {
      metrics.Add(loop, m.accept_errors);
      // Out of descriptors (or a passing error): answer one waiting client
      // with the reserve descriptor, then pause instead of spinning.
      if (ec == asio::error::no_descriptors || ec.value() == ENFILE ||
          ec == asio::error::no_buffer_space) {
        static std::atomic<int64_t> last_log{0};
        int64_t now = base::SteadyMs();
        if (now - last_log.exchange(now) > 5000)
          spdlog::warn("accept: {} (shedding, pausing accepts)", ec.message());
        ShedOne(loop);
        pl.backoff->expires_after(std::chrono::milliseconds(20));
        pl.backoff->async_wait([this, loop](beast::error_code e) {
          if (!e) Accept(loop);
        });
        return;
      }
      Accept(loop);
      return;
    }
    if (reserve_short.load(std::memory_order_relaxed) && RefillReserves(s, loop)) {
      Accept(loop);
      return;
    }
    if (stopping.load()) {  // began draining since the accept: no limit refused it
      RefuseAtAccept(s, loop, "server is shutting down", std::nullopt);
      return;
    }
    Admission::Slot slot;
    switch (admission.Admit(AddressOf(s), &slot, base::SteadyMs())) {
      case Admission::Verdict::kAdmitted:
        break;
      case Admission::Verdict::kTooMany:
        RefuseAtAccept(s, loop, "server is at its connection limit", m.refused_max_connections);
        return Accept(loop);
      case Admission::Verdict::kTooManyFromAddress:
        RefuseAtAccept(s, loop, "too many connections from this address", m.refused_per_ip);
        return Accept(loop);
      case Admission::Verdict::kFlooded:
        RefuseAtAccept(s, loop, "too many handshakes; retry later", m.refused_flood);
        return Accept(loop);
    }
    beast::error_code ignore;
    s.set_option(tcp::no_delay(true), ignore);
    std::make_shared<HttpSession>(*this, loop, std::move(s), std::move(slot))->Run();
    Accept(loop);
  });
}

Server::Server(base::LoopGroup& loops, base::Metrics& metrics, ServerOptions opts,
               HttpHandler& http, WsAcceptor& ws)
    : impl_(std::make_unique<Impl>(*this, loops, metrics, opts, http, ws)) {
  SetLimits(opts);
  impl_->per_loop.resize(loops.size());
  auto& m = impl_->m;
  m.ws_open = metrics.Gauge("onlined_connections", "Open WebSocket connections.");
  m.http_open = metrics.Gauge("onlined_http_connections", "Open HTTP connections (not upgraded).");
  m.ws_accepted = metrics.Counter("onlined_ws_accepted_total", "WebSocket handshakes completed.");
  m.ws_closed = metrics.Counter("onlined_ws_closed_total", "WebSocket connections ended.");
  m.ws_refused = metrics.Counter("onlined_ws_refused_total",
                                 "WebSocket upgrades refused (auth, overload, path).");
  m.ws_slow = metrics.Counter("onlined_ws_slow_consumer_total",
                              "Connections cut because their send queue was full.");
  m.frames_in =
      metrics.Counter("onlined_frames_in_total", "WebSocket frames received (text, binary, ping).");
  m.frames_out = metrics.Counter("onlined_frames_out_total", "WebSocket text frames sent.");
  constexpr const char* kBatched = "onlined_ws_io_batched_total";
  constexpr const char* kBatchedHelp =
      "WebSocket socket reads and writes made in io_uring batches (setting io_uring), "
      "not one system call each.";
  m.io_batched_read = metrics.Counter(kBatched, kBatchedHelp, "op=\"read\"");
  m.io_batched_write = metrics.Counter(kBatched, kBatchedHelp, "op=\"write\"");
  m.io_uring_renewals = metrics.Counter(
      "onlined_ws_io_uring_renewals_total",
      "io_uring rings made again after a failure that may pass (the kernel short of memory, "
      "a batch taken in part).");
  m.io_uring_off = metrics.Gauge(
      "onlined_ws_io_uring_off_loops",
      "Loops whose io_uring batches are off although setting io_uring is 1 (the kernel refused "
      "a ring, or it kept failing): their WebSocket reads and writes are one system call each.");
  m.bytes_in = metrics.Counter("onlined_ws_bytes_in_total", "WebSocket message bytes received.");
  m.ws_read_yields = metrics.Counter(
      "onlined_ws_read_yields_total",
      "Times a connection's reads took ws_read_budget_bytes in one wakeup and the loop's other "
      "work ran before the rest was read.");
  m.http_requests =
      metrics.Counter("onlined_http_requests_total", "HTTP requests received (incl. upgrades).");
  m.http_errors = metrics.Counter("onlined_http_malformed_total", "Malformed HTTP requests.");
  m.accept_errors =
      metrics.Counter("onlined_accept_errors_total", "Failed accept() calls (e.g. out of files).");
  const char* kRefused = "onlined_admission_refused_total";
  const char* kRefusedHelp =
      "Sockets, handshakes and requests refused by admission control, by reason.";
  m.refused_total =
      metrics.Counter("onlined_admission_refused_sockets_total",
                      "Accepted sockets answered 503 and closed at once (every reason).");
  m.refused_per_ip = metrics.Counter(kRefused, kRefusedHelp, "reason=\"per_ip\"");
  m.refused_fd = metrics.Counter(kRefused, kRefusedHelp, "reason=\"out_of_descriptors\"");
  m.refused_handshake = metrics.Counter(kRefused, kRefusedHelp, "reason=\"handshake_rate\"");
  m.refused_flood = metrics.Counter(kRefused, kRefusedHelp, "reason=\"handshake_flood\"");
  m.refused_in_flight = metrics.Counter(kRefused, kRefusedHelp, "reason=\"http_in_flight\"");
  m.refused_max_connections = metrics.Counter(kRefused, kRefusedHelp, "reason=\"max_connections\"");
  // What this layer answers itself, in the application's family (the same
  // series: registering one again returns it).
  const char* kRefusals = "onlined_refusals_total";
  const char* kRefusalsHelp = "Frames and requests refused, by error code.";
  auto refusal = [&](proto::Error e) {
    return metrics.Counter(kRefusals, kRefusalsHelp,
                           "code=\"" + std::string(proto::Code(e)) + "\"");
  };
  m.refusal_body_too_large = refusal(proto::Error::kBodyTooLarge);
  m.refusal_headers_too_large = refusal(proto::Error::kHeadersTooLarge);
  m.refusal_bad_request = refusal(proto::Error::kBadRequest);
  m.refusal_overloaded = refusal(proto::Error::kOverloaded);
  m.http_timeouts =
      metrics.Counter("onlined_http_idle_timeouts_total",
                      "HTTP connections closed for sending no (complete) request in time.");
}

Server::~Server() {
  impl_->ReleaseSessions();
  for (int fd : impl_->reserves) ::close(fd);
}

void Server::Start() {
  auto addr = asio::ip::make_address(impl_->opts.host);
  uint16_t port = impl_->opts.port;
  // An HTTP-only listener (metrics) has one acceptor, without SO_REUSEPORT:
  // a second process on the same address must fail to bind, not share it.
  const size_t acceptors = impl_->opts.http_only ? 1 : impl_->loops.size();
  for (size_t i = 0; i < impl_->loops.size(); ++i) {
    auto& pl = impl_->per_loop[i];
    auto& io = impl_->loops.at(i).io();
    BatchIo::Counters counters{&impl_->metrics, i, impl_->m.io_uring_renewals,
                               impl_->m.io_uring_off};
    pl.poller = std::make_unique<Poller>(io, impl_->opts.io_uring && !impl_->opts.http_only,
                                         pl.scratch.data(), counters);
    if (i >= acceptors) continue;
    pl.acceptor = std::make_unique<tcp::acceptor>(io);
    pl.backoff = std::make_unique<asio::steady_timer>(io);
    impl_->reserves_wanted++;
    impl_->PutReserve(::open("/dev/null", O_RDONLY | O_CLOEXEC), false);
    tcp::endpoint ep(addr, port);
    pl.acceptor->open(ep.protocol());
    pl.acceptor->set_option(asio::socket_base::reuse_address(true));
    if (!impl_->opts.http_only) {
      pl.acceptor->set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true));
    }
    pl.acceptor->bind(ep);
    pl.acceptor->listen(asio::socket_base::max_listen_connections);
    // With port 0 the first bind picks the port; the others share it.
    port = pl.acceptor->local_endpoint().port();
  }
  port_ = port;
  for (size_t i = 0; i < impl_->loops.size() && !impl_->opts.http_only; ++i) {
    // Each loop's ring made now, on its thread (it is single-issuer), so
    // onlined_ws_io_uring_off_loops tells from the start. An HTTP-only
    // listener has no WebSocket to batch: no ring.
    impl_->loops.Post(i, [this, i] { impl_->per_loop[i].poller->batch_io(); });
  }
  for (size_t i = 0; i < acceptors; ++i) {
    impl_->loops.Post(i, [this, i] { impl_->Accept(i); });
  }
}

void Server::SetLimits(const ServerOptions& o) {
  Admission::Limits l;
  l.max_connections = o.max_connections;
  l.max_per_ip = o.max_connections_per_ip;
  l.handshakes_per_s = o.handshakes_per_s;
  l.handshake_burst = o.handshake_burst;
  l.max_http_in_flight = o.max_http_in_flight;
  impl_->admission.SetLimits(l);
  impl_->retry_after_ms = o.retry_after_ms;
  impl_->send_queue_max = o.send_queue_max;
  impl_->desk_send_queue_max = o.desk_send_queue_max;
  impl_->max_frame_bytes = o.max_frame_bytes;
  impl_->ws_read_budget = o.ws_read_budget_bytes;
  impl_->opts.drain_spread_ms = o.drain_spread_ms;  // read by Stop, on this (the main) thread
}

}  // namespace onlined::net
