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

  // Verifies a token against the current channels. On success fills
  // `claims` and `entry` (valid while `table` is held).
  bool Authenticate(std::string_view token, std::shared_ptr<const ChannelTable>& table,
                    auth::Claims& claims, const ChannelEntry*& entry, auth::TokenError& err) const;

  // Counts a refused frame or request by its error code
  // (onlined_refusals_total{code}). Any loop.
  void CountRefusal(size_t loop, Error e) {
    metrics.Add(loop, refusal_ids_[static_cast<size_t>(e)]);
  }

  std::atomic<bool> ready{false};
  // Cluster mode: how this node stands in its cluster ("joined", "joining",
  // "nats_unreachable"), shown by /readyz; unset on a single node. Set before
  // serving, then any thread.
  std::function<const char*()> cluster_state;
  // Sends admitted per second on this node, users' and managers' together
  // (max_sends_per_s; unlimited by default). Any thread.
  base::SharedTokenBucket sends;
  base::Metrics::Id m_query_latency, m_query_ids, m_frames_refused, m_chats_latency,
      m_replay_too_long;

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
