#include "base/timing_wheel.h"

#include <cassert>

namespace onlined::base {

TimerEntry::~TimerEntry() {
  if (wheel_ != nullptr) wheel_->Cancel(this);
}

TimingWheel::TimingWheel(int64_t now_ms, int64_t tick_ms, size_t slots)
    : tick_ms_(tick_ms),
      now_ms_(now_ms),
      current_tick_(now_ms / tick_ms),
      slots_(slots + 1, nullptr) {
  assert(tick_ms > 0 && slots > 0);
}

TimingWheel::~TimingWheel() {
  for (TimerEntry*& head : slots_) {
    while (head != nullptr) {
      TimerEntry* e = head;
      head = e->next_;
      e->wheel_ = nullptr;
      e->prev_ = e->next_ = nullptr;
    }
  }
}

void TimingWheel::Link(TimerEntry* e, size_t slot) {
  e->slot_ = slot;
  e->prev_ = nullptr;
  e->next_ = slots_[slot];
  if (e->next_ != nullptr) e->next_->prev_ = e;
  slots_[slot] = e;
  e->wheel_ = this;
  ++size_;
}

void TimingWheel::Unlink(TimerEntry* e) {
  if (e->prev_ != nullptr) {
    e->prev_->next_ = e->next_;
  } else {
    assert(slots_[e->slot_] == e);
    slots_[e->slot_] = e->next_;
  }
  if (e->next_ != nullptr) e->next_->prev_ = e->prev_;
  e->prev_ = e->next_ = nullptr;
  e->wheel_ = nullptr;
  --size_;
}

void TimingWheel::Schedule(TimerEntry* e, int64_t deadline_ms) {
  if (e->wheel_ != nullptr) e->wheel_->Cancel(e);
  int64_t tick = TickOf(deadline_ms);
  if (tick <= current_tick_) tick = current_tick_ + 1;  // due now: next Advance
  e->deadline_ms_ = deadline_ms;
  Link(e, static_cast<size_t>(tick) % (slots_.size() - 1));
}

void TimingWheel::Cancel(TimerEntry* e) {
  if (e->wheel_ == this) Unlink(e);
}

size_t TimingWheel::Advance(int64_t now_ms) {
  if (now_ms > now_ms_) now_ms_ = now_ms;
  const int64_t target = now_ms_ / tick_ms_;
  const size_t firing = slots_.size() - 1;  // the list being fired
  size_t fired = 0;
  while (current_tick_ < target) {
    const int64_t tick = ++current_tick_;
    const size_t slot = static_cast<size_t>(tick) % firing;
    // Phase 1 (no callbacks): move what is due to the firing list; entries
    // of a later turn of the wheel stay.
    for (TimerEntry* e = slots_[slot]; e != nullptr;) {
      TimerEntry* next = e->next_;
      if (TickOf(e->deadline_ms_) <= tick) {
        Unlink(e);
        Link(e, firing);
      }
      e = next;
    }
    // Phase 2: fire. A callback may cancel or schedule any entry, including
    // ones still on the firing list: Unlink knows that list like a slot.
    while (slots_[firing] != nullptr) {
      TimerEntry* e = slots_[firing];
      Unlink(e);
      ++fired;
      e->OnTimer(now_ms_);
    }
  }
  return fired;
}

}  // namespace onlined::base
