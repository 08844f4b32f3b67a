#pragma once
// notify::Policies: every channel's SMS policy (delays, quiet hours, rate,
// its time zone read from the TZif file), built once per configuration load
// (start, SIGHUP) on the thread that loads it; never on the store writer,
// whose transaction every send waits for. Immutable once built: share it by
// shared_ptr<const Policies> across threads.
//
// PolicySource holds the current one; Get() is safe from any thread.
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "notify/decide.h"

namespace onlined::notify {

class Policies {
 public:
  // Reads each channel's time zone (an unknown or unreadable one falls back
  // to UTC, with a warning: config validation already refused unknown names).
  static std::shared_ptr<const Policies> Build(const std::vector<config::Channel>& channels);

  // The channel's policy, or nullptr if the channel is not configured (any
  // more). Valid while this Policies is held.
  const Policy* Find(std::string_view channel) const;

 private:
  std::map<std::string, Policy, std::less<>> by_channel_;
};

class PolicySource {
 public:
  explicit PolicySource(std::shared_ptr<const Policies> p) : current_(std::move(p)) {}
  std::shared_ptr<const Policies> Get() const { return current_.load(std::memory_order_acquire); }
  void Set(std::shared_ptr<const Policies> p) {
    current_.store(std::move(p), std::memory_order_release);
  }

 private:
  std::atomic<std::shared_ptr<const Policies>> current_;
};

}  // namespace onlined::notify
