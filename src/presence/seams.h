#pragma once
// The seams a cluster fills. Today presence::Service (one process, one shard
// per loop) implements both; a NATS-backed engine implements them next,
// without api/ or chat/ knowing which one they talk to.
//
// Presence: sessions open, close and change state on the node that holds
// them; queries and the channel's event stream answer from memory.
// Router: where a committed message's frame goes (the user's live sessions,
// the channel's managers), in the order of calls from one thread.
//
// Threads: every call is made from a loop thread unless it says "any
// thread"; callbacks run on the caller's loop unless they say otherwise.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "presence/event_log.h"
#include "presence/presence_table.h"

namespace onlined::presence {

// A manager connection's view of the channel: presence events, messages,
// receipts. Lives on one loop; called only there.
class Subscriber {
 public:
  virtual ~Subscriber() = default;
  virtual void OnChannelFrame(const Payload& frame) = 0;
  // The answer to Subscribe: `replay` holds the events after the asked
  // number (empty if none was asked), or `reset` is true when they are no
  // longer kept. `last_seq` is the channel's newest event number.
  virtual void OnSubscribed(std::vector<Payload> replay, bool reset, uint64_t last_seq) = 0;
};

class Presence {
 public:
  virtual ~Presence() = default;
  // The user's session is live; `done` runs on the caller's loop once the
  // engine knows it (so a query issued after `done` sees it).
  virtual void Open(ChannelIdx ch, std::string user_id, std::shared_ptr<SessionCell> cell,
                    std::function<void()> done) = 0;
  virtual void Close(ChannelIdx ch, std::string user_id, std::shared_ptr<SessionCell> cell,
                     bool timed_out) = 0;
  // A session's `idle` changed (the cell holds the new value).
  virtual void StateChanged(ChannelIdx ch, std::string user_id) = 0;

  // Resolves ids (in order); `done` runs on the caller's loop with the
  // results and the ids given back.
  using QueryDone = std::function<void(std::vector<UserInfo> found, std::vector<std::string> ids)>;
  virtual void Query(ChannelIdx ch, std::vector<std::string> ids, QueryDone done) = 0;

  // Registers `sub` (living on the caller's loop) for the channel's events,
  // after `after` if given (a resume). Returns a handle for Unsubscribe.
  virtual uint64_t Subscribe(ChannelIdx ch, Subscriber* sub, std::optional<uint64_t> after) = 0;
  // Caller's loop only; after it returns `sub` is never called again.
  virtual void Unsubscribe(uint64_t handle) = 0;

  // Online users per channel index; `done` runs on an unspecified thread.
  // Any thread.
  virtual void OnlineCounts(std::function<void(std::vector<int64_t>)> done) = 0;

  // How this node stands in its cluster ("joined", "joining",
  // "nats_unreachable") for /readyz; nullptr when there is no cluster.
  // Any thread.
  virtual const char* Standing() const { return nullptr; }
};

class Router {
 public:
  virtual ~Router() = default;
  // Delivers a message frame to every live session of the user, in the order
  // of calls from one thread (the store writer calls in commit order).
  // `done(had_sessions)` runs on an unspecified thread. Any thread.
  virtual void DeliverToUser(ChannelIdx ch, std::string user_id, Payload frame, std::string chat_id,
                             int64_t seq, std::function<void(bool had_sessions)> done) = 0;
  // Sends a frame to every manager connection of the channel, in the order
  // of calls from one thread. Any thread.
  virtual void PublishToChannel(ChannelIdx ch, Payload frame) = 0;
};

}  // namespace onlined::presence
