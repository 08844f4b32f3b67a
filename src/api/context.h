#pragma once
// api::Context: what the contract's handlers share. Built once in main and
// outliving every connection. Settings that may change live are atomics or
// snapshots; everything else is fixed after start.
#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "api/channels.h"
#include "auth/token.h"
#include "base/loops.h"
#include "base/metrics.h"
#include "presence/service.h"

namespace onlined::api {

// Settings read per connection or request; replaced whole on reload.
struct LiveSettings {
  int heartbeat_s = 25;
  int64_t heartbeat_timeout_ms = 62500;
  int64_t hello_timeout_ms = 10000;
  int64_t retry_after_ms = 5000;
};

class Context {
 public:
  Context(base::LoopGroup& loops, base::Metrics& metrics, presence::Service& presence, Channels& channels,
          LiveSettings settings);

  base::LoopGroup& loops;
  base::Metrics& metrics;
  presence::Service& presence;
  Channels& channels;

  std::shared_ptr<const LiveSettings> settings() const { return settings_.load(std::memory_order_acquire); }
  void set_settings(LiveSettings s) {
    settings_.store(std::make_shared<const LiveSettings>(s), std::memory_order_release);
  }

  // Verifies a token against the current channels. On success fills
  // `claims` and `entry` (valid while `table` is held).
  bool Authenticate(std::string_view token, std::shared_ptr<const ChannelTable>& table, auth::Claims& claims,
                    const ChannelEntry*& entry, auth::TokenError& err) const;

  // Counts a refused frame or request by its error code (metrics).
  void CountRefusal(size_t loop, std::string_view code);

  std::atomic<bool> ready{false};
  base::Metrics::Id m_query_latency, m_query_ids, m_frames_refused;

 private:
  std::atomic<std::shared_ptr<const LiveSettings>> settings_;
  std::unordered_map<std::string, base::Metrics::Id> refusal_ids_;
};

}  // namespace onlined::api
