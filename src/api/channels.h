#pragma once
// Channels: the tenants this node serves, as an immutable snapshot that a
// reload (SIGHUP) replaces whole. A channel keeps its small index for the
// process lifetime (presence shards and metrics key on it), even across
// reloads; a channel removed by a reload refuses new tokens at once.
#include <atomic>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "auth/token.h"
#include "config/config.h"
#include "presence/presence_table.h"

namespace onlined::api {

struct ChannelEntry {
  presence::ChannelIdx idx;
  config::Channel settings;
  // The keys that verify the channel's tokens: `secret` (kid "") and
  // [[channels.keys]], each with its fingerprint.
  struct Key {
    std::string_view kid;
    const std::string* secret;
    uint64_t fingerprint;
  };
  std::vector<Key> keys;

  // The key a token's `kid` names (nullptr: none given, then the channel's
  // `secret`, or its only key); a null secret and `err` when there is none.
  auth::KeyRef FindKey(const char* kid, auth::TokenError& err) const;
  // Whether the key of this fingerprint still verifies tokens.
  bool HasKey(uint64_t fingerprint) const;
};

class ChannelTable {
 public:
  // Builds a table for `channels`, keeping the indexes `prev` gave (if any).
  ChannelTable(const std::vector<config::Channel>& channels, const ChannelTable* prev);

  const ChannelEntry* Find(std::string_view id) const;
  // Every channel name ever indexed, by index ("" never).
  const std::vector<std::string>& names() const { return names_; }

 private:
  // Entries point into their own settings: built in place, never moved.
  std::unordered_map<std::string, std::unique_ptr<ChannelEntry>> by_id_;
  std::vector<std::string> names_;
};

// Holder of the current snapshot. Thread-safe.
class Channels {
 public:
  explicit Channels(const std::vector<config::Channel>& channels)
      : table_(std::make_shared<const ChannelTable>(channels, nullptr)) {}
  std::shared_ptr<const ChannelTable> Get() const { return table_.load(std::memory_order_acquire); }
  void Replace(const std::vector<config::Channel>& channels) {
    auto next = std::make_shared<const ChannelTable>(channels, Get().get());
    table_.store(std::move(next), std::memory_order_release);
  }

 private:
  std::atomic<std::shared_ptr<const ChannelTable>> table_;
};

}  // namespace onlined::api
