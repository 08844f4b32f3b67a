#pragma once
// What to do with a notification whose time has come (docs/protocol.md,
// "Delivery and the SMS fallback"): pure, so every rule is unit-tested with a fake clock.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "notify/tz.h"
#include "store/types.h"

namespace onlined::notify {

// A channel's SMS settings, as the scheduler needs them.
struct Policy {
  std::string channel_name;  // shown in the SMS
  int64_t ack_timeout_ms = 10000;
  int64_t min_interval_ms = 600000;  // one SMS per user per this
  config::QuietHours quiet;
  std::shared_ptr<const TimeZone> tz = TimeZone::Utc();
};

struct FireInput {
  store::Notification n;
  std::optional<store::UserProfile> user;
  store::Chat chat;
  std::vector<store::Message> window;  // the chat's messages first_seq..last_seq
  std::optional<int64_t> last_sms_at;  // newest SMS sent to this user
  int64_t now = 0;
};

struct Decision {
  enum class Action { kCancel, kWait, kSend } action = Action::kCancel;
  std::string reason;  // cancel: why; wait: why
  int64_t wait_until = 0;
  std::string body;   // send
  std::string phone;  // send
};

Decision Decide(const FireInput& in, const Policy& p);

// When local quiet hours (if any) end, if `now_ms` is inside them.
std::optional<int64_t> QuietUntil(int64_t now_ms, const Policy& p);

}  // namespace onlined::notify
