#pragma once
// TokenBucket: `rate` tokens a second, at most `burst` saved up. A rate of 0
// means unlimited. Time is the caller's (steady ms), so tests use a fake
// clock. Not thread-safe; SharedTokenBucket adds a mutex for the few places
// shared by every loop (admission, node-wide send rate), none per heartbeat;
// KeyedBuckets keeps one per key (a user's, a manager's sends) in stripes.
#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace onlined::base {

class TokenBucket {
 public:
  // Keeps the tokens saved so far (capped at the new burst). burst <= 0: one
  // second's worth (at least 1).
  void Set(double rate, double burst) {
    rate_ = rate;
    burst_ = burst > 0 ? burst : std::max(1.0, rate);
    tokens_ = started_ ? std::min(tokens_, burst_) : burst_;
  }
  // Takes one token at `now_ms`; false if none is left.
  bool Take(int64_t now_ms) {
    if (rate_ <= 0) return true;
    Refill(now_ms);
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }
  // How long until Take can succeed (0: now).
  int64_t MsUntilNext(int64_t now_ms) {
    if (rate_ <= 0) return 0;
    Refill(now_ms);
    if (tokens_ >= 1.0) return 0;
    return static_cast<int64_t>((1.0 - tokens_) * 1000.0 / rate_) + 1;
  }
  double rate() const { return rate_; }
  double burst() const { return burst_; }
  // True if the bucket is as a new one would be (full): it can be forgotten.
  bool Full(int64_t now_ms) {
    if (rate_ <= 0) return true;
    Refill(now_ms);
    return tokens_ >= burst_;
  }
  // True if Take would succeed now (refills, takes nothing).
  bool Available(int64_t now_ms) {
    if (rate_ <= 0) return true;
    Refill(now_ms);
    return tokens_ >= 1.0;
  }

 private:
  void Refill(int64_t now_ms) {
    if (!started_) {
      started_ = true;
      last_ms_ = now_ms;
    }
    if (now_ms > last_ms_) {
      tokens_ = std::min(burst_, tokens_ + static_cast<double>(now_ms - last_ms_) * rate_ / 1000.0);
      last_ms_ = now_ms;
    }
  }
  double rate_ = 0, burst_ = 1, tokens_ = 1;
  int64_t last_ms_ = 0;
  bool started_ = false;
};

class SharedTokenBucket {
 public:
  void Set(double rate, double burst) {
    std::lock_guard lock(mu_);
    b_.Set(rate, burst);
  }
  bool Take(int64_t now_ms) {
    std::lock_guard lock(mu_);
    return b_.Take(now_ms);
  }

 private:
  std::mutex mu_;
  TokenBucket b_;  // guarded by mu_
};

// A token bucket per key (a user or manager id), for pacing one principal
// across the loops. 64 stripes, each a mutex and a map; a bucket that has
// filled up again is forgotten (it is what a new one would be), so the maps
// hold only keys that spent tokens within one refill. Sends and receipts
// only, never per heartbeat. Thread-safe.
class KeyedBuckets {
 public:
  // Takes one token of `key`'s bucket (at `rate`/s, `burst` saved; a bucket
  // whose settings changed takes the new ones and keeps its tokens).
  // Returns 0 if taken, else the ms until one can be.
  int64_t Take(std::string_view key, double rate, double burst, int64_t now_ms) {
    if (rate <= 0) return 0;
    Stripe& st = stripes_[std::hash<std::string_view>{}(key) % kStripes];
    std::lock_guard lock(st.mu);
    if (++st.takes % kPruneEvery == 0 || st.map.size() >= kPruneAt) Prune(st, now_ms);
    auto it = st.map.find(key);
    if (it == st.map.end()) {
      it = st.map.emplace(std::string(key), TokenBucket{}).first;
      it->second.Set(rate, burst);
    } else if (it->second.rate() != rate || it->second.burst() != burst) {
      it->second.Set(rate, burst);
    }
    if (it->second.Take(now_ms)) return 0;
    return std::max<int64_t>(1, it->second.MsUntilNext(now_ms));
  }
  size_t size() {
    size_t n = 0;
    for (Stripe& st : stripes_) {
      std::lock_guard lock(st.mu);
      n += st.map.size();
    }
    return n;
  }

 private:
  static constexpr size_t kStripes = 64;
  static constexpr uint64_t kPruneEvery = 1024;
  static constexpr size_t kPruneAt = 8192;
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Stripe {
    std::mutex mu;
    std::unordered_map<std::string, TokenBucket, Hash, std::equal_to<>> map;  // guarded by mu
    uint64_t takes = 0;                                                       // guarded by mu
  };
  static void Prune(Stripe& st, int64_t now_ms) {
    for (auto it = st.map.begin(); it != st.map.end();) {
      if (it->second.Full(now_ms))
        it = st.map.erase(it);
      else
        ++it;
    }
  }
  std::array<Stripe, kStripes> stripes_;
};

}  // namespace onlined::base
