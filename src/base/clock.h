#pragma once
// Time sources. Wall time (ms since the epoch) is what the contract shows
// (`last_seen`, `created_at`); steady time drives deadlines.
//
// The loops read steady time through a SteadyClock (a plain function pointer
// plus its state) so that a test can hand them a ManualClock and move time by
// hand: grace and heartbeat timeouts are then checked at their exact edges
// instead of in sleep windows that a loaded machine stretches.
#include <atomic>
#include <chrono>
#include <cstdint>

namespace onlined::base {

inline int64_t WallMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

inline int64_t SteadyMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

// Steady time as the loops read it, and the wall time beside it (a token's
// `exp` is wall time): the process's clocks unless a test installs others.
// Read once per wheel tick, not on a hot path.
struct SteadyClock {
  int64_t (*now)(const void* state) = [](const void*) { return SteadyMs(); };
  const void* state = nullptr;
  int64_t (*wall)(const void* state) = [](const void*) { return WallMs(); };
  int64_t Now() const { return now(state); }
  int64_t Wall() const { return wall(state); }
};

// A clock that moves only when told to (tests). Its wall time starts at the
// real one and moves with it. Thread-safe: the test's thread advances it,
// the loops read it.
class ManualClock {
 public:
  explicit ManualClock(int64_t start_ms = 1'000'000)
      : start_(start_ms), wall_start_(WallMs()), now_(start_ms) {}
  int64_t Now() const { return now_.load(std::memory_order_acquire); }
  int64_t Wall() const { return wall_start_ + (Now() - start_); }
  void Advance(int64_t ms) { now_.fetch_add(ms, std::memory_order_acq_rel); }
  SteadyClock AsSteadyClock() const {
    return {[](const void* s) { return static_cast<const ManualClock*>(s)->Now(); }, this,
            [](const void* s) { return static_cast<const ManualClock*>(s)->Wall(); }};
  }

 private:
  const int64_t start_, wall_start_;
  std::atomic<int64_t> now_;
};

}  // namespace onlined::base
