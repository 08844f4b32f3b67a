#include "api/channels.h"

namespace onlined::api {

ChannelTable::ChannelTable(const std::vector<config::Channel>& channels, const ChannelTable* prev) {
  if (prev != nullptr) names_ = prev->names_;
  for (const config::Channel& c : channels) {
    presence::ChannelIdx idx = 0;
    bool found = false;
    for (size_t i = 0; i < names_.size(); ++i) {
      if (names_[i] == c.id) {
        idx = static_cast<presence::ChannelIdx>(i);
        found = true;
        break;
      }
    }
    if (!found) {
      idx = static_cast<presence::ChannelIdx>(names_.size());
      names_.push_back(c.id);
    }
    by_id_.emplace(c.id, ChannelEntry{idx, c});
  }
}

const ChannelEntry* ChannelTable::Find(std::string_view id) const {
  auto it = by_id_.find(std::string(id));
  return it == by_id_.end() ? nullptr : &it->second;
}

}  // namespace onlined::api
