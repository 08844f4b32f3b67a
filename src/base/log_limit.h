#pragma once
// LogLimit: at most `burst` log lines per `interval_ms` for one kind of
// event (a slow consumer cut, a refused upgrade); the rest are counted, and
// the next line let through says how many were not written ("312 more in the
// last 10 s"). A flood of bad clients costs counters, never a flood of
// lines. Time is the caller's (steady ms). Thread-safe: the events it guards
// are rare by nature and never on a hot path.
#include <cstdint>
#include <limits>
#include <mutex>

namespace onlined::base {

class LogLimit {
 public:
  LogLimit(int burst, int64_t interval_ms) : burst_(burst), interval_ms_(interval_ms) {}

  // True if this occurrence may be logged; then *dropped is how many were
  // not since the last line (0 mostly).
  bool Allow(int64_t now_ms, uint64_t* dropped) {
    std::lock_guard lock(mu_);
    if (now_ms - window_start_ >= interval_ms_) {
      window_start_ = now_ms;
      in_window_ = 0;
    }
    if (in_window_ >= burst_) {
      ++dropped_;
      return false;
    }
    ++in_window_;
    *dropped = dropped_;
    dropped_ = 0;
    return true;
  }

 private:
  std::mutex mu_;
  const int burst_;
  const int64_t interval_ms_;
  int64_t window_start_ = std::numeric_limits<int64_t>::min() / 2;
  int in_window_ = 0;
  uint64_t dropped_ = 0;
};

}  // namespace onlined::base
