#include "api/context.h"

#include <unordered_map>

#include "base/clock.h"
#include "chat/codec.h"
#include "notify/scheduler.h"
#include "proto/frames.h"

namespace onlined::api {

namespace {
// Every error code the contract's handlers can answer with (metrics labels).
constexpr std::string_view kRefusalCodes[] = {
    "bad_json", "bad_frame", "unknown_type", "hello_required", "hello_timeout", "already_hello",
    "bad_token", "token_expired", "unknown_channel", "unauthorized", "forbidden", "not_found",
    "method_not_allowed", "too_many_ids", "bad_request", "not_websocket", "overloaded",
    "not_available", "too_many_errors", "frame_too_large", "unknown_chat", "idempotency_conflict",
    "empty_text", "text_too_long", "bad_cursor", "bad_phone", "bad_signature", "unknown_sid",
    "store_unavailable", "other"};
}  // namespace

Context::Context(base::LoopGroup& l, base::Metrics& m, presence::Service& p, Channels& c, LiveSettings s)
    : loops(l), metrics(m), presence(p), channels(c),
      settings_(std::make_shared<const LiveSettings>(s)) {
  for (std::string_view code : kRefusalCodes) {
    refusal_ids_[std::string(code)] = metrics.Counter(
        "onlined_refusals_total", "Frames and requests refused, by error code.", "code=\"" + std::string(code) + "\"");
  }
  m_query_latency = metrics.Histogram(
      "onlined_presence_query_seconds", "Latency of POST /v1/presence/query, from request to answer.",
      {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1});
  m_query_ids = metrics.Counter("onlined_presence_query_ids_total", "User ids resolved by presence queries.");
  m_frames_refused = metrics.Counter("onlined_frames_refused_total", "Client frames answered with an error frame.");
  m_chats_latency = metrics.Histogram("onlined_user_chats_seconds", "Latency of GET /v1/user-chats.",
                                      {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1});
  m_replay_too_long = metrics.Counter(
      "onlined_presence_replay_too_long_total",
      "Desk resumes answered with presence_reset because the replay would not fit the send queue.");
  m_messages = metrics.Counter("onlined_messages_stored_total", "Messages stored (users and managers).");
  m_send_latency = metrics.Histogram("onlined_send_seconds", "From a send request to its durable commit.",
                                     {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1});
}

void Context::SendMessage(chat::SendInput in, presence::ChannelIdx ch, size_t reply_loop,
                          std::function<void(store::Outcome<chat::SendResult>)> done) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t sms_delay_ms = in.sms_delay_ms;
  store->Write<chat::SendResult>(
      [in = std::move(in)](store::Db& db) { return chat::Send(db, in); },
      [this, ch, reply_loop, t0, sms_delay_ms, done = std::move(done)](store::Outcome<chat::SendResult> o) mutable {
        // On the writer thread, in commit order.
        if (o.ok() && o.value->status == chat::SendStatus::kCreated) {
          const chat::SendResult& r = *o.value;
          metrics.Add(metrics.loops(), m_messages);
          metrics.Observe(metrics.loops(), m_send_latency,
                          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
          auto frame = std::make_shared<const std::string>(chat::EncodeMessageFrame(r.message));
          presence.PublishToChannel(ch, frame);
          std::function<void(bool)> offline;
          if (r.notification_id != 0 && scheduler != nullptr) {
            int64_t id = r.notification_id, due = r.message.created_at + sms_delay_ms;
            notify::Scheduler* s = scheduler;
            offline = [s, id, due](bool had_sessions) {
              if (!had_sessions) s->PullEarlier(id, due);
            };
          }
          presence.DeliverToUser(ch, r.user_id, frame, r.message.chat_id, r.message.seq, std::move(offline));
        }
        loops.Post(reply_loop, [done = std::move(done), o = std::move(o)]() mutable { done(std::move(o)); });
      });
}

namespace {

// The tokens this thread has verified against one channel table. A desk
// sends the same bearer token with every request: its signature (HMAC, JSON,
// base64) is checked once per thread, later uses check only the expiry. A
// reload brings a new table and empties the cache, so a rotated secret or a
// removed channel takes effect at once.
struct TokenCache {
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::shared_ptr<const ChannelTable> table;
  std::unordered_map<std::string, auth::Claims, Hash, std::equal_to<>> verified;
};
thread_local TokenCache tls_tokens;
constexpr size_t kTokenCacheMax = 4096;  // per thread; emptied when full

}  // namespace

bool Context::Authenticate(std::string_view token, std::shared_ptr<const ChannelTable>& table,
                           auth::Claims& claims, const ChannelEntry*& entry, auth::TokenError& err) const {
  table = channels.Get();
  const ChannelTable* t = table.get();
  const int64_t now_s = base::WallMs() / 1000;
  TokenCache& cache = tls_tokens;
  if (cache.table != table) {
    cache.verified.clear();
    cache.table = table;
  }
  if (auto it = cache.verified.find(token); it != cache.verified.end()) {
    if (it->second.exp > now_s) {
      claims = it->second;
      entry = t->Find(claims.channel);
      return entry != nullptr;
    }
    cache.verified.erase(it);  // expired: Verify below says so
  }
  auto lookup = [t](std::string_view ch) -> const std::string* {
    const ChannelEntry* e = t->Find(ch);
    return e == nullptr ? nullptr : &e->settings.secret;
  };
  if (!auth::Verify(token, lookup, now_s, claims, err)) return false;
  entry = t->Find(claims.channel);
  if (entry == nullptr) return false;
  if (cache.verified.size() >= kTokenCacheMax) cache.verified.clear();
  cache.verified.emplace(std::string(token), claims);
  return true;
}

void Context::CountRefusal(size_t loop, std::string_view code) {
  auto it = refusal_ids_.find(std::string(code));
  if (it == refusal_ids_.end()) it = refusal_ids_.find("other");
  metrics.Add(loop, it->second);
}

}  // namespace onlined::api
