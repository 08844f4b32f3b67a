// WsConn: a lean server-side WebSocket (RFC 6455) on a raw Asio socket.
//
// Why not Beast's websocket::stream: it keeps a 1.5 KB read buffer and a
// timer inline per stream and prepares another buffer before any data
// arrives (~5 KB per idle connection measured). Here an idle connection
// holds no buffer at all. After the upgrade the socket leaves Asio for the
// loop's Poller (net/poller.h): registered once, edge-triggered; when it is
// readable the connection reads non-blocking into its loop's scratch buffer
// and only an incomplete frame is kept per connection. Writes are one
// non-blocking gather-write of what is queued, so a heartbeat costs one read
// and one write, no epoll_ctl and no async operation.
//
// Scope: no extensions (permessage-deflate is not negotiated), no
// subprotocols. Text and binary messages, fragmentation, ping/pong, close.
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <span>
#include <sstream>

#include "net/poller.h"
#include "net/server_impl.h"

namespace onlined::net {

namespace {

constexpr uint8_t kOpCont = 0x0, kOpText = 0x1, kOpBinary = 0x2, kOpClose = 0x8, kOpPing = 0x9, kOpPong = 0xA;
constexpr int64_t kCloseLingerMs = 2000;  // wait this long for the peer's close

std::string AcceptKey(std::string_view key) {
  std::string s(key);
  s += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(s.data()), s.size(), digest);
  unsigned char out[64];
  int n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n));
}

std::string Serialize(Response r, unsigned version) {
  std::ostringstream os;
  os << ToBeastResponse(std::move(r), version, false);
  return os.str();
}

// Unmasks `n` bytes in place.
void Unmask(char* p, size_t n, const uint8_t mask[4]) {
  uint32_t m32;
  std::memcpy(&m32, mask, 4);
  uint64_t m64 = (static_cast<uint64_t>(m32) << 32) | m32;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    v ^= m64;
    std::memcpy(p + i, &v, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<char>(p[i] ^ mask[i & 3]);
}

}  // namespace

class WsConn : public WsConnection,
               public base::TimerEntry,
               public Poller::Handler,
               public std::enable_shared_from_this<WsConn> {
 public:
  WsConn(Server::Impl& impl, size_t loop, tcp::socket socket, std::string remote)
      : impl_(impl), loop_(loop), sock_(std::move(socket)), remote_(std::move(remote)) {}

  ~WsConn() override {
    if (fd_ >= 0) ::close(fd_);
  }

  void Start(const http::request<http::string_body>& req, const Request& app_req, std::string leftover) {
    int64_t max = impl_.max_connections.load(std::memory_order_relaxed);
    if (impl_.stopping.load() || (max > 0 && impl_.server.connections() >= max)) {
      Response r;
      r.status = 503;
      r.headers.emplace_back("Retry-After", std::to_string((impl_.opts.retry_after_ms + 999) / 1000));
      r.body = R"({"error":{"code":"overloaded","message":"server is at its connection limit","retry_after_ms":)" +
               std::to_string(impl_.opts.retry_after_ms) + "}}";
      return Refuse(std::move(r), req.version());
    }
    std::string_view key = req[http::field::sec_websocket_key];
    if (req[http::field::sec_websocket_version] != "13" || key.size() != 24) {
      Response r;
      r.status = 400;
      r.headers.emplace_back("Sec-WebSocket-Version", "13");
      r.body = R"({"error":{"code":"bad_request","message":"WebSocket version 13 with a valid Sec-WebSocket-Key is required"}})";
      return Refuse(std::move(r), req.version());
    }
    WsAcceptor::Decision d = impl_.ws.Upgrade(app_req, *this);
    if (!d.session) return Refuse(std::move(d.refusal), req.version());
    app_ = std::move(d.session);
    max_message_ = impl_.max_frame_bytes.load(std::memory_order_relaxed);
    pending_ = std::move(leftover);

    auto reply = std::make_shared<std::string>(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Server: onlined\r\nSec-WebSocket-Accept: " + AcceptKey(key) + "\r\n\r\n");
    boost::system::error_code ec;
    sock_.non_blocking(true, ec);
    if (!ec) fd_ = sock_.release(ec);
    if (ec || !impl_.per_loop[loop_].poller->Add(fd_, this)) {
      spdlog::warn("ws {}: cannot watch the socket: {}", remote_,
                   ec ? ec.message() : std::strerror(errno));
      return Finish(1011);
    }
    self_ = shared_from_this();  // the Poller holds a plain pointer: we keep ourselves until Finish
    state_ = State::kOpen;
    impl_.per_loop[loop_].sessions.insert(this);
    impl_.server_connections(+1);
    impl_.metrics.Add(loop_, impl_.m.ws_accepted);
    impl_.metrics.Add(loop_, impl_.m.ws_open, 1);
    registered_ = true;
    // The handshake goes out first, as a raw frame of the queue.
    queue_.push_back(Out{std::move(reply), {}, 0});
    Flush();
    app_->OnOpen();
    if (!pending_.empty()) {
      std::string first;
      first.swap(pending_);
      Consume(first.data(), first.size());
    }
  }

  bool Send(std::shared_ptr<const std::string> text) override {
    if (state_ != State::kOpen) return false;
    if (queue_.size() - head_ >= impl_.send_queue_max.load(std::memory_order_relaxed)) {
      // A peer that does not read cannot take a close frame either.
      impl_.metrics.Add(loop_, impl_.m.ws_slow);
      spdlog::info("ws {}: send queue full, cutting slow consumer", remote_);
      close_code_ = 1008;
      Abort();
      return false;
    }
    Enqueue(kOpText, std::move(text));
    return true;
  }

  void Close(uint16_t code, std::string_view reason) override {
    if (state_ != State::kOpen) return;
    close_code_ = code;
    SendClose(code, reason);
  }

  void Abort() override {
    if (state_ == State::kClosed || aborting_) return;
    aborting_ = true;  // nothing more is read or written
    asio::post(impl_.loops.at(loop_).io(),
               [self = shared_from_this()] { self->Finish(self->close_code_); });
  }

  size_t loop() const override { return loop_; }
  const std::string& remote() const override { return remote_; }
  std::weak_ptr<void> lifetime() override { return weak_from_this(); }

  // base::TimerEntry: the close handshake took too long.
  void OnTimer(int64_t) override {
    if (state_ == State::kClosing) Finish(close_code_);
  }

  // Poller::Handler: the socket became readable and/or writable.
  void OnEvents(uint32_t ev) override {
    if (state_ == State::kClosed || aborting_) return;
    if ((ev & EPOLLOUT) && writing_) {
      writing_ = false;
      Flush();
      if (state_ == State::kClosed || aborting_) return;
    }
    constexpr uint32_t kEnd = EPOLLRDHUP | EPOLLHUP | EPOLLERR;
    if (ev & (EPOLLIN | kEnd)) OnReadable((ev & kEnd) != 0);
  }

  // Drops the references the connection holds to itself (server teardown,
  // loops stopped).
  void Release() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    self_.reset();
  }

 private:
  enum class State { kNew, kOpen, kClosing, kClosed };
  struct Out {
    std::shared_ptr<const std::string> payload;
    std::array<uint8_t, 10> hdr;
    uint8_t hdr_len;  // 0: raw bytes (the handshake)
  };

  void Refuse(Response r, unsigned version) {
    impl_.metrics.Add(loop_, impl_.m.ws_refused);
    auto bytes = std::make_shared<std::string>(Serialize(std::move(r), version));
    asio::async_write(sock_, asio::buffer(*bytes), [self = shared_from_this(), bytes](boost::system::error_code, size_t) {
      boost::system::error_code ec;
      self->sock_.shutdown(tcp::socket::shutdown_send, ec);
      self->sock_.close(ec);
    });
  }

  void Enqueue(uint8_t opcode, std::shared_ptr<const std::string> payload) {
    Out o{std::move(payload), {}, 2};
    size_t n = o.payload->size();
    o.hdr[0] = static_cast<uint8_t>(0x80 | opcode);
    if (n < 126) {
      o.hdr[1] = static_cast<uint8_t>(n);
    } else if (n < 65536) {
      o.hdr[1] = 126;
      o.hdr[2] = static_cast<uint8_t>(n >> 8);
      o.hdr[3] = static_cast<uint8_t>(n);
      o.hdr_len = 4;
    } else {
      o.hdr[1] = 127;
      for (int i = 0; i < 8; ++i) o.hdr[2 + i] = static_cast<uint8_t>(static_cast<uint64_t>(n) >> (56 - 8 * i));
      o.hdr_len = 10;
    }
    queue_.push_back(std::move(o));
    if (!writing_) ScheduleFlush();
  }

  // Frames queued by the handlers that run back to back on this loop (a batch
  // of readable sockets, a group commit's messages) go out together: one
  // writev per connection after them, not one per frame.
  void ScheduleFlush() {
    if (flush_scheduled_) return;
    flush_scheduled_ = true;
    Server::Impl::PerLoop& pl = impl_.per_loop[loop_];
    pl.dirty.push_back(shared_from_this());
    if (pl.flush_posted) return;
    pl.flush_posted = true;
    asio::post(impl_.loops.at(loop_).io(),
               [&impl = impl_, loop = loop_] { impl.FlushDirty(loop); });
  }

  // Writes what is queued, kBatch frames per writev, until the queue is empty
  // or the socket is full; then EPOLLOUT (edge-triggered) calls Flush again.
  static constexpr size_t kBatch = 32;
  void Flush() {
    if (writing_ || state_ == State::kClosed || aborting_) return;
    while (head_ < queue_.size()) {
      std::array<iovec, kBatch * 2> iov;
      int niov = 0;
      size_t skip = sent_;
      for (size_t i = head_; i < queue_.size() && i - head_ < kBatch; ++i) {
        const Out& o = queue_[i];
        std::pair<const void*, size_t> parts[2] = {{o.hdr.data(), o.hdr_len},
                                                   {o.payload->data(), o.payload->size()}};
        for (auto [p, n] : parts) {
          if (skip >= n) {
            skip -= n;
            continue;
          }
          iov[static_cast<size_t>(niov++)] =
              iovec{const_cast<char*>(static_cast<const char*>(p)) + skip, n - skip};
          skip = 0;
        }
      }
      ssize_t n = ::writev(fd_, iov.data(), niov);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          writing_ = true;  // the socket is full: wait for it to drain
          return;
        }
        return Abort();
      }
      // Retire the frames written whole; remember how far into the next.
      size_t left = sent_ + static_cast<size_t>(n);
      sent_ = 0;
      while (head_ < queue_.size()) {
        Out& o = queue_[head_];
        size_t size = o.hdr_len + o.payload->size();
        if (left < size) {
          sent_ = left;
          break;
        }
        left -= size;
        if (o.hdr_len != 0) impl_.metrics.Add(loop_, impl_.m.frames_out);
        o.payload.reset();
        ++head_;
      }
    }
    queue_.clear();
    head_ = 0;
    if (queue_.capacity() > 64) queue_.shrink_to_fit();
    if (state_ == State::kClosing && close_sent_) ::shutdown(fd_, SHUT_WR);
  }

  void SendClose(uint16_t code, std::string_view reason) {
    state_ = State::kClosing;
    std::string body;
    body.push_back(static_cast<char>(code >> 8));
    body.push_back(static_cast<char>(code & 0xff));
    body.append(reason.substr(0, 123));
    close_sent_ = true;
    // Enqueue bypasses the kOpen check of Send on purpose.
    Out o{std::make_shared<const std::string>(std::move(body)), {}, 2};
    o.hdr[0] = 0x80 | kOpClose;
    o.hdr[1] = static_cast<uint8_t>(o.payload->size());
    queue_.push_back(std::move(o));
    impl_.loops.at(loop_).wheel().Schedule(this, impl_.loops.at(loop_).now_ms() + kCloseLingerMs);
    Flush();
  }

  // Reads what has arrived. Edge-triggered: a short read means the socket is
  // empty, unless the peer has shut down (`to_end`): then read to EOF.
  void OnReadable(bool to_end) {
    std::vector<char>& scratch = impl_.per_loop[loop_].scratch;
    for (;;) {
      ssize_t r = ::read(fd_, scratch.data(), scratch.size());
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (r <= 0) return Finish(close_sent_ ? close_code_ : 1006);  // EOF or reset
      size_t n = static_cast<size_t>(r);
      impl_.metrics.Add(loop_, impl_.m.bytes_in, r);
      if (pending_.empty()) {
        Consume(scratch.data(), n);
      } else {
        pending_.append(scratch.data(), n);
        std::string buf;
        buf.swap(pending_);
        Consume(buf.data(), buf.size());
      }
      if (state_ == State::kClosed || aborting_) return;
      if (n < scratch.size() && !to_end) return;
    }
  }

  // Parses and handles the frames in [p, p+n); keeps an incomplete tail.
  void Consume(char* p, size_t n) {
    if (discard_) return;  // after a protocol error the rest is noise
    size_t pos = 0;
    while (pos < n && state_ != State::kClosed && !aborting_) {
      size_t avail = n - pos;
      if (avail < 2) break;
      auto* b = reinterpret_cast<uint8_t*>(p + pos);
      bool fin = b[0] & 0x80;
      uint8_t opcode = b[0] & 0x0f;
      if (b[0] & 0x70) return ProtocolError(1002, "reserved bits set");
      if (!(b[1] & 0x80)) return ProtocolError(1002, "client frames must be masked");
      uint64_t len = b[1] & 0x7f;
      size_t hdr = 2;
      if (len == 126) {
        if (avail < 4) break;
        len = (uint64_t{b[2]} << 8) | b[3];
        hdr = 4;
      } else if (len == 127) {
        if (avail < 10) break;
        len = 0;
        for (int i = 0; i < 8; ++i) len = (len << 8) | b[2 + i];
        hdr = 10;
      }
      bool control = opcode & 0x8;
      if (control && (!fin || len > 125)) return ProtocolError(1002, "bad control frame");
      if (!control && len + message_.size() > max_message_) {
        return ProtocolError(1009, "message too big");
      }
      if (avail < hdr + 4 + len) break;
      uint8_t mask[4];
      std::memcpy(mask, p + pos + hdr, 4);
      char* payload = p + pos + hdr + 4;
      Unmask(payload, static_cast<size_t>(len), mask);
      pos += hdr + 4 + static_cast<size_t>(len);
      OnFrame(fin, opcode, std::string_view(payload, static_cast<size_t>(len)));
    }
    if (pos < n && state_ != State::kClosed && !aborting_ && !discard_) pending_.assign(p + pos, n - pos);
  }

  void OnFrame(bool fin, uint8_t opcode, std::string_view payload) {
    impl_.metrics.Add(loop_, impl_.m.frames_in);
    switch (opcode) {
      case kOpText:
      case kOpBinary:
        if (message_op_ != 0) return ProtocolError(1002, "new message inside a fragmented one");
        if (state_ != State::kOpen) return;  // closing: ignore data
        if (fin) return Deliver(opcode, payload);
        message_op_ = opcode;
        message_.assign(payload);
        return;
      case kOpCont:
        if (message_op_ == 0) return ProtocolError(1002, "continuation without a message");
        message_.append(payload);
        if (fin) {
          std::string m;
          m.swap(message_);
          uint8_t op = message_op_;
          message_op_ = 0;
          if (state_ == State::kOpen) Deliver(op, m);
        }
        return;
      case kOpPing:
        if (state_ != State::kOpen) return;
        app_->OnOtherFrame(false);
        if (state_ == State::kOpen) Enqueue(kOpPong, std::make_shared<const std::string>(payload));
        return;
      case kOpPong:
        if (state_ == State::kOpen) app_->OnOtherFrame(false);
        return;
      case kOpClose: {
        uint16_t code = 1005;  // no status received
        if (payload.size() >= 2) {
          code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]));
        }
        if (!close_sent_) {
          close_code_ = code;
          SendClose(code == 1005 ? 1000 : code, "");  // echo, then the peer closes TCP
          return;
        }
        // Our close was answered.
        return Finish(close_code_);
      }
      default:
        return ProtocolError(1002, "unknown opcode");
    }
  }

  void Deliver(uint8_t opcode, std::string_view payload) {
    if (opcode == kOpText) {
      app_->OnText(payload);
    } else {
      app_->OnOtherFrame(true);
    }
  }

  void ProtocolError(uint16_t code, std::string_view why) {
    discard_ = true;
    pending_.clear();
    message_.clear();
    message_op_ = 0;
    if (state_ != State::kOpen) return Abort();
    close_code_ = code;
    SendClose(code, why);
  }

  // The connection is over: exactly once, on the loop.
  void Finish(uint16_t code) {
    if (state_ == State::kClosed) return;
    State was = state_;
    state_ = State::kClosed;
    impl_.loops.at(loop_).wheel().Cancel(this);
    if (fd_ >= 0) {
      ::close(fd_);  // leaves the Poller's set too
      fd_ = -1;
    }
    boost::system::error_code ec;
    sock_.close(ec);
    if (registered_) {
      impl_.per_loop[loop_].sessions.erase(this);
      impl_.server_connections(-1);
      impl_.metrics.Add(loop_, impl_.m.ws_closed);
      impl_.metrics.Add(loop_, impl_.m.ws_open, -1);
    }
    if (app_ && was != State::kNew) app_->OnClosed(code);
    // app_ lives until this object dies: later callbacks hold lifetime().
    queue_.clear();
    head_ = 0;
    std::string().swap(pending_);
    std::string().swap(message_);
    // Events of this batch may still name us: die after it.
    if (self_) impl_.per_loop[loop_].poller->Defer(std::move(self_));
  }

  Server::Impl& impl_;
  size_t loop_;
  tcp::socket sock_;  // until the upgrade; then fd_
  int fd_ = -1;
  std::shared_ptr<WsConn> self_;  // while the Poller may name us
  std::string remote_;
  std::unique_ptr<WsSession> app_;
  std::vector<Out> queue_;
  size_t head_ = 0;
  size_t sent_ = 0;      // bytes of queue_[head_] already written
  std::string pending_;  // an incomplete frame
  std::string message_;  // a fragmented message being assembled
  size_t max_message_ = 64 * 1024;
  State state_ = State::kNew;
  uint16_t close_code_ = 1006;
  uint8_t message_op_ = 0;
  bool writing_ = false;
  bool flush_scheduled_ = false;
  bool close_sent_ = false;
  bool aborting_ = false;
  bool registered_ = false;
  bool discard_ = false;

  friend class Server;
  friend struct Server::Impl;
};

void Server::Impl::StartWebSocket(size_t loop, tcp::socket socket, http::request<http::string_body> req,
                                  Request app_req, std::string leftover) {
  auto s = std::make_shared<WsConn>(*this, loop, std::move(socket), app_req.remote);
  s->Start(req, app_req, std::move(leftover));
}

void Server::Impl::FlushDirty(size_t loop) {
  PerLoop& pl = per_loop[loop];
  pl.flush_posted = false;
  std::vector<std::shared_ptr<WsConn>> dirty;
  dirty.swap(pl.dirty);
  for (auto& c : dirty) {
    c->flush_scheduled_ = false;
    c->Flush();
  }
  dirty.clear();
  if (pl.dirty.empty()) dirty.swap(pl.dirty);  // keep the capacity
}

void Server::Impl::ReleaseSessions() {
  for (auto& pl : per_loop) {
    std::vector<WsConn*> all(pl.sessions.begin(), pl.sessions.end());
    pl.sessions.clear();
    for (WsConn* s : all) s->Release();
  }
}

void Server::Impl::server_connections(int64_t d) {
  server.ws_connections_.fetch_add(d, std::memory_order_relaxed);
}

void Server::Stop() {
  if (impl_->stopping.exchange(true)) return;
  for (size_t i = 0; i < impl_->loops.size(); ++i) {
    impl_->loops.Post(i, [impl = impl_.get(), i] {
      auto& pl = impl->per_loop[i];
      boost::system::error_code ec;
      if (pl.acceptor) pl.acceptor->close(ec);
      if (pl.backoff) pl.backoff->cancel();
      std::vector<WsConn*> all(pl.sessions.begin(), pl.sessions.end());
      for (WsConn* s : all) s->Close(1001, "server shutting down");
    });
  }
}

}  // namespace onlined::net
