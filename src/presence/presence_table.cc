#include "presence/presence_table.h"

#include <algorithm>
#include <cassert>

namespace onlined::presence {

namespace {
// FNV-1a: stable across runs and platforms, so shard placement is too.
uint64_t Fnv1a(uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}
}  // namespace

size_t ShardOf(ChannelIdx ch, std::string_view user_id, size_t shards) {
  uint64_t h = 1469598103934665603ull ^ (static_cast<uint64_t>(ch) * 0x9E3779B97F4A7C15ull);
  return static_cast<size_t>(Fnv1a(h, user_id) % shards);
}

size_t PresenceTable::KeyHash::operator()(const Key& k) const {
  return std::hash<std::string_view>{}(k.id) ^ (static_cast<size_t>(k.ch) * 0x9E3779B97F4A7C15ull);
}

// One user of the shard. Its timer is the offline grace while online with no
// session, and the expiry of the record while offline.
struct PresenceTable::User : base::TimerEntry {
  PresenceTable* table = nullptr;
  ChannelIdx ch = 0;
  std::string id;
  std::vector<std::shared_ptr<SessionCell>> sessions;
  int64_t last_seen = 0;  // from ended sessions and opens
  bool online = false;
  bool idle = false;

  int64_t LastSeen() const {
    int64_t t = last_seen;
    for (const auto& s : sessions) t = std::max(t, s->last_frame_ms.load(std::memory_order_relaxed));
    return t;
  }
  bool BestIdle() const {
    if (sessions.empty()) return idle;
    for (const auto& s : sessions) {
      if (!s->idle.load(std::memory_order_relaxed)) return false;
    }
    return true;
  }
  void OnTimer(int64_t) override {
    if (online) {
      table->GoOffline(*this);
    } else {
      table->Expire(*this);  // deletes this
    }
  }
};

PresenceTable::PresenceTable(base::TimingWheel& wheel, Options opts, EventSink sink)
    : wheel_(wheel), opts_(opts), sink_(std::move(sink)) {}

PresenceTable::~PresenceTable() = default;

PresenceTable::User* PresenceTable::Find(ChannelIdx ch, std::string_view user_id) const {
  auto it = users_.find(Key{ch, user_id});
  return it == users_.end() ? nullptr : it->second.get();
}

void PresenceTable::AddOnline(ChannelIdx ch, int64_t d) {
  if (online_by_channel_.size() <= ch) online_by_channel_.resize(ch + 1, 0);
  online_by_channel_[ch] += d;
}

void PresenceTable::Emit(const User& u) {
  sink_(Event{u.ch, u.id, u.online, u.LastSeen(), u.idle});
}

void PresenceTable::Open(ChannelIdx ch, std::string_view user_id, std::shared_ptr<SessionCell> cell,
                         int64_t wall_now) {
  User* u = Find(ch, user_id);
  if (u == nullptr) {
    auto rec = std::make_unique<User>();
    rec->table = this;
    rec->ch = ch;
    rec->id.assign(user_id);
    u = rec.get();
    users_.emplace(Key{ch, u->id}, std::move(rec));
  }
  wheel_.Cancel(u);  // grace or expiry
  u->last_seen = std::max(u->last_seen, wall_now);
  u->sessions.push_back(std::move(cell));
  bool idle = u->BestIdle();
  if (!u->online) {
    u->online = true;
    u->idle = idle;
    AddOnline(ch, 1);
    Emit(*u);
  } else if (idle != u->idle) {
    u->idle = idle;
    Emit(*u);
  }
}

void PresenceTable::Close(ChannelIdx ch, std::string_view user_id, const SessionCell* cell,
                          bool timed_out) {
  User* u = Find(ch, user_id);
  if (u == nullptr) return;
  auto it = std::find_if(u->sessions.begin(), u->sessions.end(),
                         [cell](const auto& s) { return s.get() == cell; });
  if (it == u->sessions.end()) return;
  u->last_seen = std::max(u->last_seen, (*it)->last_frame_ms.load(std::memory_order_relaxed));
  u->sessions.erase(it);
  if (!u->sessions.empty()) {
    StateChanged(ch, user_id);
    return;
  }
  if (timed_out) {
    GoOffline(*u);
  } else {
    wheel_.Schedule(u, wheel_.now_ms() + opts_.offline_grace_ms);
  }
}

void PresenceTable::StateChanged(ChannelIdx ch, std::string_view user_id) {
  User* u = Find(ch, user_id);
  if (u == nullptr || !u->online || u->sessions.empty()) return;
  bool idle = u->BestIdle();
  if (idle == u->idle) return;
  u->idle = idle;
  Emit(*u);
}

void PresenceTable::GoOffline(User& u) {
  assert(u.online && u.sessions.empty());
  u.online = false;
  u.idle = false;
  AddOnline(u.ch, -1);
  Emit(u);
  wheel_.Schedule(&u, wheel_.now_ms() + opts_.retain_offline_ms);
}

void PresenceTable::Expire(User& u) {
  assert(!u.online && u.sessions.empty());
  users_.erase(Key{u.ch, u.id});  // destroys u
}

UserInfo PresenceTable::Lookup(ChannelIdx ch, std::string_view user_id) const {
  const User* u = Find(ch, user_id);
  if (u == nullptr) return {};
  return UserInfo{u->online, static_cast<uint32_t>(u->sessions.size()), u->LastSeen(), u->idle};
}

const std::vector<std::shared_ptr<SessionCell>>& PresenceTable::Sessions(ChannelIdx ch,
                                                                         std::string_view user_id) const {
  static const std::vector<std::shared_ptr<SessionCell>> kNone;
  const User* u = Find(ch, user_id);
  return u == nullptr ? kNone : u->sessions;
}

int64_t PresenceTable::OnlineCount(ChannelIdx ch) const {
  return ch < online_by_channel_.size() ? online_by_channel_[ch] : 0;
}

}  // namespace onlined::presence
