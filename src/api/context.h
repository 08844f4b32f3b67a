#pragma once
// api::Context: what the contract's handlers share: the engines they call
// (presence, the message path, the store), the channel table and the live
// settings. Built whole by the node (app/node.h), outliving every connection;
// settings that may change live are atomics or snapshots, everything else is
// fixed after construction.
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "api/authority.h"
#include "api/channels.h"
#include "api/errors.h"
#include "auth/token.h"
#include "base/loops.h"
#include "base/metrics.h"
#include "base/token_bucket.h"
#include "chat/delivery.h"
#include "net/handler.h"
#include "presence/seams.h"
#include "store/service.h"

namespace onlined::api {

// Settings read per connection or request; replaced whole on reload.
struct LiveSettings {
  int heartbeat_s = 25;
  int64_t heartbeat_timeout_ms = 62500;
  int64_t hello_timeout_ms = 10000;
  int64_t retry_after_ms = 5000;
  int64_t max_text_bytes = 4000;
  int64_t token_leeway_s = 30;             // clock skew allowed on nbf and iat
  std::string sms_auth_token;              // checks X-Twilio-Signature
  std::string sms_public_url;              // the URL the provider calls ("" = from Host)
  std::string metrics_token;               // /metrics on the public listener ("" = not there)
  std::string frame_ancestors = "'none'";  // who may frame /desk and /widget
};

class Context {
 public:
  // Everything given must outlive the context.
  Context(base::LoopGroup& loops, base::Metrics& metrics, presence::Presence& presence,
          presence::Router& router, Channels& channels, store::Service& store,
          chat::Messenger& messenger, const LiveSettings& settings);

  base::LoopGroup& loops;
  base::Metrics& metrics;
  presence::Presence& presence;  // sessions, queries, the channels' event streams
  presence::Router& router;      // frames to a channel's desks (receipts)
  Channels& channels;
  store::Service& store;       // reads and writes off the loops
  chat::Messenger& messenger;  // a message's one path: store, desks, sessions, outbox

  std::shared_ptr<const LiveSettings> settings() const {
    return settings_.load(std::memory_order_acquire);
  }
  void set_settings(const LiveSettings& s) {
    settings_.store(std::make_shared<const LiveSettings>(s), std::memory_order_release);
  }

  // Verifies a token against the current channels and the revocations. On
  // success fills `claims` and `entry` (valid while `table` is held).
  bool Authenticate(std::string_view token, std::shared_ptr<const ChannelTable>& table,
                    auth::Claims& claims, const ChannelEntry*& entry, auth::TokenError& err) const;

  // Counts a refused frame or request by its error code
  // (onlined_refusals_total{code}). Any loop.
  void CountRefusal(size_t loop, Error e) {
    metrics.Add(loop, refusal_ids_[static_cast<size_t>(e)]);
  }

  // Asks every loop's live sessions whether they keep their authority
  // (after a reload, or a revocation). Any thread; returns at once.
  void RecheckSessions(LiveSession::Sweep sweep);

  // Revoked subjects (POST /v1/revocations; loaded from the store).
  Revocations revocations;
  // The live sessions of each loop (api/connect.cc links them).
  LiveSessions sessions;
  // Per-user and per-manager send pacing on this node, by key (see
  // RateLimits). Any thread.
  base::KeyedBuckets user_sends;
  base::KeyedBuckets manager_sends;

  // Serving: set once everything is started, cleared when draining.
  std::atomic<bool> ready{false};
  // Sends admitted per second on this node, users' and managers' together
  // (max_sends_per_s; unlimited by default). Any thread.
  base::SharedTokenBucket sends;
  base::Metrics::Id m_query_latency, m_query_ids, m_frames_refused, m_chats_latency,
      m_replay_too_long, m_receipts_merged, m_messages_replayed;
  // onlined_rate_limited_total{kind}: session_send, user_send, receipt, manager_send.
  base::Metrics::Id m_limited_session_send, m_limited_user_send, m_limited_receipt,
      m_limited_manager_send;
  // onlined_sessions_ended_total{reason}: key_removed, revoked.
  base::Metrics::Id m_ended_key_removed, m_ended_revoked;

 private:
  std::atomic<std::shared_ptr<const LiveSettings>> settings_;
  std::vector<base::Metrics::Id> refusal_ids_;  // by Error
};

// Checks the Bearer token of a desk call: manager or server role. On
// failure fills `err` (401/403) and returns false.
bool AuthorizeDesk(Context& ctx, const net::Request& req, auth::Claims& claims,
                   const ChannelEntry*& entry, std::shared_ptr<const ChannelTable>& table,
                   net::Response& err);

}  // namespace onlined::api
