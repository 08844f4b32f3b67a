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

// Steady time as the loops read it: the process's steady clock unless a test
// installs another. Read once per wheel tick, not on a hot path.
struct SteadyClock {
  int64_t (*now)(const void* state) = [](const void*) { return SteadyMs(); };
  const void* state = nullptr;
  int64_t Now() const { return now(state); }
};

// A clock that moves only when told to (tests). Thread-safe: the test's
// thread advances it, the loops read it.
class ManualClock {
 public:
  explicit ManualClock(int64_t start_ms = 1'000'000) : now_(start_ms) {}
  int64_t Now() const { return now_.load(std::memory_order_acquire); }
  void Advance(int64_t ms) { now_.fetch_add(ms, std::memory_order_acq_rel); }
  SteadyClock AsSteadyClock() const {
    return {[](const void* s) { return static_cast<const ManualClock*>(s)->Now(); }, this};
  }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace onlined::base
