#pragma once
// cluster::Engine: the presence and delivery seams (presence/seams.h) over
// NATS, for many onlined nodes sharing one PostgreSQL store.
//
// Each node owns its sessions (a presence::Service with no grace: its table
// says only "this node holds n sessions of the user") and keeps a replica of
// every user's shares: per node, the sessions, idle and last_seen. Shares
// travel as Deltas (one stream per loop of the sender, numbered, batched per
// loop turn); a joining node or one that lost a Delta asks for a Snapshot.
// Queries and the chat list read the replica on the loop that owns the user
// (the same ShardOf as the local table): local memory, never the network.
//
// Presence events: every channel has a home node (rendezvous hash of the
// channel over the live, ready nodes). The home compares a user's shares
// with what the channel's stream last said of the user, applies the grace
// once, and appends the event to JetStream (subject onl.pev.<channel>) with
// compare-and-set on the subject's last sequence: a stale home (a frozen
// node that wakes, two homes during a change of membership) is refused and
// numbers nothing. Every node consumes the stream in order and fans the
// events out to its desks with the same event_seq; the stream's creation
// time seeds the numbers, so a lost stream shows as presence_reset.
//
// Death: a peer whose NATS connection drops is gone at once (the server's
// DISCONNECT advisory names the connection "onlined <node> <boot>"); one
// that stops beating (SIGSTOP, a partition) after `dead_after_ms`. Its
// shares are dropped everywhere; homes then apply the grace. A peer seen
// again after being dropped is re-read from a snapshot of what it holds now.
//
// Delivery: a committed message goes to the local sessions and, through
// onl.dl.<node>, to the nodes the replica says hold the user's sessions;
// desk frames go to onl.desk.<channel>, to which only nodes with desks of
// the channel subscribe. Heartbeats never leave the node.
//
// Threads: the seams' calls are made on loops, as for presence::Service.
// NATS callbacks run on nats.c's threads and only parse, check and post to
// loops; the engine's own thread beats, detects deaths and publishes events
// (blocking JetStream calls never run on a loop).
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/loops.h"
#include "base/metrics.h"
#include "presence/seams.h"
#include "presence/service.h"

namespace onlined::cluster {

struct Options {
  std::string node_id;
  std::vector<std::string> nats_urls;
  std::vector<std::string> channels;  // ids, in ChannelIdx order
  int64_t offline_grace_ms = 10000;
  int64_t retain_offline_ms = 24 * 3600 * 1000;
  size_t event_log_capacity = 4096;
  int64_t beat_ms = 1000;
  int64_t dead_after_ms = 3000;
  int stream_replicas = 3;            // JetStream replicas of the presence stream
  int64_t stream_per_channel = 1024;  // event batches kept per channel (the resume window)
  int64_t join_wait_ms = 2000;        // at most this long waiting for peers' snapshots
  // Reads a chat's messages in (after, upto] from the store, encoded as
  // frames, for a gap in what reached this node; `done` on any thread, with
  // what it found (nothing if the store failed).
  using Frames = std::vector<std::pair<int64_t, presence::Payload>>;
  std::function<void(std::string chat_id, int64_t after, int64_t upto,
                     std::function<void(Frames)> done)>
      heal;
};

class Engine final : public presence::Presence, public presence::Router {
 public:
  // Connects to NATS (retrying in the background if it is not there yet).
  // Throws std::runtime_error for settings NATS refuses.
  Engine(base::LoopGroup& loops, base::Metrics& metrics, Options opts);
  ~Engine() override;

  // After the loops run: joins the cluster (peers' snapshots, the stream).
  void Start();
  // Says goodbye to the peers (they drop this node at once) and disconnects.
  void Stop();

  void Open(presence::ChannelIdx ch, std::string user_id,
            std::shared_ptr<presence::SessionCell> cell, std::function<void()> done) override;
  void Close(presence::ChannelIdx ch, std::string user_id,
             std::shared_ptr<presence::SessionCell> cell, bool timed_out) override;
  void StateChanged(presence::ChannelIdx ch, std::string user_id) override;
  void Query(presence::ChannelIdx ch, std::vector<std::string> ids, QueryDone done) override;
  uint64_t Subscribe(presence::ChannelIdx ch, presence::Subscriber* sub,
                     std::optional<uint64_t> after) override;
  void Unsubscribe(uint64_t handle) override;
  void OnlineCounts(std::function<void(std::vector<int64_t>)> done) override;
  const char* Standing() const override;

  void DeliverToUser(presence::ChannelIdx ch, std::string user_id, presence::Payload frame,
                     std::string chat_id, int64_t seq,
                     std::function<void(bool had_sessions)> done) override;
  void PublishToChannel(presence::ChannelIdx ch, presence::Payload frame) override;

  void SetGrace(int64_t offline_grace_ms);

  // Connected to NATS; joined: the peers read and the presence stream
  // consumed, so desks here miss no event (for /readyz). Any thread.
  bool connected() const;
  bool joined() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace onlined::cluster
