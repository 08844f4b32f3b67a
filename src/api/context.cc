#include "api/context.h"

#include <unordered_map>

#include "api/errors.h"
#include "base/clock.h"
#include "chat/codec.h"
#include "proto/frames.h"

namespace onlined::api {

Context::Context(base::LoopGroup& l, base::Metrics& m, presence::Presence& p, presence::Router& r,
                 Channels& c, store::Service& st, chat::Messenger& msg, const LiveSettings& s)
    : loops(l),
      metrics(m),
      presence(p),
      router(r),
      channels(c),
      store(st),
      messenger(msg),
      sessions(l.size()),
      settings_(std::make_shared<const LiveSettings>(s)) {
  for (const ErrorInfo& e : AllErrors()) {
    refusal_ids_.push_back(metrics.Counter("onlined_refusals_total",
                                           "Frames and requests refused, by error code.",
                                           "code=\"" + std::string(e.code) + "\""));
  }
  m_query_latency = metrics.Histogram(
      "onlined_presence_query_seconds",
      "Latency of POST /v1/presence/query, from request to answer.",
      {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1});
  m_query_ids =
      metrics.Counter("onlined_presence_query_ids_total", "User ids resolved by presence queries.");
  m_frames_refused = metrics.Counter("onlined_frames_refused_total",
                                     "Client frames answered with an error frame.");
  m_replay_too_long = metrics.Counter(
      "onlined_presence_replay_too_long_total",
      "Desk resumes answered with presence_reset because the replay would not fit the send queue.");
  m_receipts_merged = metrics.Counter("onlined_receipts_merged_total",
                                      "ack and read frames merged into a mark already waiting for "
                                      "the store (no write of their own).");
  m_messages_replayed =
      metrics.Counter("onlined_messages_replayed_total",
                      "Messages read from the store on a user's hello to replay what it missed "
                      "(all of a chat's newest 500 when the hello names no seq for it).");
  m_chats_latency =
      metrics.Histogram("onlined_user_chats_seconds", "Latency of GET /v1/user-chats.",
                        {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1});
  auto labelled = [this](const char* name, const char* help, const char* label, const char* value) {
    return metrics.Counter(name, help, std::string(label) + "=\"" + value + "\"");
  };
  const char* limited = "onlined_rate_limited_total";
  const char* limited_help = "Frames and requests refused with rate_limited, by which limit.";
  m_limited_session_send = labelled(limited, limited_help, "kind", "session_send");
  m_limited_user_send = labelled(limited, limited_help, "kind", "user_send");
  m_limited_receipt = labelled(limited, limited_help, "kind", "receipt");
  m_limited_manager_send = labelled(limited, limited_help, "kind", "manager_send");
  const char* ended = "onlined_sessions_ended_total";
  const char* ended_help = "Live sessions ended because their authority ended, by reason.";
  m_ended_key_removed = labelled(ended, ended_help, "reason", "key_removed");
  m_ended_revoked = labelled(ended, ended_help, "reason", "revoked");
}

void Context::RecheckSessions(LiveSession::Sweep sweep) {
  auto shared = std::make_shared<const LiveSession::Sweep>(std::move(sweep));
  for (size_t i = 0; i < loops.size(); ++i) {
    loops.Post(i, [this, i, shared] { sessions.RecheckAll(i, *shared); });
  }
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
                           auth::Claims& claims, const ChannelEntry*& entry,
                           auth::TokenError& err) const {
  table = channels.Get();
  const ChannelTable* t = table.get();
  const int64_t now_s = base::WallMs() / 1000;
  TokenCache& cache = tls_tokens;
  if (cache.table != table) {
    cache.verified.clear();
    cache.table = table;
  }
  auto revoked = [&] {
    if (!revocations.Revoked(claims)) return false;
    err = {Code(Error::kTokenRevoked),
           "this token's subject was revoked; a token issued after the revocation is needed"};
    entry = nullptr;
    return true;
  };
  if (auto it = cache.verified.find(token); it != cache.verified.end()) {
    if (it->second.exp > now_s) {
      claims = it->second;
      entry = t->Find(claims.channel);
      return entry != nullptr && !revoked();
    }
    cache.verified.erase(it);  // expired: Verify below says so
  }
  auto lookup = [t](std::string_view ch, const char* kid, auth::TokenError& e) -> auth::KeyRef {
    const ChannelEntry* c = t->Find(ch);
    if (c == nullptr) return {};
    return c->FindKey(kid, e);
  };
  const int64_t leeway = settings()->token_leeway_s;
  if (!auth::Verify(token, lookup, now_s, claims, err, leeway)) return false;
  entry = t->Find(claims.channel);
  if (entry == nullptr) return false;
  const int64_t iat = claims.iat;
  // The channel's bound on a token's lifetime for its role (RFC 8725: a
  // token that lives for years is a key that never rotates).
  const config::Channel& ch = entry->settings;
  const int64_t max = claims.role == auth::Role::kUser      ? ch.max_user_token_s
                      : claims.role == auth::Role::kManager ? ch.max_manager_token_s
                                                            : ch.max_server_token_s;
  const int64_t lifetime = claims.exp - (iat != 0 ? iat : now_s);
  if (max > 0 && lifetime > max + leeway) {
    err = {Code(Error::kTokenTooLong),
           "token lives " + std::to_string(lifetime) + " s; this channel allows " +
               std::string(auth::RoleName(claims.role)) + " tokens " + std::to_string(max) + " s"};
    entry = nullptr;
    return false;
  }
  if (cache.verified.size() >= kTokenCacheMax) cache.verified.clear();
  cache.verified.emplace(std::string(token), claims);
  return !revoked();
}

}  // namespace onlined::api
