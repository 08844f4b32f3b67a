#pragma once
// presence::Service: the presence engine across all loops.
//
// Each loop owns one shard (a PresenceTable for the users that hash to it),
// the EventLogs of the channels homed on it (channel % loops), and the list
// of manager subscribers whose connections it holds. Calls below are made
// from a loop thread and hop to the owning loop with a post; callbacks run
// back on the caller's loop. Nothing here blocks, touches disk or network,
// or runs per heartbeat: a heartbeat only writes the session's SessionCell.
//
// Event path: shard (transition) -> home loop of the channel (sequence number,
// encode once, keep for resume) -> one post per loop -> that loop's
// subscribers, in sequence order.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/loops.h"
#include "base/metrics.h"
#include "presence/event_log.h"
#include "presence/presence_table.h"
#include "presence/seams.h"

namespace onlined::presence {

struct ServiceOptions {
  PresenceTable::Options table;
  size_t event_log_capacity = 4096;
  uint64_t first_seq = 0;
  // Set by a cluster engine: the table's events go here (on the shard's
  // loop) instead of being numbered by this process; numbered events come
  // back through AppendNumbered.
  std::function<void(Event&&)> forward;
};

// A presence query's scatter and gather, for any engine sharded by ShardOf
// over `loops`: the ids are split by shard, `lookup(shard, ids, n, out)` runs
// on each shard's loop (inline when that is the caller's) and fills out[i]
// for ids[i]; `done` runs on the caller's loop with the results in the ids'
// order and the ids given back. Caller's loop only.
using ShardLookup =
    std::function<void(size_t shard, const std::string_view* ids, size_t n, UserInfo* out)>;
void ScatterQuery(base::LoopGroup& loops, ChannelIdx ch, std::vector<std::string> ids,
                  Presence::QueryDone done, ShardLookup lookup);

// The in-process engine behind the seams (presence/seams.h): one shard per
// loop of this process.
class Service final : public Presence, public Router {
 public:
  Service(base::LoopGroup& loops, base::Metrics& metrics, ServiceOptions opts);
  ~Service() override;

  // The user's session is live; `done` runs on the caller's loop once the
  // shard knows it (so a query issued after `done` sees it).
  void Open(ChannelIdx ch, std::string user_id, std::shared_ptr<SessionCell> cell,
            std::function<void()> done) override;
  void Close(ChannelIdx ch, std::string user_id, std::shared_ptr<SessionCell> cell,
             bool timed_out) override;
  void StateChanged(ChannelIdx ch, std::string user_id) override;

  // Resolves ids (in order) across shards; `done` runs on the caller's loop
  // with the results and the ids given back (no copy needed to answer).
  void Query(ChannelIdx ch, std::vector<std::string> ids, QueryDone done) override;

  // Registers `sub` (living on the caller's loop) for the channel's events.
  // Events reach it only after OnSubscribed. Returns a handle for Unsubscribe.
  uint64_t Subscribe(ChannelIdx ch, Subscriber* sub, std::optional<uint64_t> after) override;
  // Caller's loop only; after it returns `sub` is never called again.
  void Unsubscribe(uint64_t handle) override;

  // Delivers a message frame to every live session of the user, in the
  // order of calls from one thread (the store writer calls in commit order).
  // `done(had_sessions)` runs on the user's shard loop. Any thread.
  void DeliverToUser(ChannelIdx ch, std::string user_id, Payload frame, std::string chat_id,
                     int64_t seq, std::function<void(bool had_sessions)> done) override;
  // Sends a frame to every manager connection of the channel, in the order
  // of calls from one thread. Any thread.
  void PublishToChannel(ChannelIdx ch, Payload frame) override;

  // Online users per channel index, summed over shards; `done` runs on an
  // unspecified loop. Callable from any thread.
  void OnlineCounts(std::function<void(std::vector<int64_t>)> done) override;

  // Keeps and fans out an event numbered elsewhere (ServiceOptions::forward).
  // Events of one channel must come in number order from one thread; a
  // duplicate number is dropped. Any thread.
  void AppendNumbered(ChannelIdx ch, uint64_t seq, Payload frame);

  // Applies new options on every loop (grace, retention) without a restart.
  void SetTableOptions(PresenceTable::Options opts);

  size_t shards() const { return loops_.size(); }

 private:
  struct Shard;
  size_t HomeOf(ChannelIdx ch) const { return ch % loops_.size(); }
  template <class Fn>
  void RunOn(size_t loop, Fn&& fn);
  void Publish(Event&& e);              // on the shard's loop
  void Append(size_t home, Event&& e);  // on the home loop
  EventLog& LogOf(size_t home, ChannelIdx ch);
  void FanOut(ChannelIdx ch, const Payload& p);
  void Deliver(size_t loop, ChannelIdx ch, const Payload& p);

  base::LoopGroup& loops_;
  base::Metrics& metrics_;
  ServiceOptions opts_;
  std::vector<std::unique_ptr<Shard>> shards_;
  base::Metrics::Id m_events_, m_opens_, m_closes_, m_timeouts_, m_resets_;
};

}  // namespace onlined::presence
