#pragma once
// PresenceTable: the users of one shard and their live sessions.
//
// Owned by one loop (its thread); not thread-safe. A user belongs to the
// shard chosen by ShardOf(channel, user). Sessions themselves live on the
// loop that holds their connection; the table keeps a reference to each
// session's SessionCell, which that loop writes on every frame (single
// writer, relaxed atomics) and the table reads only when asked.
//
// The table turns session opens and closes into online/offline transitions
// with the offline grace, and emits an Event for every change of a user's
// online flag or best state. Grace and record expiry run on the loop's
// TimingWheel (steady ms); last_seen is wall ms.
#include <atomic>
#include <boost/container/small_vector.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/thread_checker.h"
#include "base/timing_wheel.h"

namespace onlined::presence {

using ChannelIdx = uint32_t;

// Which of `shards` owns (channel, user). Stable for the process lifetime.
size_t ShardOf(ChannelIdx ch, std::string_view user_id, size_t shards);

// Where a user's session takes the messages of its chats. Lives on one
// loop; called only there.
class MessageSink {
 public:
  virtual ~MessageSink() = default;
  virtual void OnChatMessage(const std::shared_ptr<const std::string>& frame,
                             const std::string& chat_id, int64_t seq) = 0;
};

// The part of a live session the table reads. The atomics are written only
// by the session's own loop and read by the user's shard. `loop`, `sink` and
// `alive` are set before the session is opened and never change; `sink` may
// be used only on `loop`, after locking `alive`.
struct SessionCell {
  std::atomic<int64_t> last_frame_ms{0};  // wall ms of the last frame
  std::atomic<bool> idle{false};
  size_t loop = 0;
  MessageSink* sink = nullptr;
  std::weak_ptr<void> alive;
};

struct UserInfo {
  int64_t last_seen = 0;  // 0: never seen since this node started
  uint32_t sessions = 0;
  bool online = false;
  bool idle = false;
};

struct Event {
  ChannelIdx channel = 0;
  std::string user_id;
  bool online = false;
  int64_t last_seen = 0;
  bool idle = false;
  uint32_t sessions = 0;   // the user's live sessions in this table
  bool timed_out = false;  // offline because the last session went silent
};

class PresenceTable {
 public:
  struct Options {
    int64_t offline_grace_ms = 10000;
    int64_t retain_offline_ms = 24 * 3600 * 1000;  // forget last_seen after this
    // Also emit when only the number of sessions changed (a cluster node
    // tells its peers every change of its share of a user).
    bool emit_session_counts = false;
  };
  using EventSink = std::function<void(Event&&)>;
  // A user's live sessions. Nearly every user has one, held inline in the
  // user's record: a lookup reads it without another cache miss, and the
  // record needs no second allocation.
  using SessionList = boost::container::small_vector<std::shared_ptr<SessionCell>, 1>;

  // `wheel` must outlive the table and run on the same thread. `clock`, if
  // given, is the steady clock the wheel runs on, read when a session closes
  // so that the grace runs from the close itself: the wheel's own time is as
  // old as its last tick, and a grace counted from it ended up to a tick
  // early. It must outlive the table.
  PresenceTable(base::TimingWheel& wheel, Options opts, EventSink sink,
                const base::SteadyClock* clock = nullptr);
  ~PresenceTable();

  void set_options(Options opts) { opts_ = opts; }

  // A session of the user became live; `wall_now` becomes its last_seen.
  void Open(ChannelIdx ch, std::string_view user_id, std::shared_ptr<SessionCell> cell,
            int64_t wall_now);
  // A session ended. `timed_out`: it went silent past the heartbeat timeout;
  // the user then turns offline at once if it was the last session (the
  // silence already outlasted any grace). Otherwise the grace applies.
  void Close(ChannelIdx ch, std::string_view user_id, const SessionCell* cell, bool timed_out);
  // A session's idle flag changed: re-derive the user's best state.
  void StateChanged(ChannelIdx ch, std::string_view user_id);

  UserInfo Lookup(ChannelIdx ch, std::string_view user_id) const;
  // Lookup of many users at once (a presence query's part): out[i] for
  // ids[i]. Overlaps the cache misses of the ids instead of taking them one
  // after another.
  void LookupMany(ChannelIdx ch, const std::string_view* ids, size_t n, UserInfo* out) const;
  // The user's live sessions (empty if none). Valid until the next call.
  const SessionList& Sessions(ChannelIdx ch, std::string_view user_id) const;
  int64_t OnlineCount(ChannelIdx ch) const;
  // Channel indexes [0, channel_slots()) may have online users.
  size_t channel_slots() const { return online_by_channel_.size(); }
  size_t size() const { return count_; }
  // Where an id lands in the index (its low bits pick the home slot), seeded
  // per process. Public for its test.
  static uint64_t Hash(ChannelIdx ch, std::string_view id);

 private:
  base::ThreadChecker thread_;  // the shard's loop: every call is made there
  struct User;
  // The index: open addressing, linear probing, at most half full. A slot
  // holds the key's full hash beside the record, so a probe touches the
  // record only on a hash match.
  struct Slot {
    uint64_t hash = 0;
    User* user = nullptr;  // owned; nullptr: empty
  };
  User* Find(ChannelIdx ch, std::string_view user_id) const;
  User* FindHashed(uint64_t h, ChannelIdx ch, std::string_view user_id) const;
  void Insert(uint64_t h, User* u);
  void Erase(uint64_t h, const User* u);
  void Grow();
  void Emit(const User& u, bool timed_out = false);
  void GoOffline(User& u, bool timed_out);
  void Expire(User& u);
  void AddOnline(ChannelIdx ch, int64_t d);

  base::TimingWheel& wheel_;
  const base::SteadyClock* clock_;  // nullptr: the wheel's time
  Options opts_;
  EventSink sink_;
  std::vector<Slot> slots_ = std::vector<Slot>(64);
  size_t count_ = 0;
  std::vector<int64_t> online_by_channel_;
};

}  // namespace onlined::presence
