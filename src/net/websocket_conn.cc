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
// and one write, no epoll_ctl and no async operation. With io_uring (setting
// io_uring, net/batch_io.h) even those are shared: the Poller reads a
// wakeup's ready connections in one system call and FlushDirty writes the
// loop's dirty ones in another.
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

#include <algorithm>
#include <array>
#include <cstring>
#include <random>
#include <span>

#include "base/clock.h"
#include "base/log_limit.h"
#include "base/thread_checker.h"
#include "net/batch_io.h"
#include "net/poller.h"
#include "net/retired.h"
#include "net/server_impl.h"
#include "net/ws_reader.h"

namespace onlined::net {

namespace {

constexpr uint8_t kOpText = 0x1, kOpClose = 0x8, kOpPong = 0xA;
constexpr int64_t kCloseLingerMs = 2000;  // wait this long for the peer's close

// Ten lines per 10 s for slow consumers, whatever their number.
base::LogLimit& SlowConsumerLog() {
  static base::LogLimit limit(10, 10000);
  return limit;
}

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
  return ResponseHead(r, version, false) + r.body;
}

}  // namespace

class WsConn : public WsConnection,
               public base::TimerEntry,
               public Poller::Handler,
               private WsReader::Sink,
               public std::enable_shared_from_this<WsConn> {
 public:
  WsConn(Server::Impl& impl, size_t loop, tcp::socket socket, std::string remote)
      : impl_(impl),
        loop_(loop),
        sock_(std::move(socket)),
        remote_(std::move(remote)),
        reader_(impl.max_frame_bytes.load(std::memory_order_relaxed)) {}

  ~WsConn() override {
    if (fd_ >= 0) ::close(fd_);
  }

  void Start(Admission::Slot slot, const http::request<http::string_body>& req,
             const Request& app_req, std::string leftover) {
    slot_ = std::move(slot);
    if (impl_.stopping.load()) {
      Response r = ErrorResponse(proto::Error::kOverloaded, "server is shutting down");
      r.headers.emplace_back("Retry-After",
                             std::to_string((impl_.retry_after_ms.load() + 999) / 1000));
      return Refuse(std::move(r), req.version());
    }
    std::string_view key = req[http::field::sec_websocket_key];
    if (req[http::field::sec_websocket_version] != "13" || !ValidWebSocketKey(key)) {
      Response r = ErrorResponse(proto::Error::kBadRequest,
                                 "WebSocket version 13 with a valid Sec-WebSocket-Key is required");
      r.headers.emplace_back("Sec-WebSocket-Version", "13");
      return Refuse(std::move(r), req.version());
    }
    if (!impl_.admission.TakeHandshake(base::SteadyMs())) {
      // Over the handshake rate: a browser cannot read an HTTP refusal of an
      // upgrade, so it gets the upgrade and at once a close 1013 (try again
      // later) whose reason carries the wait.
      impl_.metrics.Add(loop_, impl_.m.refused_handshake);
      impl_.metrics.Add(loop_, impl_.m.ws_refused);
      std::string reason = R"({"code":")" + std::string(proto::Code(proto::Error::kOverloaded)) +
                           R"(","retry_after_ms":)" + std::to_string(impl_.retry_after_ms.load()) +
                           "}";
      std::string bytes =
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Server: onlined\r\nSec-WebSocket-Accept: " +
          AcceptKey(key) + "\r\n\r\n";
      bytes.push_back(static_cast<char>(0x80 | kOpClose));
      bytes.push_back(static_cast<char>(2 + reason.size()));
      bytes.push_back(static_cast<char>(1013 >> 8));
      bytes.push_back(static_cast<char>(1013 & 0xff));
      bytes += reason;
      WriteAndLinger(std::move(sock_), std::move(bytes), std::move(slot_));
      return;
    }
    WsAcceptor::Decision d = impl_.ws.Upgrade(app_req, *this);
    if (!d.session) return Refuse(std::move(d.refusal), req.version());
    app_ = std::move(d.session);

    auto reply = std::make_shared<std::string>(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Server: onlined\r\nSec-WebSocket-Accept: " +
        AcceptKey(key) + "\r\n\r\n");
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
    impl_.metrics.Add(loop_, impl_.m.ws_accepted);
    impl_.metrics.Add(loop_, impl_.m.ws_open, 1);
    registered_ = true;
    // The handshake goes out first, as a raw frame of the queue.
    queue_.push_back(Out{std::move(reply), {}, 0});
    Flush();
    app_->OnOpen();
    if (!leftover.empty()) Consume(leftover.data(), leftover.size());
  }

  bool Send(std::shared_ptr<const std::string> text) override {
    thread_.Check();
    if (state_ != State::kOpen) return false;
    return Enqueue(kOpText, std::move(text));
  }

  size_t send_room() const override {
    thread_.Check();
    size_t cap = QueueCap();
    size_t queued = queue_.size() - head_;
    return queued >= cap ? 0 : cap - queued;
  }

  void UseDeskQueue() override {
    thread_.Check();
    desk_queue_ = true;
  }

  void Close(uint16_t code, std::string_view reason) override {
    thread_.Check();
    if (state_ != State::kOpen) return;
    close_code_ = code;
    SendClose(code, reason);
  }

  void Abort() override {
    thread_.Check();
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
    thread_.Check();
    if (state_ == State::kClosing) Finish(close_code_);
  }

  // Poller::Handler: the socket became readable and/or writable; `got` is
  // what the Poller's batched read brought (or Poller::kNotRead).
  void OnEvents(uint32_t ev, char* data, int32_t got) override {
    thread_.Check();
    if (state_ == State::kClosed || aborting_) return;
    if ((ev & EPOLLOUT) && writing_) {
      writing_ = false;
      Flush();
      if (state_ == State::kClosed || aborting_) return;
    }
    constexpr uint32_t kEnd = EPOLLRDHUP | EPOLLHUP | EPOLLERR;
    if ((ev & (EPOLLIN | kEnd)) == 0) return;
    const bool to_end = (ev & kEnd) != 0;
    if (read_posted_) {  // the posted read takes it, within its own budget
      read_to_end_ = read_to_end_ || to_end;
      return;
    }
    if (got != Poller::kNotRead) impl_.metrics.Add(loop_, impl_.m.io_batched_read);
    if (got > 0) {
      auto n = static_cast<size_t>(got);
      impl_.metrics.Add(loop_, impl_.m.bytes_in, got);
      Consume(data, n);
      if (state_ == State::kClosed || aborting_) return;
      if (n < Poller::kSlice && !to_end) return;  // a short read: the socket is empty
    } else if (got == -EAGAIN || got == -EWOULDBLOCK) {
      if (!to_end) return;
    } else if (got == 0 || got == BatchIo::kMayHaveRun) {
      // The end of the stream, or a read the failing ring may have made
      // (its bytes lost: the stream cannot go on).
      return Finish(close_sent_ ? close_code_ : 1006);
    }
    // Not read (kNotRead), or an error, which may be the ring's rather than
    // the socket's: the connection's own read() says which (a reset socket
    // reports its error, then the end).
    OnReadable(to_end);
  }

  int batch_read_fd() const override {
    return state_ == State::kClosed || aborting_ || read_posted_ ? -1 : fd_;
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

  // An upgrade refused with an HTTP answer; the socket's slot goes with it.
  void Refuse(Response r, unsigned version) {
    impl_.metrics.Add(loop_, impl_.m.ws_refused);
    WriteAndLinger(std::move(sock_), Serialize(std::move(r), version), std::move(slot_));
  }

  size_t QueueCap() const {
    return (desk_queue_ ? impl_.desk_send_queue_max : impl_.send_queue_max)
        .load(std::memory_order_relaxed);
  }

  // Queues one frame. Every frame counts against the cap (send_queue_max,
  // a desk's desk_send_queue_max; text and pongs alike): past it the peer
  // is cut as a slow consumer, and false returned.
  bool Enqueue(uint8_t opcode, std::shared_ptr<const std::string> payload) {
    if (queue_.size() - head_ >= QueueCap()) {
      // A peer that does not read cannot take a close frame either.
      impl_.metrics.Add(loop_, impl_.m.ws_slow);
      uint64_t dropped = 0;
      if (!aborting_ && SlowConsumerLog().Allow(base::SteadyMs(), &dropped)) {
        if (dropped > 0) {
          spdlog::info("ws {}: send queue full, cutting slow consumer ({} more not logged)",
                       remote_, dropped);
        } else {
          spdlog::info("ws {}: send queue full, cutting slow consumer", remote_);
        }
      }
      close_code_ = 1008;
      Abort();
      return false;
    }
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
      for (int i = 0; i < 8; ++i)
        o.hdr[2 + i] = static_cast<uint8_t>(static_cast<uint64_t>(n) >> (56 - 8 * i));
      o.hdr_len = 10;
    }
    queue_.push_back(std::move(o));
    if (!writing_) ScheduleFlush();
    return true;
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
      int niov = GatherOut(iov);
      ssize_t n = ::writev(fd_, iov.data(), niov);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          writing_ = true;  // the socket is full: wait for it to drain
          return;
        }
        return Abort();
      }
      Retire(static_cast<size_t>(n));
    }
    Drained();
  }

  // The iovecs of what is queued, from the first byte not yet written, at
  // most iov.size() / 2 frames; returns how many were filled.
  int GatherOut(std::span<iovec> iov) const {
    int niov = 0;
    size_t skip = sent_;
    for (size_t i = head_; i < queue_.size() && 2 * (i - head_) + 2 <= iov.size(); ++i) {
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
    return niov;
  }

  // `n` more bytes went out: retire the frames written whole, remember how
  // far into the next.
  void Retire(size_t n) {
    size_t left = sent_ + n;
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
    // A queue that never empties (a peer reading just slower than it is
    // written to) would otherwise keep every frame's entry it ever held.
    DropRetired(queue_, head_);
  }

  // Everything queued is written.
  void Drained() {
    queue_.clear();
    head_ = 0;
    if (queue_.capacity() > 64) queue_.shrink_to_fit();
    if (state_ == State::kClosing && close_sent_) ::shutdown(fd_, SHUT_WR);
  }

  // The loop's batched flush (Server::Impl::FlushDirty): whether this
  // connection has a few frames to write (they fit `slots` iovecs) and may
  // write them now.
  bool WantsBatchedWrite(size_t slots) const {
    return !writing_ && state_ != State::kClosed && !aborting_ && head_ < queue_.size() &&
           2 * (queue_.size() - head_) <= slots;
  }

  // The batched write of what GatherOut gave returned `res` (bytes or
  // -errno; BatchIo::kNotRun: it did not run, kMayHaveRun: the ring failed
  // with it perhaps made); the rest as Flush.
  void AfterBatchedWrite(int32_t res) {
    if (state_ == State::kClosed || aborting_) return;
    if (res >= 0) {
      Retire(static_cast<size_t>(res));
    } else if (res == -EAGAIN || res == -EWOULDBLOCK) {
      writing_ = true;  // the socket is full: wait for it to drain
      return;
    } else if (res == BatchIo::kMayHaveRun) {
      return Abort();  // written or not: the stream's bytes are unknown
    }
    // What did not fit in the batch's write; or nothing written (not run, or
    // an error that may be the ring's rather than the socket's: writev says).
    Flush();
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
    // Past the Poller's slices: those of connections of this wakeup not yet
    // run still hold what was read for them.
    std::span<char> buf = std::span(impl_.per_loop[loop_].scratch).subspan(Poller::kSlicesBytes);
    const size_t budget = impl_.ws_read_budget.load(std::memory_order_relaxed);
    for (size_t taken = 0;;) {
      if (taken >= budget) return YieldRead(to_end);
      const size_t want = std::min(buf.size(), budget - taken);
      ssize_t r = ::read(fd_, buf.data(), want);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (r <= 0) return Finish(close_sent_ ? close_code_ : 1006);  // EOF or reset
      size_t n = static_cast<size_t>(r);
      impl_.metrics.Add(loop_, impl_.m.bytes_in, r);
      taken += n;
      Consume(buf.data(), n);
      if (state_ == State::kClosed || aborting_) return;
      if (n < want && !to_end) return;  // a short read: the socket is empty
    }
  }

  // A peer that keeps its socket full (faster than its frames are handled)
  // does not hold the loop: the rest is read after the loop's other ready
  // work. Edge-triggered: no new event would say that bytes are left.
  // One at a time: the socket's new edges meanwhile are left to it (each
  // would otherwise read another budget's worth in the same round).
  void YieldRead(bool to_end) {
    impl_.metrics.Add(loop_, impl_.m.ws_read_yields);
    read_posted_ = true;
    read_to_end_ = to_end;
    asio::post(impl_.loops.at(loop_).io(), [self = shared_from_this()] {
      self->read_posted_ = false;
      if (self->reading()) self->OnReadable(self->read_to_end_);
    });
  }

  // Hands [p, p+n) to the frame reader; a protocol error closes with the
  // reader's code (1002, 1007, 1009).
  void Consume(char* p, size_t n) {
    if (reader_.failed()) return;  // after a protocol error the rest is noise
    if (!reader_.Feed(p, n, *this)) ProtocolError(reader_.error_code(), reader_.error_reason());
  }

  bool reading() const { return state_ != State::kClosed && !aborting_; }

  // WsReader::Sink: one complete frame or message, on the loop.
  bool OnMessage(bool text, std::string_view payload) override {
    impl_.metrics.Add(loop_, impl_.m.frames_in);
    if (state_ != State::kOpen) return reading();  // closing: ignore data
    if (text) {
      app_->OnText(payload);
    } else {
      app_->OnOtherFrame(true);
    }
    return reading();
  }

  bool OnPing(std::string_view payload) override {
    impl_.metrics.Add(loop_, impl_.m.frames_in);
    if (state_ != State::kOpen) return reading();
    app_->OnOtherFrame(false);
    if (state_ == State::kOpen) Enqueue(kOpPong, std::make_shared<const std::string>(payload));
    return reading();
  }

  bool OnPong() override {
    impl_.metrics.Add(loop_, impl_.m.frames_in);
    if (state_ == State::kOpen) app_->OnOtherFrame(false);
    return reading();
  }

  bool OnClose(uint16_t code, std::string_view) override {
    impl_.metrics.Add(loop_, impl_.m.frames_in);
    if (!close_sent_) {
      close_code_ = code;
      SendClose(code == 1005 ? 1000 : code, "");  // echo (5.5.1), then the peer closes TCP
      return reading();
    }
    // Our close was answered.
    Finish(close_code_);
    return false;
  }

  void ProtocolError(uint16_t code, std::string_view why) {
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
    slot_.Release();
    if (registered_) {
      impl_.per_loop[loop_].sessions.erase(this);
      impl_.metrics.Add(loop_, impl_.m.ws_closed);
      impl_.metrics.Add(loop_, impl_.m.ws_open, -1);
    }
    if (app_ && was != State::kNew) app_->OnClosed(code);
    // app_ lives until this object dies: later callbacks hold lifetime().
    queue_.clear();
    head_ = 0;
    reader_.Clear();
    // Events of this batch may still name us: die after it.
    if (self_) impl_.per_loop[loop_].poller->Defer(std::move(self_));
  }

  Server::Impl& impl_;
  size_t loop_;
  base::ThreadChecker thread_;  // the connection's loop: every call is made there
  tcp::socket sock_;            // until the upgrade; then fd_
  Admission::Slot slot_;        // this socket's place in the connection limits
  int fd_ = -1;
  std::shared_ptr<WsConn> self_;  // while the Poller may name us
  std::string remote_;
  std::unique_ptr<WsSession> app_;
  std::vector<Out> queue_;
  size_t head_ = 0;
  size_t sent_ = 0;  // bytes of queue_[head_] already written
  WsReader reader_;  // frames in; holds at most one incomplete frame
  State state_ = State::kNew;
  uint16_t close_code_ = 1006;
  bool writing_ = false;
  bool flush_scheduled_ = false;
  bool close_sent_ = false;
  bool aborting_ = false;
  bool registered_ = false;
  bool desk_queue_ = false;   // UseDeskQueue: the cap is desk_send_queue_max
  bool read_posted_ = false;  // YieldRead's read is waiting to run
  bool read_to_end_ = false;  // and reads to the end (the peer shut down)

  friend class Server;
  friend struct Server::Impl;
};

void Server::Impl::StartWebSocket(size_t loop, tcp::socket socket, Admission::Slot slot,
                                  http::request<http::string_body> req, Request app_req,
                                  std::string leftover) {
  auto s = std::make_shared<WsConn>(*this, loop, std::move(socket), app_req.remote);
  s->Start(std::move(slot), req, app_req, std::move(leftover));
}

void Server::Impl::FlushDirty(size_t loop) {
  PerLoop& pl = per_loop[loop];
  pl.flush_posted = false;
  std::vector<std::shared_ptr<WsConn>> dirty;
  dirty.swap(pl.dirty);
  BatchIo* bio = dirty.size() > 1 && pl.poller ? pl.poller->batch_io() : nullptr;
  if (bio == nullptr) {
    for (auto& c : dirty) {
      c->flush_scheduled_ = false;
      c->Flush();
    }
  } else {
    // One system call writes up to a batch's worth of connections.
    if (pl.out.size() < bio->capacity()) pl.out.resize(bio->capacity());
    std::vector<int32_t>& res = pl.out_res;
    if (res.size() < bio->capacity()) res.resize(bio->capacity());
    for (size_t at = 0; at < dirty.size();) {
      const size_t end = std::min(dirty.size(), at + bio->capacity());
      for (size_t i = at; i < end; ++i) {
        WsConn& c = *dirty[i];
        c.flush_scheduled_ = false;
        const size_t slot = i - at;
        res[slot] = BatchIo::kNotRun;
        PerLoop::OutSlot& o = pl.out[slot];
        if (!c.WantsBatchedWrite(o.iov.size())) continue;
        o.msg = msghdr{};
        o.msg.msg_iov = o.iov.data();
        o.msg.msg_iovlen = static_cast<size_t>(c.GatherOut(o.iov));
        bio->SendMsg(c.fd_, &o.msg, static_cast<uint32_t>(slot));
      }
      bio->Run(res.data());
      for (size_t i = at; i < end; ++i) {
        if (res[i - at] != BatchIo::kNotRun) metrics.Add(loop, m.io_batched_write);
        dirty[i]->AfterBatchedWrite(res[i - at]);
      }
      at = end;
    }
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

void Server::Stop() {
  if (impl_->stopping.exchange(true)) return;
  const int64_t spread = impl_->opts.drain_spread_ms;
  for (size_t i = 0; i < impl_->loops.size(); ++i) {
    impl_->loops.Post(i, [impl = impl_.get(), i, spread] {
      auto& pl = impl->per_loop[i];
      boost::system::error_code ec;
      if (pl.acceptor) pl.acceptor->close(ec);
      if (pl.backoff) pl.backoff->cancel();
      std::vector<WsConn*> all(pl.sessions.begin(), pl.sessions.end());
      std::minstd_rand rng(static_cast<uint32_t>(std::random_device{}()) +
                           static_cast<uint32_t>(i));
      for (WsConn* s : all) {
        if (spread <= 0) {
          s->Close(1001, "server shutting down");
          continue;
        }
        const int64_t wait = static_cast<int64_t>(rng() % static_cast<uint64_t>(spread + 1));
        s->Close(1001, R"({"code":")" + std::string(proto::Code(proto::Error::kShuttingDown)) +
                           R"(","retry_after_ms":)" + std::to_string(wait) + "}");
      }
    });
  }
}

}  // namespace onlined::net
