#pragma once
// TokenBucket: `rate` tokens a second, at most `burst` saved up. A rate of 0
// means unlimited. Time is the caller's (steady ms), so tests use a fake
// clock. Not thread-safe; SharedTokenBucket adds a mutex for the few places
// shared by every loop (admission, node-wide send rate), none per heartbeat.
#include <algorithm>
#include <cstdint>
#include <mutex>

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

}  // namespace onlined::base
