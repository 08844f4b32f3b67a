// WebSocket sessions: one Beast stream per connection, a bounded write queue
// of shared payloads, and the application's WsSession on top.
#include <spdlog/spdlog.h>

#include "net/server_impl.h"

namespace onlined::net {

class WebSocketSession : public WsConnection, public std::enable_shared_from_this<WebSocketSession> {
 public:
  WebSocketSession(Server::Impl& impl, size_t loop, tcp::socket socket, std::string remote)
      : impl_(impl), loop_(loop), ws_(std::move(socket)), remote_(std::move(remote)) {}

  // Decides on the upgrade, then completes the handshake or refuses it.
  void Start(http::request<http::string_body> req, const Request& app_req) {
    auto& srv = impl_.server;
    int64_t max = impl_.max_connections.load(std::memory_order_relaxed);
    if (impl_.stopping.load() || (max > 0 && srv.connections() >= max)) {
      Response r;
      r.status = 503;
      r.headers.emplace_back("Retry-After", std::to_string((impl_.opts.retry_after_ms + 999) / 1000));
      r.body = R"({"error":{"code":"overloaded","message":"server is at its connection limit","retry_after_ms":)" +
               std::to_string(impl_.opts.retry_after_ms) + "}}";
      return Refuse(std::move(r), req);
    }
    WsAcceptor::Decision d = impl_.ws.Upgrade(app_req, *this);
    if (!d.session) return Refuse(std::move(d.refusal), req);
    app_ = std::move(d.session);

    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(5);  // also bounds the close handshake
    t.idle_timeout = websocket::stream_base::none();  // liveness is the app's heartbeat
    t.keep_alive_pings = false;
    ws_.set_option(t);
    ws_.read_message_max(impl_.max_frame_bytes.load(std::memory_order_relaxed));
    ws_.auto_fragment(false);
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, "onlined"); }));
    ws_.control_callback([this](websocket::frame_type kind, std::string_view) {
      if (kind != websocket::frame_type::close && app_) {
        impl_.metrics.Add(loop_, impl_.m.frames_in);
        app_->OnOtherFrame(false);
      }
    });
    ws_.async_accept(req, [self = shared_from_this()](beast::error_code ec) { self->OnAccept(ec); });
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
    queue_.push_back(std::move(text));
    if (!writing_) DoWrite();
    return true;
  }

  void Close(uint16_t code, std::string_view reason) override {
    if (state_ != State::kOpen) return;
    state_ = State::kClosing;
    close_code_ = code;
    close_reason_ = websocket::close_reason(static_cast<websocket::close_code>(code), reason.substr(0, 120));
    if (!writing_) DoClose();
  }

  void Abort() override {
    if (state_ == State::kClosed || aborted_) return;
    aborted_ = true;
    beast::error_code ec;
    ws_.next_layer().shutdown(tcp::socket::shutdown_both, ec);
    ws_.next_layer().close(ec);
  }

  size_t loop() const override { return loop_; }
  const std::string& remote() const override { return remote_; }
  std::weak_ptr<void> lifetime() override { return weak_from_this(); }

 private:
  enum class State { kHandshake, kOpen, kClosing, kClosed };

  void Refuse(Response r, const http::request<http::string_body>& req) {
    impl_.metrics.Add(loop_, impl_.m.ws_refused);
    state_ = State::kClosed;
    auto res = std::make_shared<http::response<http::string_body>>(
        ToBeastResponse(std::move(r), req.version(), false));
    http::async_write(ws_.next_layer(), *res, [self = shared_from_this(), res](beast::error_code, size_t) {
      beast::error_code ec;
      self->ws_.next_layer().shutdown(tcp::socket::shutdown_send, ec);
      self->ws_.next_layer().close(ec);
    });
  }

  void OnAccept(beast::error_code ec) {
    if (ec) {
      state_ = State::kClosed;
      app_.reset();  // never opened: the app saw no OnOpen, gets no OnClosed
      return;
    }
    state_ = State::kOpen;
    impl_.per_loop[loop_].sessions.insert(this);
    impl_.server_connections(+1);
    impl_.metrics.Add(loop_, impl_.m.ws_accepted);
    impl_.metrics.Add(loop_, impl_.m.ws_open, 1);
    app_->OnOpen();
    DoRead();
  }

  void DoRead() {
    ws_.async_read(buf_, [self = shared_from_this()](beast::error_code ec, size_t n) { self->OnRead(ec, n); });
  }

  void OnRead(beast::error_code ec, size_t n) {
    if (ec) return Finish(ec);
    impl_.metrics.Add(loop_, impl_.m.frames_in);
    impl_.metrics.Add(loop_, impl_.m.bytes_in, static_cast<int64_t>(n));
    if (ws_.got_text()) {
      auto d = buf_.data();
      app_->OnText(std::string_view(static_cast<const char*>(d.data()), d.size()));
    } else {
      app_->OnOtherFrame(true);
    }
    buf_.consume(buf_.size());
    if (buf_.capacity() > 4096) buf_.shrink_to_fit();  // idle connections stay small
    if (state_ == State::kClosed) return;
    DoRead();
  }

  void DoWrite() {
    writing_ = true;
    ws_.text(true);
    ws_.async_write(asio::buffer(*queue_[head_]),
                    [self = shared_from_this()](beast::error_code ec, size_t) { self->OnWrite(ec); });
  }

  void OnWrite(beast::error_code ec) {
    writing_ = false;
    queue_[head_].reset();
    if (++head_ == queue_.size()) {
      queue_.clear();
      head_ = 0;
    }
    if (ec) return Abort();
    impl_.metrics.Add(loop_, impl_.m.frames_out);
    if (head_ < queue_.size()) return DoWrite();
    if (state_ == State::kClosing) DoClose();
  }

  void DoClose() {
    if (closing_sent_) return;
    closing_sent_ = true;
    ws_.async_close(close_reason_, [self = shared_from_this()](beast::error_code ec) {
      if (ec) self->Abort();
      // The pending read completes with `closed` and calls Finish.
    });
  }

  // The read loop ended: the connection is over.
  void Finish(beast::error_code ec) {
    if (state_ == State::kClosed) return;
    bool was_open = state_ == State::kOpen || state_ == State::kClosing;
    state_ = State::kClosed;
    uint16_t code = close_code_;
    if (ec == websocket::error::closed) {
      if (!closing_sent_) code = ws_.reason().code;
    } else if (ec == websocket::error::message_too_big) {
      code = 1009;
    }
    if (ec == websocket::error::message_too_big || ec == websocket::error::closed) {
      // Beast has answered (1009) or completed the close handshake.
    } else if (!aborted_) {
      beast::error_code ignore;
      ws_.next_layer().close(ignore);
    }
    if (was_open) {
      impl_.per_loop[loop_].sessions.erase(this);
      impl_.server_connections(-1);
      impl_.metrics.Add(loop_, impl_.m.ws_closed);
      impl_.metrics.Add(loop_, impl_.m.ws_open, -1);
      if (app_) app_->OnClosed(code);
    }
    // app_ lives on until this object dies: callbacks that come back later
    // hold lifetime() and may still reach it.
    queue_.clear();
    head_ = 0;
  }

  Server::Impl& impl_;
  size_t loop_;
  websocket::stream<tcp::socket> ws_;
  beast::flat_buffer buf_;
  std::string remote_;
  std::unique_ptr<WsSession> app_;
  std::vector<std::shared_ptr<const std::string>> queue_;
  size_t head_ = 0;
  websocket::close_reason close_reason_;
  State state_ = State::kHandshake;
  uint16_t close_code_ = 1006;
  bool writing_ = false;
  bool closing_sent_ = false;
  bool aborted_ = false;

  friend struct Server::Impl;
  friend class Server;
};

void Server::Impl::StartWebSocket(size_t loop, tcp::socket socket, http::request<http::string_body> req,
                                  Request app_req) {
  auto s = std::make_shared<WebSocketSession>(*this, loop, std::move(socket), app_req.remote);
  s->Start(std::move(req), app_req);
}

void Server::Impl::server_connections(int64_t d) {
  server.ws_connections_.fetch_add(d, std::memory_order_relaxed);
}

void Server::Stop() {
  if (impl_->stopping.exchange(true)) return;
  for (size_t i = 0; i < impl_->loops.size(); ++i) {
    impl_->loops.Post(i, [impl = impl_.get(), i] {
      auto& pl = impl->per_loop[i];
      beast::error_code ec;
      if (pl.acceptor) pl.acceptor->close(ec);
      if (pl.backoff) pl.backoff->cancel();
      std::vector<WebSocketSession*> all(pl.sessions.begin(), pl.sessions.end());
      for (WebSocketSession* s : all) s->Close(1001, "server shutting down");
    });
  }
}

}  // namespace onlined::net
