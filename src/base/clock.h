#pragma once
// Time sources. Wall time (ms since the epoch) is what the contract shows
// (`last_seen`, `created_at`); steady time drives deadlines.
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

}  // namespace onlined::base
