#include "presence/presence_table.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <random>

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

namespace {

// Drawn once per process: where an id lands in the table cannot be worked out
// from outside (ids are chosen by whoever signs the tokens; with a fixed hash
// they could be picked to pile up on one run of probes).
const uint64_t kHashSeed = [] {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}();

// The 128-bit product of a and b, its halves folded (wyhash's mixing step).
inline uint64_t Mix(uint64_t a, uint64_t b) {
  const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

template <typename T>
inline uint64_t Load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

// Inline and seeded (std::hash<string_view> was a call per id, 2 % of a
// presence query's CPU): the channel and each 8 bytes go through a multiply,
// the last 0-7 bytes are read as wyhash reads them (two overlapping 4-byte
// loads, or three single bytes), and the length is mixed in after them, so
// that no difference in the length or the channel can cancel one in the
// bytes.
uint64_t PresenceTable::Hash(ChannelIdx ch, std::string_view id) {
  constexpr uint64_t kA = 0xa0761d6478bd642full;
  constexpr uint64_t kB = 0xe7037ed1a0b428dbull;
  const char* p = id.data();
  size_t n = id.size();
  uint64_t h = Mix(kHashSeed ^ ch, kA);
  for (; n >= 8; p += 8, n -= 8) h = Mix(h ^ Load<uint64_t>(p), kA);
  uint64_t tail = 0;
  if (n >= 4) {
    tail = (Load<uint32_t>(p) << 32) | Load<uint32_t>(p + n - 4);
  } else if (n > 0) {
    const auto b = [p](size_t i) {
      return static_cast<uint64_t>(static_cast<unsigned char>(p[i]));
    };
    tail = (b(0) << 16) | (b(n / 2) << 8) | b(n - 1);
  }
  // (It used to be ORed with 1, "never 0", which no probe needs: an empty
  // slot is one without a user. That made every home slot odd, and the
  // index's runs of probes as long as in a table twice as full.)
  return Mix(Mix(h ^ tail, kB) ^ id.size(), kA);
}

// One user of the shard. Its timer is the offline grace while online with no
// session, and the expiry of the record while offline.
// A lookup reads the whole record (LookupMany prefetches it), a user's only
// session's pointer included (SessionList holds one inline), and then that
// session's cell.
struct PresenceTable::User : base::TimerEntry {
  PresenceTable* table = nullptr;
  ChannelIdx ch = 0;
  bool online = false;
  bool idle = false;
  std::string id;
  SessionList sessions;
  int64_t last_seen = 0;  // from ended sessions and opens

  // What a lookup answers for `u` (nullptr: an unknown user).
  static UserInfo Info(const User* u);

  int64_t LastSeen() const {
    int64_t t = last_seen;
    for (const auto& s : sessions)
      t = std::max(t, s->last_frame_ms.load(std::memory_order_relaxed));
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
      table->GoOffline(*this, false);
    } else {
      table->Expire(*this);  // deletes this
    }
  }
};

PresenceTable::PresenceTable(base::TimingWheel& wheel, Options opts, EventSink sink,
                             const base::SteadyClock* clock)
    : wheel_(wheel), clock_(clock), opts_(opts), sink_(std::move(sink)) {}

PresenceTable::~PresenceTable() {
  for (Slot& s : slots_) delete s.user;
}

PresenceTable::User* PresenceTable::Find(ChannelIdx ch, std::string_view user_id) const {
  return FindHashed(Hash(ch, user_id), ch, user_id);
}

PresenceTable::User* PresenceTable::FindHashed(uint64_t h, ChannelIdx ch,
                                               std::string_view user_id) const {
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.user == nullptr) return nullptr;
    if (s.hash == h && s.user->ch == ch && s.user->id == user_id) return s.user;
  }
}

void PresenceTable::Insert(uint64_t h, User* u) {
  if ((count_ + 1) * 2 > slots_.size()) Grow();
  const size_t mask = slots_.size() - 1;
  size_t i = h & mask;
  while (slots_[i].user != nullptr) i = (i + 1) & mask;
  slots_[i] = Slot{h, u};
  ++count_;
}

void PresenceTable::Grow() {
  std::vector<Slot> old(slots_.size() * 2);
  old.swap(slots_);
  const size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.user == nullptr) continue;
    size_t i = s.hash & mask;
    while (slots_[i].user != nullptr) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

// Deletes the record; later entries of the probe run move back into the
// hole (no tombstones), so lookups stay short after churn.
void PresenceTable::Erase(uint64_t h, const User* u) {
  const size_t mask = slots_.size() - 1;
  size_t i = h & mask;
  while (slots_[i].user != u) i = (i + 1) & mask;
  delete slots_[i].user;
  slots_[i] = Slot{};
  --count_;
  for (size_t j = (i + 1) & mask; slots_[j].user != nullptr; j = (j + 1) & mask) {
    size_t home = slots_[j].hash & mask;
    // Entry j may fill the hole at i unless its home lies cyclically in (i, j].
    bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    slots_[i] = slots_[j];
    slots_[j] = Slot{};
    i = j;
  }
}

void PresenceTable::AddOnline(ChannelIdx ch, int64_t d) {
  if (online_by_channel_.size() <= ch) online_by_channel_.resize(ch + 1, 0);
  online_by_channel_[ch] += d;
}

void PresenceTable::Emit(const User& u, bool timed_out) {
  sink_(Event{u.ch, u.id, u.online, u.LastSeen(), u.idle, static_cast<uint32_t>(u.sessions.size()),
              timed_out});
}

void PresenceTable::Open(ChannelIdx ch, std::string_view user_id, std::shared_ptr<SessionCell> cell,
                         int64_t wall_now) {
  thread_.Check();
  const uint64_t h = Hash(ch, user_id);
  User* u = FindHashed(h, ch, user_id);
  if (u == nullptr) {
    u = new User();
    u->table = this;
    u->ch = ch;
    u->id.assign(user_id);
    Insert(h, u);
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
  } else if (idle != u->idle || opts_.emit_session_counts) {
    u->idle = idle;
    Emit(*u);
  }
}

void PresenceTable::Close(ChannelIdx ch, std::string_view user_id, const SessionCell* cell,
                          bool timed_out) {
  thread_.Check();
  User* u = Find(ch, user_id);
  if (u == nullptr) return;
  auto it = std::find_if(u->sessions.begin(), u->sessions.end(),
                         [cell](const auto& s) { return s.get() == cell; });
  if (it == u->sessions.end()) return;
  u->last_seen = std::max(u->last_seen, (*it)->last_frame_ms.load(std::memory_order_relaxed));
  u->sessions.erase(it);
  if (!u->sessions.empty()) {
    bool idle = u->BestIdle();
    if (idle != u->idle || opts_.emit_session_counts) {
      u->idle = idle;
      Emit(*u);
    }
    return;
  }
  if (timed_out || opts_.offline_grace_ms <= 0) {
    GoOffline(*u, timed_out);
  } else {
    // From the close itself: the wheel's time is as old as its last tick.
    const int64_t now = clock_ ? std::max(wheel_.now_ms(), clock_->Now()) : wheel_.now_ms();
    wheel_.Schedule(u, now + opts_.offline_grace_ms);
  }
}

void PresenceTable::StateChanged(ChannelIdx ch, std::string_view user_id) {
  thread_.Check();
  User* u = Find(ch, user_id);
  if (u == nullptr || !u->online || u->sessions.empty()) return;
  bool idle = u->BestIdle();
  if (idle == u->idle) return;
  u->idle = idle;
  Emit(*u);
}

void PresenceTable::GoOffline(User& u, bool timed_out) {
  assert(u.online && u.sessions.empty());
  u.online = false;
  u.idle = false;
  AddOnline(u.ch, -1);
  Emit(u, timed_out);
  wheel_.Schedule(&u, wheel_.now_ms() + opts_.retain_offline_ms);
}

void PresenceTable::Expire(User& u) {
  assert(!u.online && u.sessions.empty());
  Erase(Hash(u.ch, u.id), &u);  // destroys u
}

UserInfo PresenceTable::User::Info(const User* u) {
  if (u == nullptr) return {};
  return UserInfo{.last_seen = u->LastSeen(),
                  .sessions = static_cast<uint32_t>(u->sessions.size()),
                  .online = u->online,
                  .idle = u->idle};
}

UserInfo PresenceTable::Lookup(ChannelIdx ch, std::string_view user_id) const {
  thread_.Check();
  return User::Info(Find(ch, user_id));
}

// A lookup is a chain of dependent cache misses (slot, record, session cell;
// a user with more than one session adds the list's own), and on a busy
// server none of them is cached. Done for a group of ids stage by stage,
// with each stage prefetching what the next reads, the misses of the group
// overlap instead of adding up.
void PresenceTable::LookupMany(ChannelIdx ch, const std::string_view* ids, size_t n,
                               UserInfo* out) const {
  thread_.Check();
  static_assert(sizeof(User) <= 192, "three prefetches (first, second, last byte) cover a record");
  constexpr size_t kGroup = 16;
  uint64_t h[kGroup];
  const User* u[kGroup];
  const size_t mask = slots_.size() - 1;
  for (size_t base = 0; base < n; base += kGroup) {
    const size_t m = std::min(kGroup, n - base);
    for (size_t k = 0; k < m; ++k) {
      h[k] = Hash(ch, ids[base + k]);
      __builtin_prefetch(&slots_[h[k] & mask]);
    }
    for (size_t k = 0; k < m; ++k) {
      u[k] = nullptr;
      for (size_t i = h[k] & mask; slots_[i].user != nullptr; i = (i + 1) & mask) {
        if (slots_[i].hash == h[k]) {
          u[k] = slots_[i].user;
          auto* p = reinterpret_cast<const char*>(u[k]);
          __builtin_prefetch(p);
          __builtin_prefetch(p + 64);
          __builtin_prefetch(p + sizeof(User) - 1);
          break;
        }
      }
    }
    for (size_t k = 0; k < m; ++k) {
      // A 64-bit hash that matches another user's: rare, take the slow path.
      if (u[k] != nullptr && (u[k]->ch != ch || u[k]->id != ids[base + k]))
        u[k] = FindHashed(h[k], ch, ids[base + k]);
      if (u[k] != nullptr && !u[k]->sessions.empty())
        __builtin_prefetch(u[k]->sessions.front().get());
    }
    for (size_t k = 0; k < m; ++k) out[base + k] = User::Info(u[k]);
  }
}

const PresenceTable::SessionList& PresenceTable::Sessions(ChannelIdx ch,
                                                          std::string_view user_id) const {
  static const SessionList kNone;
  const User* u = Find(ch, user_id);
  return u == nullptr ? kNone : u->sessions;
}

int64_t PresenceTable::OnlineCount(ChannelIdx ch) const {
  thread_.Check();
  return ch < online_by_channel_.size() ? online_by_channel_[ch] : 0;
}

}  // namespace onlined::presence
