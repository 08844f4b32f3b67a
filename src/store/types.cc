#include "store/types.h"

namespace onlined::store {

const char* NotifyStateName(NotifyState s) {
  switch (s) {
    case NotifyState::kScheduled:
      return "scheduled";
    case NotifyState::kSending:
      return "sending";
    case NotifyState::kSent:
      return "sent";
    case NotifyState::kCancelled:
      return "cancelled";
    case NotifyState::kFailed:
      return "failed";
  }
  return "scheduled";
}

bool ParseNotifyState(const std::string& s, NotifyState& out) {
  for (NotifyState st : {NotifyState::kScheduled, NotifyState::kSending, NotifyState::kSent,
                         NotifyState::kCancelled, NotifyState::kFailed}) {
    if (s == NotifyStateName(st)) {
      out = st;
      return true;
    }
  }
  return false;
}

}  // namespace onlined::store
