#include "api/connect.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <memory>

#include "api/errors.h"
#include "api/http_api.h"
#include "base/clock.h"
#include "base/token_bucket.h"
#include "chat/codec.h"
#include "chat/session_rules.h"
#include "proto/frames.h"

namespace onlined::api {

namespace {

constexpr uint16_t kClosePolicy = 1008;
constexpr uint16_t kCloseSessionExpired = 4001;
constexpr uint16_t kCloseKeyRemoved = 4002;
constexpr uint16_t kCloseSessionRevoked = 4003;
constexpr int kMaxRefusedFrames = 50;  // then the connection is cut
// A session's `state` changes reach the shard at most this often; toggles in
// between are coalesced into the last one (a user cannot flood the desks).
constexpr int64_t kStateIntervalMs = 1000;

std::shared_ptr<const std::string> Share(std::string s) {
  return std::make_shared<const std::string>(std::move(s));
}

// One pong per loop thread: sharing one across loops would make every
// heartbeat bounce the same reference count between cores.
const std::shared_ptr<const std::string>& PongPayload() {
  thread_local const auto p = std::make_shared<const std::string>(proto::kPongFrame);
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
// hello deadline until welcome, then the earliest of the heartbeat deadline
// and the token's expiry, checked lazily: a frame only records its time, the
// wheel re-arms on expiry.
class ClientSession final : public net::WsSession,
                            public presence::Subscriber,
                            public presence::MessageSink,
                            public base::TimerEntry,
                            public LiveSession {
 public:
  ClientSession(Context& ctx, net::WsConnection& conn)
      : ctx_(ctx), conn_(conn), loop_(ctx.loops.at(conn.loop())), settings_(ctx.settings()) {}

  ~ClientSession() override {
    loop_.wheel().Cancel(this);
    ctx_.sessions.Unlink(conn_.loop(), this);
  }

  // LiveSession: a reload may have removed the key that signed this
  // session's token (or its channel); a revocation may name its subject.
  void Recheck(const Sweep& sweep) override {
    if (closing_ || (phase_ != Phase::kLive && phase_ != Phase::kAuthing)) return;
    if (sweep.keys) {
      auto table = ctx_.channels.Get();
      const ChannelEntry* e = table->Find(claims_.channel);
      if (e == nullptr || !e->HasKey(claims_.key)) {
        ctx_.metrics.Add(conn_.loop(), ctx_.m_ended_key_removed);
        return End(Error::kKeyRemoved, kCloseKeyRemoved,
                   "the key that signed this session's token was removed; connect again with a "
                   "token signed by a current key");
      }
    }
    if (!sweep.subject.empty() && sweep.subject == claims_.subject &&
        sweep.channel == claims_.channel && sweep.role == auth::RoleName(claims_.role) &&
        ctx_.revocations.Revoked(claims_)) {
      ctx_.metrics.Add(conn_.loop(), ctx_.m_ended_revoked);
      return End(Error::kSessionRevoked, kCloseSessionRevoked,
                 "this session's subject was revoked");
    }
  }

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
      if (phase_ != Phase::kLive) return Refuse(FromCode(err.code), err.message, true);
      return Refuse(FromCode(err.code), err.message, false);
    }
    switch (phase_) {
      case Phase::kHello:
        if (f.type != proto::FrameType::kHello) {
          return Refuse(Error::kHelloRequired, "the first frame must be hello", true);
        }
        return OnHello(f);
      case Phase::kAuthing:
        return Refuse(Error::kHelloRequired, "wait for welcome before sending frames", false);
      case Phase::kLive:
        return OnLiveFrame(f);
      case Phase::kClosed:
        return;
    }
  }

  void OnOtherFrame(bool binary) override {
    if (closing_) return;
    Touch();
    if (binary)
      Refuse(Error::kBadFrame, "binary frames are not part of the contract",
             phase_ != Phase::kLive);
  }

  void OnClosed(uint16_t code) override {
    if (code == 1009) ctx_.CountRefusal(conn_.loop(), Error::kFrameTooLarge);
    Phase was = phase_;
    phase_ = Phase::kClosed;
    loop_.wheel().Cancel(this);
    ctx_.sessions.Unlink(conn_.loop(), this);
    if (sub_handle_ != 0) {
      ctx_.presence.Unsubscribe(sub_handle_);
      sub_handle_ = 0;
    }
    FlushReceiptsAtEnd();
    if (cell_ && (was == Phase::kLive || was == Phase::kAuthing)) {
      // Only users get a cell, and only once their hello was accepted.
      // Open was posted before; Close follows it on the same shard (FIFO).
      ctx_.presence.Close(entry_idx_, claims_.subject, std::move(cell_), timed_out_);
    }
  }

  // presence::Subscriber (managers): presence, messages, receipts.
  void OnChannelFrame(const presence::Payload& frame) override {
    if (phase_ == Phase::kLive) conn_.Send(frame);
  }

  // presence::MessageSink (users): a message of one of the user's chats.
  void OnChatMessage(const presence::Payload& frame, const std::string& chat_id,
                     int64_t seq) override {
    if (phase_ != Phase::kLive || closing_) return;
    merge_.Live(frame, chat_id, seq, [this](const presence::Payload& f) { conn_.Send(f); });
  }

  void OnSubscribed(std::vector<presence::Payload> replay, bool reset, uint64_t last_seq) override {
    if (phase_ != Phase::kAuthing || closing_) return;
    GoLive(last_seq);
    // A replay that cannot go out within the send queue's cap would cut the
    // desk as a slow consumer, and it would resume from the same number
    // again, forever. Half the room stays for the live events that follow.
    if (!reset && replay.size() > conn_.send_room() / 2) {
      reset = true;
      ctx_.metrics.Add(conn_.loop(), ctx_.m_replay_too_long);
    }
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
      return Refuse(Error::kHelloTimeout, "no hello within the time allowed", true);
    }
    if (phase_ != Phase::kLive) return;
    if (now >= ExpiresMs()) return Expire();
    if (state_dirty_ && now >= state_next_ms_) PublishState(now);
    if (receipts_ && receipts_->due_ms != 0 && now >= receipts_->due_ms) {
      receipts_->due_ms = 0;
      FlushReceipts();
    }
    int64_t deadline = last_frame_ + settings_->heartbeat_timeout_ms;
    if (now < deadline) {
      ArmTimer();
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
    // Read now, not the loop's time as of its last tick (up to a tick old,
    // more on a busy loop): the timeout counts from the frame, never before.
    last_frame_ = loop_.clock().Now();
    if (cell_) cell_->last_frame_ms.store(base::WallMs(), std::memory_order_relaxed);
  }

  // Sends an error frame (with the wait to ask for, if any); with `close`,
  // ends the connection after it (1008).
  void Refuse(Error e, std::string_view message, bool close,
              std::optional<int64_t> retry_after_ms = std::nullopt) {
    ctx_.CountRefusal(conn_.loop(), e);
    ctx_.metrics.Add(conn_.loop(), ctx_.m_frames_refused);
    if (closing_ || phase_ == Phase::kClosed) return;
    conn_.Send(Share(proto::EncodeError(Code(e), message, retry_after_ms)));
    if (close || ++refused_ > kMaxRefusedFrames) {
      if (!close) ctx_.CountRefusal(conn_.loop(), Error::kTooManyErrors);
      conn_.Close(kClosePolicy, Code(e));
      closing_ = true;  // no more frames are looked at; OnClosed follows
    }
  }

  // An error frame that keeps the connection (a store failure, overload),
  // counted like every refusal.
  void SendError(Error e, std::string_view message,
                 std::optional<int64_t> retry_after_ms = std::nullopt) {
    ctx_.CountRefusal(conn_.loop(), e);
    if (closing_ || phase_ == Phase::kClosed) return;
    conn_.Send(Share(proto::EncodeError(Code(e), message, retry_after_ms)));
  }

  void OnHello(const proto::ClientFrame& f) {
    std::shared_ptr<const ChannelTable> table;
    const ChannelEntry* entry = nullptr;
    auth::TokenError err;
    if (!ctx_.Authenticate(f.token, table, claims_, entry, err)) {
      if (err.code.empty()) err = {Code(Error::kUnknownChannel), "token names an unknown channel"};
      return Refuse(FromCode(err.code), err.message, true);
    }
    entry_idx_ = entry->idx;
    phase_ = Phase::kAuthing;
    ctx_.sessions.Link(conn_.loop(), this);
    std::weak_ptr<void> alive = conn_.lifetime();
    if (claims_.role == auth::Role::kUser) {
      cell_ = std::make_shared<presence::SessionCell>();
      cell_->last_frame_ms.store(base::WallMs(), std::memory_order_relaxed);
      cell_->loop = conn_.loop();
      cell_->sink = this;
      cell_->alive = alive;
      merge_.Start(f.resume);
      ctx_.presence.Open(entry_idx_, claims_.subject, cell_, [this, alive] {
        if (alive.expired() || phase_ != Phase::kAuthing || closing_) return;
        GoLive(std::nullopt);
        Replay();
      });
      return;
    }
    // Managers (and server-role tools) get the channel's presence stream,
    // its messages and receipts: a desk's deeper queue.
    conn_.UseDeskQueue();
    std::optional<uint64_t> after;
    if (f.presence_after) after = static_cast<uint64_t>(*f.presence_after);
    sub_handle_ = ctx_.presence.Subscribe(entry_idx_, this, after);
  }

  void GoLive(std::optional<uint64_t> event_seq) {
    phase_ = Phase::kLive;
    conn_.Send(Share(proto::EncodeWelcome(NewSessionId(conn_.loop()), settings_->heartbeat_s,
                                          settings_->heartbeat_timeout_ms, event_seq,
                                          claims_.exp * 1000)));
    ArmTimer();
  }

  // The token's exp as a deadline on this loop's steady clock (computed,
  // not kept: a session's every byte counts, times a million), against the
  // wall time the loop read with its steady time.
  int64_t ExpiresMs() const { return loop_.now_ms() + (claims_.exp * 1000 - loop_.wall_ms()); }

  // The token ran out without a refresh: the session ends (4001).
  void Expire() {
    End(Error::kSessionExpired, kCloseSessionExpired,
        "the session's token expired; connect again with a new one (or refresh before "
        "expires_at)");
  }

  // The session's authority ended: an error frame, then the close `code`
  // with the error's code as the reason.
  void End(Error e, uint16_t code, std::string_view message) {
    ctx_.CountRefusal(conn_.loop(), e);
    conn_.Send(Share(proto::EncodeError(Code(e), message)));
    conn_.Close(code, Code(e));
    closing_ = true;
  }

  // A new token for the same channel, subject and role: the session goes on
  // until its exp. A token that fails is refused and the old one stays.
  void OnRefresh(const proto::ClientFrame& f) {
    std::shared_ptr<const ChannelTable> table;
    const ChannelEntry* entry = nullptr;
    auth::Claims next;
    auth::TokenError err;
    if (!ctx_.Authenticate(f.token, table, next, entry, err)) {
      if (err.code.empty()) err = {Code(Error::kUnknownChannel), "token names an unknown channel"};
      return Refuse(FromCode(err.code), err.message + " (the session keeps its token)", false);
    }
    if (next.channel != claims_.channel || next.subject != claims_.subject ||
        next.role != claims_.role) {
      return Refuse(Error::kRefreshMismatch,
                    "a refresh must keep the channel, subject and role of the session", false);
    }
    claims_.exp = next.exp;
    claims_.iat = next.iat;
    claims_.key = next.key;  // a token of a new key: the old one may go
    ArmTimer();
    conn_.Send(Share(proto::EncodeRefreshed(claims_.exp * 1000)));
  }

  // The one timer of a live session: the heartbeat deadline, or earlier a
  // coalesced state change that is due, or receipts waiting for the pace.
  void ArmTimer() {
    int64_t at = std::min(last_frame_ + settings_->heartbeat_timeout_ms, ExpiresMs());
    if (state_dirty_) at = std::min(at, state_next_ms_);
    if (receipts_ && receipts_->due_ms != 0) at = std::min(at, receipts_->due_ms);
    loop_.wheel().Schedule(this, at);
  }

  // A `state` frame: the session's state changes now; the shard hears of it
  // at most once per kStateIntervalMs, with the latest state.
  void OnState(bool idle) {
    cell_->idle.store(idle, std::memory_order_relaxed);
    int64_t now = loop_.now_ms();
    if (now >= state_next_ms_) return PublishState(now);
    if (!state_dirty_) {
      state_dirty_ = true;
      ArmTimer();
    }
  }

  void PublishState(int64_t now) {
    state_dirty_ = false;
    state_next_ms_ = now + kStateIntervalMs;
    ctx_.presence.StateChanged(entry_idx_, claims_.subject);
  }

  void OnLiveFrame(const proto::ClientFrame& f) {
    switch (f.type) {
      case proto::FrameType::kPing:
        conn_.Send(PongPayload());
        return;
      case proto::FrameType::kHello:
        return Refuse(Error::kAlreadyHello, "hello was already accepted", false);
      case proto::FrameType::kRefresh:
        return OnRefresh(f);
      case proto::FrameType::kState:
        if (!cell_) return Refuse(Error::kForbidden, "state is a user's frame", false);
        if (f.idle != cell_->idle.load(std::memory_order_relaxed)) OnState(f.idle);
        return;
      case proto::FrameType::kAck:
      case proto::FrameType::kRead:
        if (!cell_) return Refuse(Error::kForbidden, "ack and read are a user's frames", false);
        return OnReceipt(f.type == proto::FrameType::kRead, f.chat_id, f.seq);
      case proto::FrameType::kSend:
        if (!cell_)
          return Refuse(Error::kForbidden,
                        "managers send with POST /v1/user-chats/{chat_id}/messages", false);
        return UserSend(f);
    }
  }

  // What the user missed: for each of its chats, the messages after the seq
  // its hello named (all of them for chats it did not name), then what
  // arrived live meanwhile.
  void Replay() {
    std::weak_ptr<void> alive = conn_.lifetime();
    std::string channel = claims_.channel, user = claims_.subject;
    auto resume = merge_.marks();
    size_t loop = conn_.loop();
    using Batch = std::vector<store::Message>;
    ctx_.store.Read<Batch>(
        [channel, user, resume](store::Db& db) { return chat::Missed(db, channel, user, resume); },
        // On a reader thread: `this` may be gone; touch it only on its loop.
        [ctx = &ctx_, this, alive, loop](store::Outcome<Batch> o) {
          ctx->loops.Post(loop, [this, alive, o = std::move(o)] {
            if (alive.expired() || phase_ != Phase::kLive) return;
            auto send = [this](const presence::Payload& f) { conn_.Send(f); };
            if (o.ok()) {
              ctx_.metrics.Add(conn_.loop(), ctx_.m_messages_replayed,
                               static_cast<int64_t>(o.value->size()));
              for (const store::Message& m : *o.value) {
                merge_.Replayed(Share(chat::EncodeMessageFrame(m)), m.chat_id, m.seq, send);
              }
            } else {
              spdlog::warn("replay for {}: {}", claims_.subject, o.error);
              SendError(Error::kReplayFailed, "missed messages could not be read; reconnect");
            }
            merge_.End(send);
          });
        });
  }

  void UserSend(const proto::ClientFrame& f) {
    auto table = ctx_.channels.Get();
    const ChannelEntry* e = table->Find(claims_.channel);
    if (e == nullptr) return Refuse(Error::kUnknownChannel, "this channel was removed", true);
    if (f.text.empty()) return Refuse(Error::kEmptyText, "text is empty", false);
    // This session's own pace first, then the user's across its sessions
    // on this node (a user cannot flood the store and every desk, with one
    // tab or many); a refusal counts toward the connection's refusals, so a
    // client that keeps going is cut (too_many_errors).
    const config::Channel& cs = e->settings;
    const int64_t now = loop_.now_ms();
    if (int64_t wait = Pace(send_bucket_, cs.user_sends_per_s, cs.user_send_burst, now)) {
      ctx_.metrics.Add(conn_.loop(), ctx_.m_limited_session_send);
      return RateLimited("too many messages from this session; send it again later", wait);
    }
    if (int64_t wait =
            ctx_.user_sends.Take(PrincipalKey(), cs.user_total_sends_per_s,
                                 static_cast<double>(cs.user_total_send_burst), base::SteadyMs())) {
      ctx_.metrics.Add(conn_.loop(), ctx_.m_limited_user_send);
      return RateLimited("too many messages from this user; send it again later", wait);
    }
    if (!ctx_.sends.Take(base::SteadyMs())) {
      return SendError(Error::kOverloaded, "too many sends on this node; send it again later",
                       ctx_.settings()->retry_after_ms);
    }
    if (static_cast<int64_t>(f.text.size()) > ctx_.settings()->max_text_bytes) {
      return Refuse(Error::kTextTooLong, "text is over the limit", false);
    }
    chat::SendInput in = chat::UserSendInput(claims_.channel, claims_.subject, f.chat_id, f.text,
                                             f.client_msg_id, base::WallMs());
    std::weak_ptr<void> alive = conn_.lifetime();
    std::string client_msg_id = f.client_msg_id;
    ctx_.messenger.Send(in, e->idx, conn_.loop(),
                        [this, alive, client_msg_id](store::Outcome<chat::SendResult> o) {
                          if (alive.expired() || phase_ != Phase::kLive) return;
                          if (!o.ok()) {
                            std::optional<int64_t> retry;
                            if (o.transient()) retry = ctx_.settings()->retry_after_ms;
                            return SendError(StoreErrorOf(o.overloaded()),
                                             "the message was not stored; send it again", retry);
                          }
                          if (o.value->status == chat::SendStatus::kNoChat) {
                            return Refuse(Error::kUnknownChat, "no such chat of yours", false);
                          }
                          if (o.value->status == chat::SendStatus::kConflict) {
                            return Refuse(Error::kIdempotencyConflict,
                                          "client_msg_id was used for a different message", false);
                          }
                          conn_.Send(Share(chat::EncodeSentFrame(client_msg_id, o.value->message)));
                        });
  }

  // Takes a token of `bucket` (made at first use, with the channel's
  // current settings, which a reload may change); 0 if taken, else the wait.
  int64_t Pace(std::unique_ptr<base::TokenBucket>& bucket, double rate, int64_t burst,
               int64_t now) {
    if (rate <= 0) return 0;
    const auto b = static_cast<double>(burst);
    if (!bucket) {
      bucket = std::make_unique<base::TokenBucket>();
      bucket->Set(rate, b);
    } else if (bucket->rate() != rate || bucket->burst() != b) {
      bucket->Set(rate, b);
    }
    if (bucket->Take(now)) return 0;
    return std::max<int64_t>(1, bucket->MsUntilNext(now));
  }

  // `rate_limited` with the wait; the connection stays, unless this client
  // keeps going past kMaxRefusedFrames refusals (then too_many_errors).
  void RateLimited(std::string_view message, int64_t wait_ms) {
    Refuse(Error::kRateLimited, message, false, wait_ms);
  }

  // The key of this session's principal in the node's keyed buckets.
  std::string PrincipalKey() const {
    std::string k = claims_.channel;
    k.push_back('\0');
    k += claims_.subject;
    return k;
  }

  // An `ack` or `read`: merged into the session's pending marks, written
  // when the session's receipt write in flight is done and its pace allows
  // (chat::ReceiptCoalescer). Refused only with marks of kMaxChats other
  // chats pending.
  void OnReceipt(bool read, const std::string& chat_id, int64_t seq) {
    if (!receipts_) receipts_ = std::make_unique<Receipts>();
    switch (receipts_->marks.Add(chat_id, seq, read)) {
      case chat::ReceiptCoalescer::Added::kFull: {
        // Room comes with the next write: when the pace allows, or soon.
        const int64_t due = receipts_->due_ms;
        ctx_.metrics.Add(conn_.loop(), ctx_.m_limited_receipt);
        return RateLimited("receipts of too many chats are waiting; send the newest ones later",
                           due != 0 ? std::max<int64_t>(100, due - loop_.now_ms()) : 100);
      }
      case chat::ReceiptCoalescer::Added::kMerged:
        ctx_.metrics.Add(conn_.loop(), ctx_.m_receipts_merged);
        break;
      case chat::ReceiptCoalescer::Added::kNew:
        break;
    }
    FlushReceipts();
  }

  // The pending marks to the store, if no receipt write is in flight and
  // the channel's pace (receipt_burst, receipts_per_s: a session's receipt
  // writes) allows; else the timer or the write in flight calls again. A
  // write the store failed is tried again after retry_after_ms, with what
  // came meanwhile: the client need not send it again.
  void FlushReceipts() {
    Receipts& r = *receipts_;
    if (closing_ || r.due_ms != 0 || !r.marks.ready()) return;
    auto table = ctx_.channels.Get();
    const ChannelEntry* e = table->Find(claims_.channel);
    if (e == nullptr) return;  // the channel is going: the sweep ends the session
    const config::Channel& cs = e->settings;
    const int64_t now = loop_.now_ms();
    if (int64_t wait = Pace(r.bucket, cs.receipts_per_s, cs.receipt_burst, now)) {
      r.due_ms = now + wait;
      ArmTimer();
      return;
    }
    std::weak_ptr<void> alive = conn_.lifetime();
    std::vector<chat::ReceiptMarks> taken = r.marks.Take();
    chat::Messenger::ReceiptInput in{claims_.channel, claims_.subject, taken};
    ctx_.messenger.Receipt(
        std::move(in), entry_idx_, conn_.loop(),
        // On this session's loop; `this` may be gone.
        [this, alive, taken = std::move(taken)](store::Outcome<chat::Messenger::ReceiptResults> o) {
          if (alive.expired() || phase_ != Phase::kLive) return;
          Receipts& r = *receipts_;
          if (!o.ok()) {
            r.marks.Restore(taken);
            r.due_ms = loop_.now_ms() + ctx_.settings()->retry_after_ms;
            ArmTimer();
            return;
          }
          r.marks.Done();
          // In `taken`'s order; the id says which receipt it was (they come
          // back later than the frame, and merged).
          for (size_t i = 0; i < o.value->size() && i < taken.size(); ++i) {
            if (!(*o.value)[i]) {
              Refuse(Error::kUnknownChat, "no such chat of yours: " + taken[i].chat_id, false);
            }
          }
          FlushReceipts();
        });
  }

  // Marks still pending when the session ends are written all the same
  // (one write, past the pace), even if the session ended for its authority:
  // the client sent them while it had it. A failure of this write is
  // counted by the store only: there is no one left to tell.
  void FlushReceiptsAtEnd() {
    if (!receipts_ || !receipts_->marks.has_pending()) return;
    ctx_.messenger.Receipt({claims_.channel, claims_.subject, receipts_->marks.Take()}, entry_idx_,
                           conn_.loop(), nullptr);
  }

  Context& ctx_;
  net::WsConnection& conn_;
  base::Loop& loop_;
  std::shared_ptr<const LiveSettings> settings_;
  Phase phase_ = Phase::kHello;
  auth::Claims claims_;
  presence::ChannelIdx entry_idx_ = 0;
  std::shared_ptr<presence::SessionCell> cell_;  // users only
  uint64_t sub_handle_ = 0;                      // managers only
  int64_t last_frame_ = 0;                       // loop steady ms
  // Users' send frames, at the channel's pace; made at the first send (most
  // sessions never send).
  std::unique_ptr<base::TokenBucket> send_bucket_;
  // A user's receipts: made at the first ack or read.
  struct Receipts {
    chat::ReceiptCoalescer marks;
    std::unique_ptr<base::TokenBucket> bucket;  // the session's receipt writes
    int64_t due_ms = 0;                         // loop steady ms; 0: not waiting for the pace
  };
  std::unique_ptr<Receipts> receipts_;
  int refused_ = 0;
  bool timed_out_ = false;
  bool state_dirty_ = false;   // a state change waits for state_next_ms_
  int64_t state_next_ms_ = 0;  // loop steady ms
  // Users: the replay of what was missed and the live messages, merged.
  chat::ReplayMerge merge_;
  bool closing_ = false;  // a close was sent: ignore the peer from now on
};

}  // namespace

net::WsAcceptor::Decision ConnectEndpoint::Upgrade(const net::Request& req,
                                                   net::WsConnection& conn) {
  Decision d;
  if (req.Path() != "/v1/connect") {
    d.refusal =
        ErrorResponse(ctx_, conn.loop(), Error::kNotFound, "no WebSocket endpoint at this path");
    return d;
  }
  if (!ctx_.ready.load(std::memory_order_relaxed)) {
    auto s = ctx_.settings();
    d.refusal = ErrorResponse(ctx_, conn.loop(), Error::kOverloaded, "server is not ready");
    d.refusal.headers.emplace_back("Retry-After", std::to_string((s->retry_after_ms + 999) / 1000));
    return d;
  }
  d.session = std::make_unique<ClientSession>(ctx_, conn);
  return d;
}

}  // namespace onlined::api
