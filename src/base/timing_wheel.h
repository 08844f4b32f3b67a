#pragma once
// TimingWheel: a hashed timing wheel for many coarse deadlines (heartbeat
// timeouts, offline grace, record expiry) without a timer per object.
//
// Owned by one thread (a loop); not thread-safe. Entries are intrusive: an
// object embeds a TimerEntry and stays the owner of its memory. Scheduling,
// cancelling and firing are O(1) and allocate nothing. An entry must be
// cancelled (or have fired) before it is destroyed; ~TimerEntry cancels.
//
// Time is whatever the owner feeds to Advance() (ms); tests use a fake clock.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace onlined::base {

class TimingWheel;

class TimerEntry {
 public:
  TimerEntry() = default;
  TimerEntry(const TimerEntry&) = delete;
  TimerEntry& operator=(const TimerEntry&) = delete;
  virtual ~TimerEntry();

  bool scheduled() const { return wheel_ != nullptr; }
  int64_t deadline_ms() const { return deadline_ms_; }

  // Called by TimingWheel::Advance on the owning thread once the deadline
  // has passed; the entry is already unlinked and may re-schedule itself.
  virtual void OnTimer(int64_t now_ms) = 0;

 private:
  friend class TimingWheel;
  TimingWheel* wheel_ = nullptr;
  TimerEntry* prev_ = nullptr;
  TimerEntry* next_ = nullptr;
  int64_t deadline_ms_ = 0;
  size_t slot_ = 0;
};

class TimingWheel {
 public:
  // tick_ms: resolution; slots: wheel size (deadlines beyond slots*tick
  // wrap around and are checked again on later turns).
  explicit TimingWheel(int64_t now_ms, int64_t tick_ms = 100, size_t slots = 1024);
  ~TimingWheel();
  TimingWheel(const TimingWheel&) = delete;
  TimingWheel& operator=(const TimingWheel&) = delete;

  // Schedules (or moves) `e` to fire at or after deadline_ms, no earlier.
  void Schedule(TimerEntry* e, int64_t deadline_ms);
  void Cancel(TimerEntry* e);

  // Fires every entry whose deadline is <= now_ms. Returns how many fired.
  size_t Advance(int64_t now_ms);

  int64_t now_ms() const { return now_ms_; }
  size_t size() const { return size_; }
  int64_t tick_ms() const { return tick_ms_; }

 private:
  // The first tick at whose start the deadline has passed (rounded up: a
  // deadline inside a tick fires at the next tick's edge, never before it).
  int64_t TickOf(int64_t deadline_ms) const {
    const int64_t q = deadline_ms / tick_ms_;
    return q * tick_ms_ < deadline_ms ? q + 1 : q;
  }
  void Link(TimerEntry* e, size_t slot);
  void Unlink(TimerEntry* e);

  int64_t tick_ms_;
  int64_t now_ms_;
  int64_t current_tick_;  // the tick whose slot was processed last
  std::vector<TimerEntry*> slots_;
  size_t size_ = 0;
};

}  // namespace onlined::base
