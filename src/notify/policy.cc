#include "notify/policy.h"

#include <spdlog/spdlog.h>

namespace onlined::notify {

std::shared_ptr<const Policies> Policies::Build(const std::vector<config::Channel>& channels) {
  auto out = std::make_shared<Policies>();
  for (const config::Channel& ch : channels) {
    Policy p;
    p.channel_name = ch.id;
    p.ack_timeout_ms = int64_t{ch.ack_timeout_s} * 1000;
    p.min_interval_ms = int64_t{ch.sms_min_interval_s} * 1000;
    p.quiet = ch.quiet_hours;
    p.tz = TimeZone::Load(ch.time_zone);
    if (!p.tz) {
      spdlog::warn("channel {}: time zone '{}' could not be read; quiet hours in UTC", ch.id,
                   ch.time_zone);
      p.tz = TimeZone::Utc();
    }
    out->by_channel_[ch.id] = std::move(p);
  }
  return out;
}

const Policy* Policies::Find(std::string_view channel) const {
  auto it = by_channel_.find(channel);
  return it == by_channel_.end() ? nullptr : &it->second;
}

}  // namespace onlined::notify
