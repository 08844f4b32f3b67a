#include "api/connect.h"

#include <spdlog/spdlog.h>

#include <atomic>

#include "base/clock.h"
#include "proto/frames.h"

namespace onlined::api {

namespace {

constexpr uint16_t kClosePolicy = 1008;
constexpr int kMaxRefusedFrames = 50;  // then the connection is cut

std::shared_ptr<const std::string> Share(std::string s) {
  return std::make_shared<const std::string>(std::move(s));
}

const std::shared_ptr<const std::string>& PongPayload() {
  static const auto p = std::make_shared<const std::string>(proto::kPongFrame);
  return p;
}

std::string NewSessionId(size_t loop) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t boot = static_cast<uint64_t>(base::WallMs());
  char buf[48];
  snprintf(buf, sizeof buf, "s%llx-%zu-%llx", static_cast<unsigned long long>(boot), loop,
           static_cast<unsigned long long>(counter.fetch_add(1, std::memory_order_relaxed)));
  return buf;
}

// One client connection (user, manager or server role) after the upgrade.
// Lives on its connection's loop; the net layer owns it. Its timer is the
// hello deadline until welcome, then the heartbeat deadline, checked lazily:
// a frame only records its time, the wheel re-arms on expiry.
class ClientSession final : public net::WsSession, public presence::Subscriber, public base::TimerEntry {
 public:
  ClientSession(Context& ctx, net::WsConnection& conn)
      : ctx_(ctx), conn_(conn), loop_(ctx.loops.at(conn.loop())), settings_(ctx.settings()) {}

  ~ClientSession() override { loop_.wheel().Cancel(this); }

  void OnOpen() override {
    last_frame_ = loop_.now_ms();
    loop_.wheel().Schedule(this, last_frame_ + settings_->hello_timeout_ms);
  }

  void OnText(std::string_view text) override {
    if (closing_) return;
    Touch();
    if (phase_ == Phase::kLive && proto::IsCanonicalPing(text)) {
      conn_.Send(PongPayload());  // the heartbeat: no parse, no allocation
      return;
    }
    proto::ClientFrame f;
    proto::FrameError err;
    if (!proto::ParseClientFrame(text, f, err)) {
      if (phase_ != Phase::kLive) return Refuse(err.code, err.message, true);
      return Refuse(err.code, err.message, false);
    }
    switch (phase_) {
      case Phase::kHello:
        if (f.type != proto::FrameType::kHello) {
          return Refuse("hello_required", "the first frame must be hello", true);
        }
        return OnHello(f);
      case Phase::kAuthing:
        return Refuse("hello_required", "wait for welcome before sending frames", false);
      case Phase::kLive:
        return OnLiveFrame(f);
      case Phase::kClosed:
        return;
    }
  }

  void OnOtherFrame(bool binary) override {
    if (closing_) return;
    Touch();
    if (binary) Refuse("bad_frame", "binary frames are not part of the contract", phase_ != Phase::kLive);
  }

  void OnClosed(uint16_t code) override {
    if (code == 1009) ctx_.CountRefusal(conn_.loop(), "frame_too_large");
    Phase was = phase_;
    phase_ = Phase::kClosed;
    loop_.wheel().Cancel(this);
    if (sub_handle_ != 0) {
      ctx_.presence.Unsubscribe(sub_handle_);
      sub_handle_ = 0;
    }
    if (cell_ && (was == Phase::kLive || was == Phase::kAuthing)) {
      // Only users get a cell, and only once their hello was accepted.
      // Open was posted before; Close follows it on the same shard (FIFO).
      ctx_.presence.Close(entry_idx_, claims_.subject, std::move(cell_), timed_out_);
    }
  }

  // presence::Subscriber
  void OnPresenceEvent(const presence::Payload& event) override {
    if (phase_ == Phase::kLive) conn_.Send(event);
  }

  void OnSubscribed(std::vector<presence::Payload> replay, bool reset, uint64_t last_seq) override {
    if (phase_ != Phase::kAuthing || closing_) return;
    GoLive(last_seq);
    if (reset) {
      conn_.Send(Share(proto::EncodePresenceReset(last_seq)));
      return;
    }
    for (auto& p : replay) {
      if (!conn_.Send(std::move(p))) return;
    }
  }

  // base::TimerEntry: the hello or heartbeat deadline.
  void OnTimer(int64_t now) override {
    if (closing_) return;
    if (phase_ == Phase::kHello || phase_ == Phase::kAuthing) {
      return Refuse("hello_timeout", "no hello within the time allowed", true);
    }
    if (phase_ != Phase::kLive) return;
    int64_t deadline = last_frame_ + settings_->heartbeat_timeout_ms;
    if (now < deadline) {
      loop_.wheel().Schedule(this, deadline);
      return;
    }
    // Silent past the timeout: the peer is gone. No close handshake with a
    // peer that does not answer.
    timed_out_ = true;
    conn_.Abort();
  }

 private:
  enum class Phase { kHello, kAuthing, kLive, kClosed };

  void Touch() {
    last_frame_ = loop_.now_ms();
    if (cell_) cell_->last_frame_ms.store(base::WallMs(), std::memory_order_relaxed);
  }

  // Sends an error frame; with `close`, ends the connection after it.
  void Refuse(std::string_view code, std::string_view message, bool close) {
    ctx_.CountRefusal(conn_.loop(), code);
    ctx_.metrics.Add(conn_.loop(), ctx_.m_frames_refused);
    if (closing_ || phase_ == Phase::kClosed) return;
    conn_.Send(Share(proto::EncodeError(code, message)));
    if (close || ++refused_ > kMaxRefusedFrames) {
      if (!close) ctx_.CountRefusal(conn_.loop(), "too_many_errors");
      conn_.Close(kClosePolicy, code);
      closing_ = true;  // no more frames are looked at; OnClosed follows
    }
  }

  void OnHello(const proto::ClientFrame& f) {
    std::shared_ptr<const ChannelTable> table;
    const ChannelEntry* entry = nullptr;
    auth::TokenError err;
    if (!ctx_.Authenticate(f.token, table, claims_, entry, err)) {
      if (err.code.empty()) err = {"unknown_channel", "token names an unknown channel"};
      return Refuse(err.code, err.message, true);
    }
    entry_idx_ = entry->idx;
    phase_ = Phase::kAuthing;
    session_id_ = NewSessionId(conn_.loop());
    std::weak_ptr<void> alive = conn_.lifetime();
    if (claims_.role == auth::Role::kUser) {
      cell_ = std::make_shared<presence::SessionCell>();
      cell_->last_frame_ms.store(base::WallMs(), std::memory_order_relaxed);
      ctx_.presence.Open(entry_idx_, claims_.subject, cell_, [this, alive] {
        if (alive.expired() || phase_ != Phase::kAuthing || closing_) return;
        GoLive(std::nullopt);
      });
      return;
    }
    // Managers (and server-role tools) get the channel's presence stream.
    std::optional<uint64_t> after;
    if (f.presence_after) after = static_cast<uint64_t>(*f.presence_after);
    sub_handle_ = ctx_.presence.Subscribe(entry_idx_, this, after);
  }

  void GoLive(std::optional<uint64_t> event_seq) {
    phase_ = Phase::kLive;
    conn_.Send(Share(proto::EncodeWelcome(session_id_, settings_->heartbeat_s,
                                          settings_->heartbeat_timeout_ms, event_seq)));
    loop_.wheel().Schedule(this, last_frame_ + settings_->heartbeat_timeout_ms);
  }

  void OnLiveFrame(const proto::ClientFrame& f) {
    switch (f.type) {
      case proto::FrameType::kPing:
        conn_.Send(PongPayload());
        return;
      case proto::FrameType::kHello:
        return Refuse("already_hello", "hello was already accepted", false);
      case proto::FrameType::kState:
        if (!cell_) return Refuse("forbidden", "state is a user's frame", false);
        if (f.idle != cell_->idle.load(std::memory_order_relaxed)) {
          cell_->idle.store(f.idle, std::memory_order_relaxed);
          ctx_.presence.StateChanged(entry_idx_, claims_.subject);
        }
        return;
      case proto::FrameType::kAck:
      case proto::FrameType::kRead:
      case proto::FrameType::kSend:
        return Refuse("not_available", "messaging is not enabled on this server", false);
    }
  }

  Context& ctx_;
  net::WsConnection& conn_;
  base::Loop& loop_;
  std::shared_ptr<const LiveSettings> settings_;
  Phase phase_ = Phase::kHello;
  auth::Claims claims_;
  presence::ChannelIdx entry_idx_ = 0;
  std::string session_id_;
  std::shared_ptr<presence::SessionCell> cell_;  // users only
  uint64_t sub_handle_ = 0;                      // managers only
  int64_t last_frame_ = 0;                       // loop steady ms
  int refused_ = 0;
  bool timed_out_ = false;
  bool closing_ = false;  // a close was sent: ignore the peer from now on
};

}  // namespace

net::WsAcceptor::Decision ConnectEndpoint::Upgrade(const net::Request& req, net::WsConnection& conn) {
  Decision d;
  if (req.Path() != "/v1/connect") {
    ctx_.CountRefusal(conn.loop(), "not_found");
    d.refusal.status = 404;
    d.refusal.body = proto::EncodeHttpError("not_found", "no WebSocket endpoint at this path");
    return d;
  }
  if (!ctx_.ready.load(std::memory_order_relaxed)) {
    ctx_.CountRefusal(conn.loop(), "overloaded");
    auto s = ctx_.settings();
    d.refusal.status = 503;
    d.refusal.headers.emplace_back("Retry-After", std::to_string((s->retry_after_ms + 999) / 1000));
    d.refusal.body = proto::EncodeHttpError("overloaded", "server is not ready");
    return d;
  }
  d.session = std::make_unique<ClientSession>(ctx_, conn);
  return d;
}

}  // namespace onlined::api
