#pragma once
// EventLog: the ordered presence events of one channel, with the last
// `capacity` kept (encoded, shared) so a desk that reconnects can resume.
//
// Owned by the channel's home loop; not thread-safe. Sequence numbers start
// above `first_seq`; the node seeds it from its boot time (ms * 1000), so a
// number from an earlier run of the node is always below this run's first
// and gets a reset instead of a wrong replay.
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/thread_checker.h"

namespace onlined::presence {

using Payload = std::shared_ptr<const std::string>;

class EventLog {
 public:
  EventLog(size_t capacity, uint64_t first_seq) : capacity_(capacity), last_seq_(first_seq) {}

  // Assigns the next sequence number to the event `encode(seq)` builds,
  // keeps it, and returns it.
  template <class Encode>
  Payload Append(Encode&& encode) {
    thread_.Check();
    uint64_t seq = ++last_seq_;
    Payload p = std::make_shared<const std::string>(encode(seq));
    ring_.push_back(p);
    if (ring_.size() > capacity_) ring_.pop_front();
    return p;
  }

  // Keeps an event numbered elsewhere (a cluster's stream). A number at or
  // below the last is a duplicate and is dropped (false); one past a gap
  // starts the kept history anew, so a resume across the gap is a reset.
  bool AppendAt(uint64_t seq, Payload p) {
    thread_.Check();
    if (seq <= last_seq_ && !ring_.empty()) return false;
    if (seq != last_seq_ + 1) ring_.clear();
    last_seq_ = seq;
    ring_.push_back(std::move(p));
    if (ring_.size() > capacity_) ring_.pop_front();
    return true;
  }

  // The events after `after`, oldest first; nullopt if some of them are no
  // longer kept (or `after` is not of this run): the caller must reset.
  std::optional<std::vector<Payload>> After(uint64_t after) const;

  uint64_t last_seq() const { return last_seq_; }
  uint64_t first_kept_seq() const { return last_seq_ - ring_.size() + 1; }

 private:
  size_t capacity_;
  uint64_t last_seq_;
  std::deque<Payload> ring_;
  base::ThreadChecker thread_;  // the channel's home loop
};

}  // namespace onlined::presence
