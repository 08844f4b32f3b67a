#pragma once
// Time zones from the system's TZif files (/usr/share/zoneinfo), for quiet
// hours in a channel's local time. libstdc++ 12 has no std::chrono tzdb.
// Immutable after Load; thread-safe.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace onlined::notify {

class TimeZone {
 public:
  // Loads `name` ("UTC", "Asia/Seoul", ...). Returns nullptr if unknown or
  // unreadable.
  static std::shared_ptr<const TimeZone> Load(const std::string& name);
  static std::shared_ptr<const TimeZone> Utc();

  // Seconds to add to UTC at the instant `utc_s` (seconds since the epoch).
  // After the file's last transition the last offset holds (the footer's
  // rule for later years is not applied).
  int32_t OffsetAt(int64_t utc_s) const;

 private:
  std::vector<int64_t> transitions_;  // ascending
  std::vector<int32_t> offsets_;      // offset in force from transitions_[i]
  int32_t initial_ = 0;
};

}  // namespace onlined::notify
