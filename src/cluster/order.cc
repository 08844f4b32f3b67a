#include "cluster/order.h"

#include <algorithm>
#include <limits>

namespace onlined::cluster {

void DeliveryOrder::Reset(std::string chat) {
  chat_ = std::move(chat);
  delivered_ = 0;
  held_.clear();
  late_.clear();
  first_seen_ = 0;
  healing_ = false;
  ++epoch_;
}

void DeliveryOrder::Offer(const std::string& chat, int64_t seq, Payload frame, Sink& sink) {
  if (chat_ != chat) Reset(chat);  // the user's chat, first seen here
  if (first_seen_ == 0) {
    first_seen_ = seq;
    delivered_ = std::max<int64_t>(0, seq - 1 - kFirstHeal);
  } else if (seq < first_seen_) {
    if (std::find(late_.begin(), late_.end(), seq) != late_.end() || late_.size() >= kMaxLate) {
      sink.Duplicate();
      return;
    }
    late_.push_back(seq);
    sink.Deliver(seq, std::move(frame));
    return;
  }
  if (seq <= delivered_ || held_.count(seq) != 0) {
    sink.Duplicate();
    return;
  }
  if (held_.size() >= kMaxHeld) {
    DeliverHeld(std::numeric_limits<int64_t>::max(), sink);  // the store is slow
  }
  held_.emplace(seq, std::move(frame));
  DeliverHeld(0, sink);
  Heal(sink);
}

void DeliveryOrder::Heal(Sink& sink) {
  if (held_.empty() || healing_) return;
  const int64_t after = delivered_, upto = held_.begin()->first - 1;
  healing_ = true;
  if (!sink.AskHeal(after, upto, epoch_)) {
    healing_ = false;
    DeliverHeld(std::numeric_limits<int64_t>::max(), sink);
    return;
  }
  if (upto + 1 != first_seen_) sink.Gap();
}

void DeliveryOrder::Healed(uint32_t epoch, int64_t upto, Frames got, Sink& sink) {
  if (epoch != epoch_) return;  // the order it was for was started afresh
  healing_ = false;
  for (auto& f : got) {
    if (f.first > delivered_ && f.first <= upto) held_.emplace(f.first, std::move(f.second));
  }
  DeliverHeld(upto + 1, sink);
  Heal(sink);
}

void DeliveryOrder::DeliverHeld(int64_t skip_upto, Sink& sink) {
  while (!held_.empty() &&
         (held_.begin()->first <= skip_upto || held_.begin()->first == delivered_ + 1)) {
    auto first = held_.begin();
    const int64_t seq = first->first;
    Payload p = std::move(first->second);
    held_.erase(first);
    delivered_ = seq;
    sink.Deliver(seq, std::move(p));
  }
}

}  // namespace onlined::cluster
