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
    auto e = std::make_unique<ChannelEntry>(ChannelEntry{idx, c, {}});
    const config::Channel& s = e->settings;
    if (!s.secret.empty()) e->keys.push_back({"", &s.secret, auth::KeyFingerprint("", s.secret)});
    for (const config::ChannelKey& k : s.keys)
      e->keys.push_back({k.kid, &k.secret, auth::KeyFingerprint(k.kid, k.secret)});
    by_id_.emplace(c.id, std::move(e));
  }
}

const ChannelEntry* ChannelTable::Find(std::string_view id) const {
  auto it = by_id_.find(std::string(id));
  return it == by_id_.end() ? nullptr : it->second.get();
}

auth::KeyRef ChannelEntry::FindKey(const char* kid, auth::TokenError& err) const {
  if (kid == nullptr) {
    // No kid: the channel's `secret`, or its one key.
    if (!keys.empty() && (keys.front().kid.empty() || keys.size() == 1))
      return {keys.front().secret, keys.front().fingerprint};
    err = {"bad_token", "token has no kid and this channel has several keys"};
    return {};
  }
  for (const Key& k : keys) {
    if (!k.kid.empty() && k.kid == kid) return {k.secret, k.fingerprint};
  }
  err = {"bad_token", "token's kid names no key of this channel"};
  return {};
}

bool ChannelEntry::HasKey(uint64_t fingerprint) const {
  for (const Key& k : keys) {
    if (k.fingerprint == fingerprint) return true;
  }
  return false;
}

}  // namespace onlined::api
