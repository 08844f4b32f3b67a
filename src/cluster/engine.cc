#include "cluster/engine.h"

#include <nats/nats.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "base/clock.h"
#include "cluster/order.h"
#include "cluster/wire.h"
#include "proto/frames.h"

namespace onlined::cluster {

using presence::ChannelIdx;
using presence::Payload;

namespace {

constexpr const char* kStream = "ONLINED_PRESENCE";
constexpr size_t kChunkBytes = 512 * 1024;       // a snapshot chunk, well under NATS's 1 MB
constexpr size_t kDeltaBytes = 256 * 1024;       // a Deltas message
constexpr size_t kMaxEventQueue = 262144;        // events waiting for the stream
constexpr size_t kMaxBuffered = 4096;            // Deltas held while a peer's snapshot comes
constexpr size_t kMaxBufferedBytes = 256 << 20;  // and their decoded size, at most
constexpr size_t kAppendEvents = 4096;           // events per append: < 1 MB with 64-byte ids
constexpr uint32_t kMaxPeerShards = 1024;
constexpr uint32_t kSelf = 0;  // the replica's index of this node

// What a decoded Deltas holds in memory, about: its entries and their ids.
size_t DecodedBytes(const Deltas& d) {
  size_t n = sizeof(Deltas) + d.users.size() * sizeof(UserEntry);
  for (const UserEntry& u : d.users) n += u.channel.size() + u.user.size();
  return n;
}

uint64_t Mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

// Rendezvous (highest random weight) score of a node for a channel: every
// node computes the same home from the same live set, and a change of one
// node moves only the channels it wins or held.
uint64_t Score(std::string_view node, std::string_view channel) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : node) h = (h ^ c) * 1099511628211ull;
  h = (h ^ 0xff) * 1099511628211ull;
  for (unsigned char c : channel) h = (h ^ c) * 1099511628211ull;
  return Mix(h);
}

std::string RecKey(ChannelIdx ch, std::string_view user) {
  std::string k(reinterpret_cast<const char*>(&ch), sizeof ch);
  k.append(user);
  return k;
}

std::string Status(natsStatus s) { return natsStatus_GetText(s); }

}  // namespace

struct Share {
  uint32_t peer = 0;
  uint32_t sessions = 0;
  bool idle = false;
  int64_t last_seen = 0;
  uint64_t gen = 0;  // the snapshot generation that set it (a peer's re-read)
};

struct Shard;

// One user as the cluster knows it. Its timer is the grace while this node
// is the channel's home and the user has no share left, else the expiry of
// an offline record.
struct Rec : base::TimerEntry {
  Shard* shard = nullptr;
  ChannelIdx ch = 0;
  std::string user, key;
  std::vector<Share> shares;
  int64_t last_seen = 0;
  bool timed_out = false;  // the last share ended by a heartbeat timeout
  bool pub_known = false, pub_online = false, pub_idle = false;
  bool pending = false, pend_online = false, pend_idle = false;
  bool in_grace = false;
  // Delivery to this node's sessions of the user, in seq order once each
  // (cluster/order.h).
  DeliveryOrder order;
  void OnTimer(int64_t now_ms) override;
  bool HasSessionHere() const;

  uint32_t Sessions() const {
    uint32_t n = 0;
    for (const Share& s : shares) n += s.sessions;
    return n;
  }
  bool AllIdle() const {
    for (const Share& s : shares) {
      if (!s.idle) return false;
    }
    return true;
  }
  bool Online() const { return !shares.empty() || (pub_known && pub_online); }
};

struct Shard {
  Engine::Impl* impl = nullptr;
  size_t index = 0;
  std::unordered_map<std::string, std::unique_ptr<Rec>> recs;
  std::vector<char> home;                                // by channel: this node decides its events
  std::unordered_map<uint32_t, std::string> dl_subject;  // peer index -> onl.dl.<node>
  std::vector<UserEntry> out;                            // this node's changes, not yet sent
  bool flush_posted = false;
  std::atomic<uint64_t> out_seq{0};
  int64_t grace_ms = 0;
  int64_t retain_ms = 0;
};

struct Peer {
  std::string node;
  uint64_t boot = 0;
  uint32_t ix = 0;
  int64_t last_beat = 0;  // steady ms
  bool ready = false;
  std::vector<uint64_t> applied;    // per shard of the peer: last Deltas seq applied
  std::vector<uint64_t> prev_beat;  // the seqs its previous beat announced
  bool syncing = false;
  uint64_t gen = 0;
  std::vector<char> shard_done;
  std::vector<Deltas> buffered;
  size_t buffered_bytes = 0;  // what `buffered` holds, about (DecodedBytes)
  int64_t sync_started = 0;
};

struct QueuedEvent {
  ChannelIdx ch;
  PresenceEvent ev;
};

struct ChanState {
  uint64_t stream_seq = 0;  // the stream sequence of the subject's last message
  uint64_t last_event = 0;  // the event_seq of the last event in it (0: none yet)
  uint64_t consumed = 0;    // the stream sequence of the subject's last message consumed here
};

struct Engine::Impl {
  Impl(base::LoopGroup& l, base::Metrics& m, Options o);

  // --- on shard loops ---
  void OnLocal(presence::Event&& e);
  Rec& GetRec(Shard& s, ChannelIdx ch, std::string_view user);
  void SetShare(Rec& r, uint32_t peer, uint32_t sessions, bool idle, int64_t last_seen,
                bool timed_out, uint64_t gen);
  void Changed(Rec& r);
  void Reconcile(Rec& r);
  void Emit(Rec& r, bool online, bool idle);
  void Flush(Shard& s);
  void SnapshotShard(Shard& s, const std::string& reply);
  void Sequence(Shard& s, Rec& r, const std::string& chat, int64_t seq, Payload frame);
  // The store's answer to a record's heal, back on its shard's loop.
  void Healed(Shard& s, const std::string& key, uint32_t epoch, int64_t upto, Options::Frames got);
  struct OrderSink;

  // --- anywhere, under mu_ where it says so ---
  void PostAll(const std::function<void(Shard&)>& fn);
  template <class Fn>
  void PostTo(size_t shard, Fn&& fn) {
    loops.Post(shard, [this, shard, fn = std::forward<Fn>(fn)]() mutable { fn(*shards[shard]); });
  }
  void ApplyEntries(uint32_t ix, uint64_t gen, std::vector<UserEntry>&& users, bool snapshot);
  void DropPeerLocked(const std::string& node, const char* why);
  void RequestSnapshotLocked(Peer& p);
  void RecomputeHomesLocked();
  Peer* FindPeerLocked(const std::string& node);
  void ApplyDeltasLocked(Peer& p, Deltas&& d);

  // --- NATS callbacks ---
  static void OnBeatMsg(natsConnection*, natsSubscription*, natsMsg* msg, void* self);
  static void OnDeltasMsg(natsConnection*, natsSubscription*, natsMsg* msg, void* self);
  static void OnSnapRequest(natsConnection*, natsSubscription*, natsMsg* msg, void* self);
  static void OnSnapChunk(natsConnection*, natsSubscription*, natsMsg* msg, void* self);
  static void OnDeliverMsg(natsConnection*, natsSubscription*, natsMsg* msg, void* self);
  static void OnDeskMsg(natsConnection*, natsSubscription*, natsMsg* msg, void* self);
  static void OnStreamMsg(natsConnection*, natsSubscription*, natsMsg* msg, void* self);
  static void OnAdvisory(natsConnection*, natsSubscription*, natsMsg* msg, void* self);
  static void OnDisconnected(natsConnection*, void* self);
  static void OnReconnected(natsConnection*, void* self);
  void HandleBeat(Beat&& b);
  void HandleEvents(ChannelIdx ch, uint64_t stream_seq, Events&& m);

  // --- the engine's threads ---
  void RunMembership();
  void RunPublisher();
  void Tick(int64_t now);
  void SendBeat(bool leaving);
  void PublishEvents(ChannelIdx ch, std::vector<PresenceEvent>&& evs);
  void Rederive(ChannelIdx ch, const std::vector<PresenceEvent>& evs);
  void RejoinLocked(int64_t now, const char* why);
  bool RefreshChannel(ChannelIdx ch, std::string* last_payload);
  void SetupStream();
  // Asks JetStream to keep the stream in opts.stream_replicas copies.
  void RaiseReplicas(const jsStreamConfig* have);

  base::LoopGroup& loops;
  base::Metrics& metrics;
  Options opts;
  presence::Service local;
  std::vector<std::unique_ptr<Shard>> shards;
  std::vector<std::string> tokens;  // channel index -> subject token
  std::unordered_map<std::string, ChannelIdx> by_token, by_id;
  uint64_t boot = 0;
  std::string name;  // the NATS connection name: "onlined <node> <boot>"
  std::string snap_inbox;
  uint64_t epoch_base = 0;

  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  std::vector<natsSubscription*> subs;
  natsSubscription* stream_sub = nullptr;
  std::atomic<bool> alive{true}, is_connected{false}, is_joined{false}, stream_ok{false},
      consuming{false}, warned_twin{false};

  std::mutex mu;  // peers, homes, channel stream state, desk interest: never a hot path
  std::map<std::string, Peer> peers;
  uint32_t next_ix = 1;
  std::vector<char> homes;
  std::vector<ChanState> chans;
  std::vector<int> desk_count;
  std::vector<natsSubscription*> desk_subs;
  std::map<std::pair<size_t, uint64_t>, ChannelIdx> sub_channel;
  bool beat_now = false;
  // The watchdog (CheckConsumer) makes the consumer again; until one is
  // made, every SubscribeStream is that restart. Publisher thread.
  bool restart_pending = false;
  int64_t started_at = 0;
  int64_t last_stream_try = -1000000;
  int64_t first_stream_try = -1;  // steady ms of the first try to set the stream up
  // The consumer's watchdog (publisher thread): a stream ahead of what this
  // node consumed, twice in a row with nothing consumed between, is a
  // consumer that stopped (nats.c's ordered consumer can fail to reset
  // while the stream has no leader); it is made again after what was consumed.
  int64_t last_stall_check = 0;
  uint64_t consumed_total = 0;  // under mu: the highest stream sequence consumed
  bool lag_seen = false;        // under mu: the last check found the stream ahead ...
  uint64_t lag_consumed = 0;    // ... with this much consumed
  bool SubscribeStream();
  void CheckConsumer(int64_t now);

  std::mutex qmu;
  std::condition_variable qcv;
  std::deque<QueuedEvent> queue;
  bool stopping = false;
  std::thread membership, publisher;

  base::Metrics::Id m_peers, m_connected, m_deltas_out, m_deltas_in, m_bytes_out, m_resyncs,
      m_deaths_gone, m_deaths_silent, m_events_out, m_cas_refused, m_publish_retries,
      m_remote_deliveries, m_events_dropped, m_bad_msgs, m_gaps, m_dups;
};

bool Rec::HasSessionHere() const {
  return std::any_of(shares.begin(), shares.end(), [](const Share& x) { return x.peer == kSelf; });
}

void Rec::OnTimer(int64_t) {
  Shard& s = *shard;
  if (in_grace) {
    in_grace = false;
    const bool said_online = pending ? pend_online : (pub_known && pub_online);
    if (shares.empty() && ch < s.home.size() && s.home[ch] && said_online) {
      s.impl->Emit(*this, false, false);
      return;
    }
    s.impl->Changed(*this);
    return;
  }
  // Expiry of an offline record nobody holds.
  if (!shares.empty() || Online() || pending) return;
  std::string k = key;
  s.recs.erase(k);  // destroys this
}

Engine::Impl::Impl(base::LoopGroup& l, base::Metrics& m, Options o)
    : loops(l), metrics(m), opts(std::move(o)), local(l, m, [this] {
        presence::ServiceOptions so;
        so.table.offline_grace_ms = 0;  // the grace is the channel home's, applied once
        so.table.retain_offline_ms = 1000;
        so.table.emit_session_counts = true;
        so.event_log_capacity = opts.event_log_capacity;
        so.forward = [this](presence::Event&& e) { OnLocal(std::move(e)); };
        return so;
      }()) {
  std::random_device rd;
  boot = (static_cast<uint64_t>(base::WallMs()) << 16) ^ (static_cast<uint64_t>(rd()) & 0xffff);
  name = "onlined " + opts.node_id + " " + std::to_string(boot);
  for (size_t i = 0; i < loops.size(); ++i) {
    auto s = std::make_unique<Shard>();
    s->impl = this;
    s->index = i;
    s->home.assign(opts.channels.size(), 0);
    s->grace_ms = opts.offline_grace_ms;
    s->retain_ms = opts.retain_offline_ms;
    shards.push_back(std::move(s));
  }
  for (size_t i = 0; i < opts.channels.size(); ++i) {
    tokens.push_back(Token(opts.channels[i]));
    by_token[tokens.back()] = static_cast<ChannelIdx>(i);
    by_id[opts.channels[i]] = static_cast<ChannelIdx>(i);
  }
  homes.assign(opts.channels.size(), 0);
  chans.assign(opts.channels.size(), {});
  desk_count.assign(opts.channels.size(), 0);
  desk_subs.assign(opts.channels.size(), nullptr);
  m_peers = m.Gauge("onlined_cluster_peers", "Other nodes this node sees alive.");
  m_connected = m.Gauge("onlined_cluster_nats_connected", "1 while connected to NATS.");
  m_deltas_out = m.Counter("onlined_cluster_deltas_sent_total",
                           "Session changes of this node's users sent to peers.");
  m_deltas_in = m.Counter("onlined_cluster_deltas_received_total",
                          "Session changes of peers' users applied here.");
  m_bytes_out = m.Counter("onlined_cluster_bytes_sent_total",
                          "Payload bytes this node published on NATS (presence and delivery).");
  m_resyncs = m.Counter("onlined_cluster_resyncs_total",
                        "Peers re-read from a snapshot (joined, lost a delta, came back).");
  constexpr const char* kDeathsHelp =
      "Peers dropped, by reason: disconnected (their NATS connection ended), silent (no beat "
      "within dead_after_ms).";
  m_deaths_gone =
      m.Counter("onlined_cluster_peer_deaths_total", kDeathsHelp, "reason=\"disconnected\"");
  m_deaths_silent =
      m.Counter("onlined_cluster_peer_deaths_total", kDeathsHelp, "reason=\"silent\"");
  m_events_out = m.Counter("onlined_cluster_events_published_total",
                           "Presence events this node appended to the stream as a channel's home.");
  m_cas_refused =
      m.Counter("onlined_cluster_stream_conflicts_total",
                "Appends to a channel's stream refused because another home appended first.");
  m_publish_retries = m.Counter("onlined_cluster_stream_retries_total",
                                "Appends to the stream retried after an error or timeout.");
  m_remote_deliveries = m.Counter("onlined_cluster_remote_deliveries_total",
                                  "Message frames sent to other nodes' sessions of a user.");
  m_events_dropped = m.Counter("onlined_cluster_events_dropped_total",
                               "Presence events not queued (queue full); re-derived later.");
  m_bad_msgs =
      m.Counter("onlined_cluster_bad_messages_total", "NATS messages refused as malformed.");
  m_gaps = m.Counter("onlined_cluster_delivery_gaps_total",
                     "Gaps in a chat's seq at this node's sessions, filled from the store.");
  m_dups = m.Counter("onlined_cluster_delivery_duplicates_total",
                     "Message frames dropped because the sessions here already had that seq.");
}

// ---------------------------------------------------------------------------
// Shard loops

Rec& Engine::Impl::GetRec(Shard& s, ChannelIdx ch, std::string_view user) {
  std::string key = RecKey(ch, user);
  auto it = s.recs.find(key);
  if (it != s.recs.end()) return *it->second;
  auto r = std::make_unique<Rec>();
  r->shard = &s;
  r->ch = ch;
  r->user.assign(user);
  r->key = key;
  Rec& ref = *r;
  s.recs.emplace(std::move(key), std::move(r));
  return ref;
}

void Engine::Impl::SetShare(Rec& r, uint32_t peer, uint32_t sessions, bool idle, int64_t last_seen,
                            bool timed_out, uint64_t gen) {
  r.last_seen = std::max(r.last_seen, last_seen);
  auto it = std::find_if(r.shares.begin(), r.shares.end(),
                         [peer](const Share& s) { return s.peer == peer; });
  if (sessions == 0) {
    if (it != r.shares.end()) {
      r.shares.erase(it);
      if (r.shares.empty()) r.timed_out = timed_out;
    }
    return;
  }
  if (it == r.shares.end()) {
    r.shares.push_back(Share{peer, sessions, idle, last_seen, gen});
  } else {
    *it = Share{peer, sessions, idle, std::max(it->last_seen, last_seen), gen};
  }
}

void Engine::Impl::OnLocal(presence::Event&& e) {
  const size_t si = presence::ShardOf(e.channel, e.user_id, shards.size());
  base::AssertOnLoop(si);
  Shard& s = *shards[si];
  if (e.channel >= opts.channels.size()) return;  // added by SIGHUP: not in the cluster (warned)
  Rec& r = GetRec(s, e.channel, e.user_id);
  SetShare(r, kSelf, e.online ? e.sessions : 0, e.idle, e.last_seen, e.timed_out, 0);
  {
    UserEntry u;
    u.channel = opts.channels[e.channel];
    u.user = e.user_id;
    u.sessions = e.online ? e.sessions : 0;
    u.idle = e.idle;
    u.timed_out = e.timed_out;
    u.last_seen = e.last_seen;
    s.out.push_back(std::move(u));
    if (!s.flush_posted) {
      s.flush_posted = true;
      PostTo(si, [this](Shard& sh) { Flush(sh); });  // after what this turn of the loop queued
    }
  }
  Changed(r);
}

void Engine::Impl::Flush(Shard& s) {
  s.flush_posted = false;
  size_t from = 0;
  while (from < s.out.size()) {
    Deltas d;
    d.node = opts.node_id;
    d.boot = boot;
    d.shard = static_cast<uint32_t>(s.index);
    size_t bytes = 0;
    while (from < s.out.size() && bytes < kDeltaBytes) {
      bytes += 32 + s.out[from].channel.size() + s.out[from].user.size();
      d.users.push_back(std::move(s.out[from++]));
    }
    d.seq = s.out_seq.load(std::memory_order_relaxed) + 1;
    s.out_seq.store(d.seq, std::memory_order_relaxed);
    std::string b = Encode(d);
    // A failed publish (NATS gone, its buffer full) leaves a gap in the
    // numbers: peers see it on the next beat and re-read this node.
    if (nc != nullptr) {
      natsConnection_Publish(nc, ("onl.pd." + Token(opts.node_id)).c_str(), b.data(),
                             static_cast<int>(b.size()));
    }
    metrics.Add(s.index, m_deltas_out, static_cast<int64_t>(d.users.size()));
    metrics.Add(s.index, m_bytes_out, static_cast<int64_t>(b.size()));
  }
  s.out.clear();
}

void Engine::Impl::Changed(Rec& r) {
  Shard& s = *r.shard;
  if (r.ch < s.home.size() && s.home[r.ch]) {
    Reconcile(r);
    return;
  }
  if (r.in_grace) {  // no longer home: the new home applies the grace
    r.in_grace = false;
    s.impl->loops.at(s.index).wheel().Cancel(&r);
  }
  if (r.shares.empty() && !r.Online() && !r.scheduled()) {
    loops.at(s.index).wheel().Schedule(&r, loops.at(s.index).now_ms() + s.retain_ms);
  }
}

// The home's rule: the stream must say what the shares say, with the grace
// between the last share ending and "offline".
void Engine::Impl::Reconcile(Rec& r) {
  Shard& s = *r.shard;
  base::TimingWheel& wheel = loops.at(s.index).wheel();
  const bool said_online = r.pending ? r.pend_online : (r.pub_known && r.pub_online);
  const bool said_idle = r.pending ? r.pend_idle : r.pub_idle;
  if (!r.shares.empty()) {
    if (r.scheduled()) wheel.Cancel(&r);
    r.in_grace = false;
    const bool idle = r.AllIdle();
    if (!said_online || said_idle != idle) Emit(r, true, idle);
    return;
  }
  if (!said_online) {
    if (r.in_grace) {
      wheel.Cancel(&r);
      r.in_grace = false;
    }
    if (!r.scheduled() && !r.pending) wheel.Schedule(&r, wheel.now_ms() + s.retain_ms);
    return;
  }
  if (r.timed_out || s.grace_ms <= 0) {
    if (r.scheduled()) wheel.Cancel(&r);
    r.in_grace = false;
    Emit(r, false, false);
    return;
  }
  if (!r.in_grace) {
    if (r.scheduled()) wheel.Cancel(&r);
    r.in_grace = true;
    // From now, read fresh: the wheel's time is as old as its last tick, and
    // a grace counted from it ended up to a tick early.
    const int64_t now = std::max(wheel.now_ms(), loops.at(s.index).clock().Now());
    wheel.Schedule(&r, now + s.grace_ms);
  }
}

void Engine::Impl::Emit(Rec& r, bool online, bool idle) {
  r.pending = true;
  r.pend_online = online;
  r.pend_idle = idle;
  QueuedEvent q{r.ch, PresenceEvent{r.user, online, idle, online ? base::WallMs() : r.last_seen}};
  {
    std::lock_guard lock(qmu);
    if (queue.size() >= kMaxEventQueue) {
      metrics.Add(r.shard->index, m_events_dropped);
      r.pending = false;
      // Tried again in a second (the timer re-derives it), so that an
      // offline is never lost for good.
      base::TimingWheel& w = loops.at(r.shard->index).wheel();
      if (r.scheduled()) w.Cancel(&r);
      r.in_grace = true;
      w.Schedule(&r, w.now_ms() + 1000);
      return;
    }
    queue.push_back(std::move(q));
  }
  qcv.notify_all();
}

void Engine::Impl::SnapshotShard(Shard& s, const std::string& reply) {
  Flush(s);  // the snapshot is consistent with the seq it carries
  std::vector<UserEntry> users;
  users.reserve(s.recs.size());
  for (const auto& [k, r] : s.recs) {
    UserEntry u;
    for (const Share& sh : r->shares) {
      if (sh.peer != kSelf) continue;
      u.sessions = sh.sessions;
      u.idle = sh.idle;
    }
    if (u.sessions == 0 && !r->pub_known) continue;
    u.channel = opts.channels[r->ch];
    u.user = r->user;
    u.last_seen = r->last_seen;
    u.pub_known = r->pub_known;
    u.pub_online = r->pub_online;
    u.pub_idle = r->pub_idle;
    users.push_back(std::move(u));
  }
  Snapshot head;
  head.node = opts.node_id;
  head.boot = boot;
  head.shard = static_cast<uint32_t>(s.index);
  head.shards = static_cast<uint32_t>(shards.size());
  head.seq = s.out_seq.load(std::memory_order_relaxed);
  std::string b;
  size_t from = 0;
  do {
    from += EncodeChunk(head, users, from, kChunkBytes, b);
    if (nc != nullptr)
      natsConnection_Publish(nc, reply.c_str(), b.data(), static_cast<int>(b.size()));
    metrics.Add(s.index, m_bytes_out, static_cast<int64_t>(b.size()));
  } while (from < users.size());
}

// The order's requests for one user's record, on its shard's loop.
struct Engine::Impl::OrderSink final : DeliveryOrder::Sink {
  Impl& m;
  Shard& s;
  Rec& r;
  OrderSink(Impl& m, Shard& s, Rec& r) : m(m), s(s), r(r) {}

  void Deliver(int64_t seq, Payload frame) override {
    // A heal's answer may come after the last session here left.
    if (r.HasSessionHere())
      m.local.DeliverToUser(r.ch, r.user, std::move(frame), r.order.chat(), seq, nullptr);
  }
  bool AskHeal(int64_t after, int64_t upto, uint32_t epoch) override {
    if (!m.opts.heal) return false;
    Impl* impl = &m;
    m.opts.heal(r.order.chat(), after, upto,
                [impl, si = s.index, upto, key = r.key, epoch](Options::Frames got) {
                  impl->PostTo(si,
                               [impl, upto, key, epoch, got = std::move(got)](Shard& sh) mutable {
                                 impl->Healed(sh, key, epoch, upto, std::move(got));
                               });
                });
    return true;
  }
  void Duplicate() override { m.metrics.Add(s.index, m.m_dups); }
  void Gap() override { m.metrics.Add(s.index, m.m_gaps); }
};

void Engine::Impl::Healed(Shard& s, const std::string& key, uint32_t epoch, int64_t upto,
                          Options::Frames got) {
  auto it = s.recs.find(key);
  if (it == s.recs.end()) return;  // the user's record is gone, and its order with it
  OrderSink sink(*this, s, *it->second);
  it->second->order.Healed(epoch, upto, std::move(got), sink);
}

void Engine::Impl::Sequence(Shard& s, Rec& r, const std::string& chat, int64_t seq, Payload frame) {
  OrderSink sink(*this, s, r);
  r.order.Offer(chat, seq, std::move(frame), sink);
}

// ---------------------------------------------------------------------------
// Peers (under mu)

void Engine::Impl::PostAll(const std::function<void(Shard&)>& fn) {
  for (size_t i = 0; i < shards.size(); ++i) PostTo(i, fn);
}

void Engine::Impl::ApplyEntries(uint32_t ix, uint64_t gen, std::vector<UserEntry>&& users,
                                bool snapshot) {
  std::vector<std::vector<UserEntry>> parts(shards.size());
  for (UserEntry& u : users) {
    auto it = by_id.find(u.channel);
    if (it == by_id.end()) continue;  // a channel this node does not serve
    parts[presence::ShardOf(it->second, u.user, shards.size())].push_back(std::move(u));
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].empty()) continue;
    metrics.Add(metrics.loops(), m_deltas_in, static_cast<int64_t>(parts[i].size()));
    PostTo(i, [this, ix, gen, snapshot, part = std::move(parts[i])](Shard& s) {
      for (const UserEntry& u : part) {
        ChannelIdx ch = by_id.at(u.channel);
        Rec& r = GetRec(s, ch, u.user);
        SetShare(r, ix, u.sessions, u.idle, u.last_seen, u.timed_out, gen);
        if (snapshot && u.pub_known && !r.pub_known) {
          r.pub_known = true;
          r.pub_online = u.pub_online;
          r.pub_idle = u.pub_idle;
        }
        Changed(r);
      }
    });
  }
}

Peer* Engine::Impl::FindPeerLocked(const std::string& node) {
  auto it = peers.find(node);
  return it == peers.end() ? nullptr : &it->second;
}

void Engine::Impl::DropPeerLocked(const std::string& node, const char* why) {
  auto it = peers.find(node);
  if (it == peers.end()) return;
  const uint32_t ix = it->second.ix;
  spdlog::warn("cluster: node {} is gone ({}); its sessions are dropped", node, why);
  metrics.Add(metrics.loops(), std::string_view(why) == "silent" ? m_deaths_silent : m_deaths_gone);
  metrics.Add(metrics.loops(), m_peers, -1);
  peers.erase(it);
  RecomputeHomesLocked();
  PostAll([this, ix](Shard& s) {
    s.dl_subject.erase(ix);
    std::vector<Rec*> hit;
    for (auto& [k, r] : s.recs) {
      auto sh = std::find_if(r->shares.begin(), r->shares.end(),
                             [ix](const Share& x) { return x.peer == ix; });
      if (sh == r->shares.end()) continue;
      r->shares.erase(sh);
      if (r->shares.empty()) r->timed_out = false;  // a dead node's users get the grace
      hit.push_back(r.get());
    }
    for (Rec* r : hit) Changed(*r);
  });
}

void Engine::Impl::RequestSnapshotLocked(Peer& p) {
  p.syncing = true;
  p.gen++;
  p.shard_done.clear();
  p.buffered.clear();
  p.buffered_bytes = 0;
  p.sync_started = base::SteadyMs();
  metrics.Add(metrics.loops(), m_resyncs);
  if (nc == nullptr) return;
  std::string reply = snap_inbox + "." + std::to_string(p.ix) + "." + std::to_string(p.gen);
  std::string req = std::to_string(p.boot);
  natsConnection_PublishRequest(nc, ("onl.snap." + Token(p.node)).c_str(), reply.c_str(),
                                req.data(), static_cast<int>(req.size()));
}

void Engine::Impl::RecomputeHomesLocked() {
  std::vector<const std::string*> live;
  if (is_joined.load()) live.push_back(&opts.node_id);
  for (const auto& [id, p] : peers) {
    if (p.ready) live.push_back(&p.node);
  }
  std::vector<char> next(opts.channels.size(), 0);
  for (size_t c = 0; c < opts.channels.size(); ++c) {
    const std::string* best = nullptr;
    uint64_t best_score = 0;
    for (const std::string* n : live) {
      uint64_t sc = Score(*n, opts.channels[c]);
      if (best == nullptr || sc > best_score || (sc == best_score && *n < *best)) {
        best = n;
        best_score = sc;
      }
    }
    next[c] = best == &opts.node_id ? 1 : 0;
  }
  if (next == homes) return;
  homes = next;
  PostAll([this, next](Shard& s) {
    std::vector<char> gained(next.size(), 0);
    for (size_t c = 0; c < next.size(); ++c) gained[c] = next[c] && !s.home[c];
    s.home = next;
    std::vector<Rec*> todo;
    for (auto& [k, r] : s.recs) {
      if (gained[r->ch] || (!next[r->ch] && r->in_grace)) todo.push_back(r.get());
    }
    for (Rec* r : todo) Changed(*r);
  });
}

void Engine::Impl::ApplyDeltasLocked(Peer& p, Deltas&& d) {
  if (d.shard >= kMaxPeerShards) return;
  if (p.applied.size() <= d.shard) p.applied.resize(d.shard + 1, 0);
  if (p.syncing && (d.shard >= p.shard_done.size() || !p.shard_done[d.shard])) {
    // Held by count and by size: a peer's messages are up to 1 MB on the
    // wire, and one of tiny entries decodes to several times that.
    const size_t bytes = DecodedBytes(d);
    if (p.buffered.size() >= kMaxBuffered || p.buffered_bytes + bytes > kMaxBufferedBytes) {
      RequestSnapshotLocked(p);  // too far behind: start over
      return;
    }
    p.buffered_bytes += bytes;
    p.buffered.push_back(std::move(d));
    return;
  }
  if (d.seq <= p.applied[d.shard]) return;  // already had it
  if (d.seq != p.applied[d.shard] + 1) {
    spdlog::info("cluster: deltas of {} shard {} jumped {} -> {}; re-reading it", p.node, d.shard,
                 p.applied[d.shard], d.seq);
    RequestSnapshotLocked(p);
    p.buffered_bytes += DecodedBytes(d);
    p.buffered.push_back(std::move(d));
    return;
  }
  p.applied[d.shard] = d.seq;
  ApplyEntries(p.ix, p.gen, std::move(d.users), false);
}

// ---------------------------------------------------------------------------
// NATS callbacks: parse, check, post

namespace {
struct MsgGuard {
  natsMsg* m;
  ~MsgGuard() { natsMsg_Destroy(m); }
  std::string_view data() const {
    return {natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m))};
  }
};
}  // namespace

void Engine::Impl::OnBeatMsg(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
  MsgGuard g{msg};
  auto* impl = static_cast<Impl*>(self);
  if (!impl->alive) return;
  auto b = DecodeBeat(g.data());
  if (!b) {
    impl->metrics.Add(impl->metrics.loops(), impl->m_bad_msgs);
    return;
  }
  impl->HandleBeat(std::move(*b));
}

void Engine::Impl::HandleBeat(Beat&& b) {
  if (b.node == opts.node_id) {
    // no_echo hides this node's own beats: another process has its id.
    if (b.boot != boot && !warned_twin.exchange(true))
      spdlog::error("cluster: another process beats as node {}; node ids must be unique",
                    opts.node_id);
    return;
  }
  std::lock_guard lock(mu);
  if (b.leaving) {
    Peer* p = FindPeerLocked(b.node);
    if (p != nullptr && p->boot == b.boot) DropPeerLocked(b.node, "disconnected");
    return;
  }
  Peer* p = FindPeerLocked(b.node);
  if (p != nullptr && p->boot != b.boot) {  // restarted: the old one is gone
    DropPeerLocked(b.node, "disconnected");
    p = nullptr;
  }
  if (p == nullptr) {
    Peer np;
    np.node = b.node;
    np.boot = b.boot;
    np.ix = next_ix++;
    p = &peers.emplace(b.node, std::move(np)).first->second;
    metrics.Add(metrics.loops(), m_peers, 1);
    spdlog::info("cluster: node {} joined", b.node);
    std::string subject = "onl.dl." + Token(b.node);
    PostAll([ix = p->ix, subject](Shard& s) { s.dl_subject[ix] = subject; });
    RequestSnapshotLocked(*p);
    beat_now = true;  // so a joining node learns of this one at once
    qcv.notify_one();
  }
  p->last_beat = base::SteadyMs();
  if (p->ready != b.ready) {
    p->ready = b.ready;
    RecomputeHomesLocked();
  }
  // A delta that its beat announces but that is still missing one beat later
  // was lost: re-read the peer.
  if (!p->syncing) {
    for (size_t k = 0; k < p->prev_beat.size() && k < kMaxPeerShards; ++k) {
      uint64_t have = k < p->applied.size() ? p->applied[k] : 0;
      if (p->prev_beat[k] > have) {
        spdlog::info("cluster: missed deltas of {} shard {} ({} < {}); re-reading it", p->node, k,
                     have, p->prev_beat[k]);
        RequestSnapshotLocked(*p);
        break;
      }
    }
  }
  p->prev_beat = std::move(b.shard_seqs);
}

void Engine::Impl::OnDeltasMsg(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
  MsgGuard g{msg};
  auto* impl = static_cast<Impl*>(self);
  if (!impl->alive) return;
  auto d = DecodeDeltas(g.data());
  if (!d) {
    impl->metrics.Add(impl->metrics.loops(), impl->m_bad_msgs);
    return;
  }
  if (d->node == impl->opts.node_id) return;
  std::lock_guard lock(impl->mu);
  Peer* p = impl->FindPeerLocked(d->node);
  if (p == nullptr || p->boot != d->boot) return;  // its beat introduces it
  impl->ApplyDeltasLocked(*p, std::move(*d));
}

void Engine::Impl::OnSnapRequest(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
  MsgGuard g{msg};
  auto* impl = static_cast<Impl*>(self);
  const char* reply = natsMsg_GetReply(msg);
  if (!impl->alive || reply == nullptr) return;
  if (g.data() != std::to_string(impl->boot)) return;  // asked of an earlier run of this node
  std::string r(reply);
  for (size_t i = 0; i < impl->shards.size(); ++i) {
    impl->PostTo(i, [impl, r](Shard& s) { impl->SnapshotShard(s, r); });
  }
}

void Engine::Impl::OnSnapChunk(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
  MsgGuard g{msg};
  auto* impl = static_cast<Impl*>(self);
  if (!impl->alive) return;
  auto c = DecodeSnapshot(g.data());
  if (!c || c->shards > kMaxPeerShards) {
    impl->metrics.Add(impl->metrics.loops(), impl->m_bad_msgs);
    return;
  }
  // The reply subject names the request: <inbox>.<peer index>.<generation>.
  std::string_view subj = natsMsg_GetSubject(msg);
  size_t dot = subj.rfind('.');
  if (dot == std::string_view::npos) return;
  uint64_t gen = std::strtoull(std::string(subj.substr(dot + 1)).c_str(), nullptr, 10);
  std::lock_guard lock(impl->mu);
  Peer* p = impl->FindPeerLocked(c->node);
  if (p == nullptr || p->boot != c->boot || !p->syncing || p->gen != gen) return;  // stale
  if (p->shard_done.empty()) p->shard_done.assign(c->shards, 0);
  p->sync_started = base::SteadyMs();  // a big read is slow, not lost, while chunks come
  if (c->shard >= p->shard_done.size() || p->shard_done[c->shard]) return;
  impl->ApplyEntries(p->ix, p->gen, std::move(c->users), true);
  if (!c->last) return;
  p->shard_done[c->shard] = 1;
  if (p->applied.size() <= c->shard) p->applied.resize(c->shard + 1, 0);
  p->applied[c->shard] = c->seq;
  if (std::find(p->shard_done.begin(), p->shard_done.end(), 0) != p->shard_done.end()) return;
  // Every shard read: what the snapshot did not name is gone; then the
  // deltas that came meanwhile, in order.
  const uint32_t ix = p->ix;
  const uint64_t cur = p->gen;
  impl->PostAll([impl, ix, cur](Shard& s) {
    std::vector<Rec*> hit;
    for (auto& [k, r] : s.recs) {
      auto sh = std::find_if(r->shares.begin(), r->shares.end(),
                             [ix, cur](const Share& x) { return x.peer == ix && x.gen < cur; });
      if (sh == r->shares.end()) continue;
      r->shares.erase(sh);
      hit.push_back(r.get());
    }
    for (Rec* r : hit) impl->Changed(*r);
  });
  p->syncing = false;
  std::vector<Deltas> held = std::move(p->buffered);
  p->buffered.clear();
  p->buffered_bytes = 0;
  std::sort(held.begin(), held.end(), [](const Deltas& a, const Deltas& b) {
    return a.shard != b.shard ? a.shard < b.shard : a.seq < b.seq;
  });
  spdlog::info("cluster: read node {} ({} ms)", p->node, base::SteadyMs() - p->sync_started);
  for (Deltas& d : held) {
    if (p->syncing) break;  // a gap started another read
    impl->ApplyDeltasLocked(*p, std::move(d));
  }
}

void Engine::Impl::OnDeliverMsg(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
  MsgGuard g{msg};
  auto* impl = static_cast<Impl*>(self);
  if (!impl->alive) return;
  auto d = DecodeDeliver(g.data());
  if (!d) {
    impl->metrics.Add(impl->metrics.loops(), impl->m_bad_msgs);
    return;
  }
  auto it = impl->by_id.find(d->channel);
  if (it == impl->by_id.end() || d->seq <= 0) return;
  const ChannelIdx ch = it->second;
  const size_t si = presence::ShardOf(ch, d->user, impl->shards.size());
  impl->PostTo(si, [impl, ch, d = std::move(*d)](Shard& s) mutable {
    auto r = s.recs.find(RecKey(ch, d.user));
    if (r == s.recs.end()) return;  // no session of the user here (any more)
    if (!r->second->HasSessionHere()) {
      if (!r->second->order.chat().empty()) r->second->order.Reset({});
      return;
    }
    impl->Sequence(s, *r->second, d.chat_id, d.seq,
                   std::make_shared<const std::string>(std::move(d.frame)));
  });
}

void Engine::Impl::OnDeskMsg(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
  MsgGuard g{msg};
  auto* impl = static_cast<Impl*>(self);
  if (!impl->alive) return;
  std::string_view subj = natsMsg_GetSubject(msg);
  constexpr std::string_view kPrefix = "onl.desk.";
  if (subj.substr(0, kPrefix.size()) != kPrefix) return;
  auto it = impl->by_token.find(std::string(subj.substr(kPrefix.size())));
  if (it == impl->by_token.end()) return;
  impl->local.PublishToChannel(it->second, std::make_shared<const std::string>(g.data()));
}

void Engine::Impl::OnStreamMsg(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
  MsgGuard g{msg};
  auto* impl = static_cast<Impl*>(self);
  if (!impl->alive) return;
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) return;
  const uint64_t sseq = meta->Sequence.Stream;
  jsMsgMetaData_Destroy(meta);
  std::string_view subj = natsMsg_GetSubject(msg);
  constexpr std::string_view kPrefix = "onl.pev.";
  if (subj.substr(0, kPrefix.size()) != kPrefix) return;
  auto it = impl->by_token.find(std::string(subj.substr(kPrefix.size())));
  if (it == impl->by_token.end()) return;
  auto m = DecodeEvents(g.data());
  if (!m) {
    impl->metrics.Add(impl->metrics.loops(), impl->m_bad_msgs);
    std::lock_guard lock(impl->mu);  // the next append must expect it, numbering unchanged
    ChanState& c = impl->chans[it->second];
    c.stream_seq = std::max(c.stream_seq, sseq);
    c.consumed = std::max(c.consumed, sseq);
    impl->consumed_total = std::max(impl->consumed_total, sseq);
    return;
  }
  impl->HandleEvents(it->second, sseq, std::move(*m));
}

void Engine::Impl::HandleEvents(ChannelIdx ch, uint64_t stream_seq, Events&& m) {
  {
    std::lock_guard lock(mu);
    ChanState& c = chans[ch];
    c.consumed = std::max(c.consumed, stream_seq);
    consumed_total = std::max(consumed_total, stream_seq);
    if (stream_seq > c.stream_seq) {
      c.stream_seq = stream_seq;
      c.last_event = m.first_seq + m.events.size() - 1;
    }
  }
  std::vector<std::vector<PresenceEvent>> parts(shards.size());
  for (size_t i = 0; i < m.events.size(); ++i) {
    const PresenceEvent& e = m.events[i];
    local.AppendNumbered(ch, m.first_seq + i,
                         std::make_shared<const std::string>(proto::EncodePresence(
                             e.user, e.online, e.last_seen, e.idle, m.first_seq + i)));
    parts[presence::ShardOf(ch, e.user, shards.size())].push_back(e);
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].empty()) continue;
    PostTo(i, [this, ch, part = std::move(parts[i])](Shard& s) {
      for (const PresenceEvent& e : part) {
        Rec& r = GetRec(s, ch, e.user);
        r.pub_known = true;
        r.pub_online = e.online;
        r.pub_idle = e.idle;
        if (!e.online) r.last_seen = std::max(r.last_seen, e.last_seen);
        // Ours arrived (or another home's saying the same): no longer in
        // flight. A different state leaves ours pending; a refusal clears it.
        if (r.pending && r.pend_online == e.online && (!e.online || r.pend_idle == e.idle))
          r.pending = false;
        Changed(r);
      }
    });
  }
}

void Engine::Impl::OnAdvisory(natsConnection*, natsSubscription*, natsMsg* msg, void* self) {
  MsgGuard g{msg};
  auto* impl = static_cast<Impl*>(self);
  if (!impl->alive || g.data().size() > 65536) return;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(g.data(), ec);
  if (ec || !v.is_object()) return;
  const auto* client = v.as_object().if_contains("client");
  if (client == nullptr || !client->is_object()) return;
  const auto* nm = client->as_object().if_contains("name");
  if (nm == nullptr || !nm->is_string()) return;
  // "onlined <node> <boot>"
  std::string_view n = nm->as_string();
  if (n.substr(0, 8) != "onlined ") return;
  n.remove_prefix(8);
  size_t sp = n.rfind(' ');
  if (sp == std::string_view::npos) return;
  std::string node(n.substr(0, sp));
  uint64_t boot = std::strtoull(std::string(n.substr(sp + 1)).c_str(), nullptr, 10);
  std::lock_guard lock(impl->mu);
  Peer* p = impl->FindPeerLocked(node);
  if (p != nullptr && p->boot == boot) impl->DropPeerLocked(node, "disconnected");
}

void Engine::Impl::OnDisconnected(natsConnection*, void* self) {
  auto* impl = static_cast<Impl*>(self);
  if (impl->is_connected.exchange(false)) {
    impl->metrics.Add(impl->metrics.loops(), impl->m_connected, -1);
    spdlog::warn("cluster: NATS connection lost; serving this node's users, reconnecting");
  }
}

void Engine::Impl::OnReconnected(natsConnection*, void* self) {
  auto* impl = static_cast<Impl*>(self);
  if (!impl->is_connected.exchange(true)) {
    impl->metrics.Add(impl->metrics.loops(), impl->m_connected, 1);
    spdlog::info("cluster: NATS connected");
  }
  // Whatever crossed NATS meanwhile may be lost: re-read every peer, and
  // beat at once so they re-read this node. It stays a home: a reconnect is
  // short, the stream's compare-and-set refuses a stale append, and moving
  // every home away and back would cost more than it saves.
  std::lock_guard lock(impl->mu);
  for (auto& [id, p] : impl->peers) impl->RequestSnapshotLocked(p);
  impl->beat_now = true;
  impl->qcv.notify_all();
}

// ---------------------------------------------------------------------------
// The engine's thread

void Engine::Impl::SendBeat(bool leaving) {
  Beat b;
  b.node = opts.node_id;
  b.boot = boot;
  b.ready = is_joined.load();
  b.leaving = leaving;
  for (const auto& s : shards) b.shard_seqs.push_back(s->out_seq.load(std::memory_order_relaxed));
  std::string m = Encode(b);
  natsConnection_Publish(nc, "onl.beat", m.data(), static_cast<int>(m.size()));
}

void Engine::Impl::RejoinLocked(int64_t now, const char* why) {
  spdlog::warn("cluster: {}; re-reading the peers before deciding presence again", why);
  is_joined = false;
  started_at = now;
  for (auto& [id, p] : peers) {
    p.last_beat = now;
    RequestSnapshotLocked(p);
  }
  RecomputeHomesLocked();  // no home while not joined
  beat_now = true;         // ready = false: the peers do not count on it either
}

void Engine::Impl::Tick(int64_t now) {
  static thread_local int64_t last_tick = now;
  static thread_local int64_t last_beat = 0;
  const int64_t gap = now - last_tick;
  last_tick = now;
  std::lock_guard lock(mu);
  if (gap > opts.dead_after_ms / 2) {
    // This node itself stood still (SIGSTOP, a long pause): its peers' beats
    // are not late, its clock reading is. The peers will have dropped this
    // node and read it again when its beats come; it re-reads them before it
    // decides anything as a home again (its replica is stale).
    RejoinLocked(now, ("this node stalled for " + std::to_string(gap) + " ms").c_str());
  }
  if (!is_connected.load()) {
    // Deaf, not alone: while this node cannot hear NATS its peers' silence
    // says nothing about them. It serves its own users meanwhile and re-reads
    // everyone once connected again.
    for (auto& [id, p] : peers) p.last_beat = now;
  }
  std::vector<std::string> dead;
  for (const auto& [id, p] : peers) {
    if (now - p.last_beat > opts.dead_after_ms) dead.push_back(id);
  }
  for (const auto& id : dead) DropPeerLocked(id, "silent");
  for (auto& [id, p] : peers) {
    if (p.syncing && now - p.sync_started > 3000) RequestSnapshotLocked(p);  // lost reply
  }
  if (!is_joined.load()) {
    bool all_read =
        std::all_of(peers.begin(), peers.end(), [](const auto& kv) { return !kv.second.syncing; });
    const int64_t waited = now - started_at;
    if ((all_read && waited >= std::min<int64_t>(300, opts.join_wait_ms)) ||
        waited >= opts.join_wait_ms) {
      is_joined = true;
      spdlog::info("cluster: joined as {} with {} peer(s) in {} ms", opts.node_id, peers.size(),
                   waited);
      RecomputeHomesLocked();
      beat_now = true;
    }
  }
  if (nc != nullptr && (beat_now || now - last_beat >= opts.beat_ms)) {
    beat_now = false;
    last_beat = now;
    SendBeat(false);
  }
}

bool Engine::Impl::RefreshChannel(ChannelIdx ch, std::string* last_payload) {
  natsMsg* m = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  std::string subject = "onl.pev." + tokens[ch];
  natsStatus s = js_GetLastMsg(&m, js, kStream, subject.c_str(), nullptr, &jerr);
  ChanState fresh;
  if (s == NATS_OK) {
    MsgGuard g{m};
    auto ev = DecodeEvents(g.data());
    fresh.stream_seq = natsMsg_GetSequence(m);
    if (ev) fresh.last_event = ev->first_seq + ev->events.size() - 1;
    if (last_payload != nullptr) last_payload->assign(g.data());
  } else if (jerr != JSNoMessageFoundErr) {
    return false;
  }
  std::lock_guard lock(mu);
  if (fresh.stream_seq >= chans[ch].stream_seq) {
    // A malformed last message (only a foreign publisher writes one) keeps
    // the numbering where it was: it never goes down.
    fresh.last_event = std::max(fresh.last_event, chans[ch].last_event);
    fresh.consumed = chans[ch].consumed;
    chans[ch] = fresh;
  }
  return true;
}

// The users of `evs` get their events re-derived by the channel's home from
// what the stream says (their event was refused, dropped or not ours).
void Engine::Impl::Rederive(ChannelIdx ch, const std::vector<PresenceEvent>& evs) {
  std::vector<std::vector<std::string>> users(shards.size());
  for (const auto& e : evs) users[presence::ShardOf(ch, e.user, shards.size())].push_back(e.user);
  for (size_t i = 0; i < users.size(); ++i) {
    if (users[i].empty()) continue;
    PostTo(i, [this, ch, u = std::move(users[i])](Shard& sh) {
      for (const auto& id : u) {
        auto it = sh.recs.find(RecKey(ch, id));
        if (it == sh.recs.end()) continue;
        it->second->pending = false;
        Changed(*it->second);
      }
    });
  }
}

void Engine::Impl::PublishEvents(ChannelIdx ch, std::vector<PresenceEvent>&& evs) {
  const std::string subject = "onl.pev." + tokens[ch];
  ChanState c;
  {
    std::lock_guard lock(mu);
    if (!homes[ch]) {  // no longer this node's to number (membership moved)
      Rederive(ch, evs);
      return;
    }
    c = chans[ch];
  }
  // One expectation for every retry of this append: if a try was stored but
  // its answer lost, the consumer may already have moved chans[ch] past it;
  // a retry with a fresh expectation would store the events twice.
  Events m;
  m.first_seq = (c.last_event != 0 ? c.last_event : epoch_base) + 1;
  m.events = evs;
  const std::string body = Encode(m);
  int failures = 0;
  while (true) {
    natsMsg* msg = nullptr;
    natsMsg_Create(&msg, subject.c_str(), nullptr, body.data(), static_cast<int>(body.size()));
    // Compare-and-set on the subject: "0" is "no message yet" (set by hand:
    // the client omits a zero).
    natsMsgHeader_Set(msg, "Nats-Expected-Last-Subject-Sequence",
                      std::to_string(c.stream_seq).c_str());
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 2000;
    jsPubAck* ack = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_PublishMsg(&ack, js, msg, &po, &jerr);
    natsMsg_Destroy(msg);
    if (s == NATS_OK) {
      {
        std::lock_guard lock(mu);
        if (ack->Sequence > chans[ch].stream_seq) {
          chans[ch].stream_seq = ack->Sequence;
          chans[ch].last_event = m.first_seq + evs.size() - 1;
        }
      }
      jsPubAck_Destroy(ack);
      metrics.Add(metrics.loops(), m_events_out, static_cast<int64_t>(evs.size()));
      metrics.Add(metrics.loops(), m_bytes_out, static_cast<int64_t>(body.size()));
      return;
    }
    if (jerr == JSStreamWrongLastSequenceErr) {
      std::string last;
      if (RefreshChannel(ch, &last) && last == body) return;  // ours, its ack was lost
      // Another home numbered first (a change of membership, a node that
      // woke from a freeze): these events are not ours to number. The homes
      // re-derive them from what the stream now says.
      metrics.Add(metrics.loops(), m_cas_refused);
      Rederive(ch, evs);
      return;
    }
    if (jerr == JSStreamNotFoundErr) {
      // The stream is gone (deleted, NATS's storage lost): set it up again;
      // its new epoch numbers above every old event (desks reset).
      spdlog::error("cluster: the presence stream is gone; creating it again");
      stream_ok = false;
      Rederive(ch, evs);
      return;
    }
    metrics.Add(metrics.loops(), m_publish_retries);
    if (++failures == 1 || failures % 20 == 0) {
      spdlog::warn("cluster: appending to the presence stream failed ({}{}); retrying", Status(s),
                   jerr != 0 ? ", js error " + std::to_string(jerr) : "");
    }
    std::unique_lock lock(qmu);
    qcv.wait_for(lock, std::chrono::milliseconds(250), [this] { return stopping; });
    if (stopping) return;
  }
}

// Consumes the stream: each channel's last batch first (what the stream
// says now), then every new one; or, when this node consumed before (a
// consumer made again), after the last sequence it consumed, so its desks
// miss nothing between. A consumer made again (restart_pending) that had consumed
// nothing yet takes all the stream holds: the batches appended since the
// first one was made are not only each channel's last. Until a consumer
// exists the node does not say it joined. Publisher thread.
bool Engine::Impl::SubscribeStream() {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = kStream;
  so.Ordered = true;
  uint64_t after = 0;
  {
    std::lock_guard lock(mu);
    after = consumed_total;
  }
  if (after == 0) {
    so.Config.DeliverPolicy = restart_pending ? js_DeliverAll : js_DeliverLastPerSubject;
  } else {
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = after + 1;
  }
  so.Config.Heartbeat = 1000LL * 1000 * 1000;  // a stalled consumer is found within seconds
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s =
      js_Subscribe(&stream_sub, js, "onl.pev.>", &Impl::OnStreamMsg, this, nullptr, &so, &jerr);
  if (s != NATS_OK) {
    spdlog::error("cluster: cannot consume the presence stream: {}", Status(s));
    stream_sub = nullptr;
    return false;
  }
  consuming = true;
  restart_pending = false;
  spdlog::info("cluster: consuming the presence stream{}",
               after == 0 ? "" : " after sequence " + std::to_string(after));
  return true;
}

void Engine::Impl::CheckConsumer(int64_t) {
  bool lag = false;
  for (ChannelIdx ch = 0; ch < tokens.size() && !lag; ++ch) {
    natsMsg* m = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const std::string subject = "onl.pev." + tokens[ch];
    if (js_GetLastMsg(&m, js, kStream, subject.c_str(), nullptr, &jerr) != NATS_OK) continue;
    const uint64_t last = natsMsg_GetSequence(m);
    natsMsg_Destroy(m);
    std::lock_guard lock(mu);
    lag = last > chans[ch].consumed;
  }
  uint64_t resume_after = 0;
  {
    std::lock_guard lock(mu);
    if (!lag) {
      lag_seen = false;
      return;
    }
    if (!lag_seen || lag_consumed != consumed_total) {  // seen once, or moving: look again
      lag_seen = true;
      lag_consumed = consumed_total;
      return;
    }
    resume_after = consumed_total;
    lag_seen = false;
  }
  spdlog::warn("cluster: the presence stream's consumer stopped after sequence {}; consuming again",
               resume_after);
  consuming = false;
  natsSubscription_Unsubscribe(stream_sub);
  natsSubscription_Destroy(stream_sub);
  stream_sub = nullptr;
  restart_pending = true;
  if (!SubscribeStream()) stream_ok = false;  // set up again within a second
}

void Engine::Impl::SetupStream() {
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = kStream;
  const char* subjects[] = {"onl.pev.>"};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.MaxMsgsPerSubject = opts.stream_per_channel;
  cfg.Duplicates = 0;
  // The epoch travels in the stream's description: every node reads the one
  // the creator wrote (a node whose proposal lost gets "name already in
  // use" and reads it), so all number a new channel's first event alike.
  const std::string proposal = "onlined presence events, epoch " +
                               std::to_string(static_cast<uint64_t>(base::WallMs()) * 1000);
  cfg.Description = proposal.c_str();
  // As many replicas as configured. One only where JetStream says it has no
  // cluster (a single server), or once the configured count has failed for
  // kStreamFallbackMs (fewer servers than replicas): a cluster still forming
  // (no meta leader yet, peers without stats) fails the first tries too, and
  // a stream of one copy dies with its server.
  constexpr int64_t kStreamFallbackMs = 15000;
  const int64_t now = base::SteadyMs();
  if (first_stream_try < 0) first_stream_try = now;
  const bool give_up_replicas = now - first_stream_try >= kStreamFallbackMs;
  for (int replicas : {opts.stream_replicas, 1}) {
    cfg.Replicas = replicas;
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_AddStream(&si, js, &cfg, nullptr, &jerr);
    if (s != NATS_OK && jerr == JSStreamNameExistErr) {
      s = js_GetStreamInfo(&si, js, kStream, nullptr, &jerr);
    }
    if (s == NATS_OK) {
      const char* d = si->Config->Description;
      const char* e = d != nullptr ? std::strstr(d, "epoch ") : nullptr;
      epoch_base = e != nullptr ? std::strtoull(e + 6, nullptr, 10)
                                : static_cast<uint64_t>(si->Created / 1000000) * 1000;
      spdlog::info("cluster: presence stream {} ({} replica(s)), epoch {}", kStream,
                   si->Config->Replicas, epoch_base);
      if (si->Config->Replicas < opts.stream_replicas && replicas > 1) {
        RaiseReplicas(si->Config);  // made with fewer by a node that gave up on more
      }
      jsStreamInfo_Destroy(si);
      stream_ok = true;
      return;
    }
    const bool standalone = jerr == JSStreamReplicasNotSupportedErr;
    if (replicas > 1 && !standalone && !give_up_replicas) {
      spdlog::warn("cluster: presence stream with {} replica(s): {} (js error {}); trying again",
                   replicas, Status(s), static_cast<int>(jerr));
      return;  // again within a second
    }
    if (replicas > 1 && !standalone) {
      spdlog::error(
          "cluster: presence stream with {} replica(s) failed for {} s: {} (js error {}); "
          "trying one replica (it is lost with its server: give NATS as many servers as "
          "cluster.stream_replicas)",
          replicas, kStreamFallbackMs / 1000, Status(s), static_cast<int>(jerr));
    } else if (replicas == 1) {
      spdlog::warn("cluster: presence stream with 1 replica: {} (js error {})", Status(s),
                   static_cast<int>(jerr));
    }
  }
}

void Engine::Impl::RaiseReplicas(const jsStreamConfig* have) {
  jsStreamConfig cfg = *have;  // every field as it is (the epoch's description too)
  cfg.Replicas = opts.stream_replicas;
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const natsStatus s = js_UpdateStream(&si, js, &cfg, nullptr, &jerr);
  if (s == NATS_OK) {
    spdlog::info("cluster: presence stream raised from {} to {} replicas", have->Replicas,
                 si->Config->Replicas);
    jsStreamInfo_Destroy(si);
  } else {
    spdlog::warn("cluster: presence stream stays at {} replica(s): {} (js error {})",
                 have->Replicas, Status(s), static_cast<int>(jerr));
  }
}

// Beats and deaths: never behind a blocking call, so a slow stream (a
// leader election: seconds of failed appends) never makes this node look
// dead to its peers.
void Engine::Impl::RunMembership() {
  while (true) {
    {
      std::unique_lock lock(qmu);
      qcv.wait_for(lock, std::chrono::milliseconds(50), [this] { return stopping; });
      if (stopping) return;
    }
    Tick(base::SteadyMs());
  }
}

// The stream: set up (JetStream may still be electing its leader: tried once
// a second), consumed, appended to.
void Engine::Impl::RunPublisher() {
  while (true) {
    std::vector<QueuedEvent> batch;
    {
      std::unique_lock lock(qmu);
      qcv.wait_for(lock, std::chrono::milliseconds(100),
                   [this] { return stopping || (!queue.empty() && stream_ok.load()); });
      if (stopping) return;
      if (stream_ok.load() && is_connected.load()) {
        batch.assign(std::make_move_iterator(queue.begin()), std::make_move_iterator(queue.end()));
        queue.clear();
      }
    }
    const int64_t now = base::SteadyMs();
    if (!stream_ok.load() && is_connected.load() && now - last_stream_try >= 1000) {
      last_stream_try = now;
      SetupStream();
      if (stream_ok.load() && stream_sub != nullptr) {  // a stream set up again: consume it anew
        consuming = false;
        natsSubscription_Unsubscribe(stream_sub);
        natsSubscription_Destroy(stream_sub);
        stream_sub = nullptr;
        std::lock_guard lock(mu);
        chans.assign(chans.size(), ChanState{});
        consumed_total = 0;
        lag_seen = false;
        restart_pending = false;  // a new stream: its last batches are its state
      }
      if (stream_ok.load() && !SubscribeStream()) stream_ok = false;
    }
    if (consuming.load() && is_connected.load() && now - last_stall_check >= 2000) {
      last_stall_check = now;
      CheckConsumer(now);
    }
    // Per channel, in order; appends of at most kAppendEvents events, each
    // well under NATS's 1 MB payload limit.
    std::map<ChannelIdx, std::vector<PresenceEvent>> by_ch;
    for (QueuedEvent& q : batch) by_ch[q.ch].push_back(std::move(q.ev));
    for (auto& [ch, evs] : by_ch) {
      for (size_t from = 0; from < evs.size(); from += kAppendEvents) {
        const size_t to = std::min(evs.size(), from + kAppendEvents);
        std::vector<PresenceEvent> part(std::make_move_iterator(evs.begin() + from),
                                        std::make_move_iterator(evs.begin() + to));
        if (!stream_ok.load()) {
          Rederive(ch, part);  // the stream is being set up again
          continue;
        }
        PublishEvents(ch, std::move(part));
      }
    }
  }
}

// ---------------------------------------------------------------------------

Engine::Engine(base::LoopGroup& loops, base::Metrics& metrics, Options opts)
    : impl_(std::make_unique<Impl>(loops, metrics, std::move(opts))) {
  Impl& m = *impl_;
  natsOptions* no = nullptr;
  if (natsOptions_Create(&no) != NATS_OK) throw std::runtime_error("cluster: out of memory");
  std::vector<const char*> urls;
  for (const auto& u : m.opts.nats_urls) urls.push_back(u.c_str());
  natsStatus s = natsOptions_SetServers(no, urls.data(), static_cast<int>(urls.size()));
  if (s != NATS_OK) {
    natsOptions_Destroy(no);
    throw std::runtime_error("cluster.nats_urls: " + Status(s));
  }
  natsOptions_SetName(no, m.name.c_str());
  natsOptions_SetNoEcho(no, true);
  natsOptions_SetNoRandomize(no, true);  // nats_urls in the operator's order: nearest first
  natsOptions_SetMaxReconnect(no, -1);
  natsOptions_SetReconnectWait(no, 250);
  natsOptions_SetPingInterval(no, 1000);
  natsOptions_SetMaxPingsOut(no, 3);
  natsOptions_SetReconnectBufSize(no, 16 * 1024 * 1024);
  natsOptions_SetDisconnectedCB(no, &Impl::OnDisconnected, &m);
  natsOptions_SetReconnectedCB(no, &Impl::OnReconnected, &m);
  natsOptions_SetRetryOnFailedConnect(no, true, &Impl::OnReconnected, &m);
  s = natsConnection_Connect(&m.nc, no);
  natsOptions_Destroy(no);
  if (s == NATS_OK) {
    m.is_connected = true;
    metrics.Add(metrics.loops(), m.m_connected, 1);
  } else if (s != NATS_NOT_YET_CONNECTED) {
    throw std::runtime_error("cluster: cannot connect to NATS: " + Status(s));
  } else {
    spdlog::warn("cluster: NATS not reachable yet at {}; retrying in the background",
                 m.opts.nats_urls.front());
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 2000;
  if (natsConnection_JetStream(&m.js, m.nc, &jo) != NATS_OK)
    throw std::runtime_error("cluster: cannot use JetStream");
  m.snap_inbox = "_INBOX.onl." + Token(m.opts.node_id) + "." + std::to_string(m.boot);
  const std::string self = Token(m.opts.node_id);
  struct SubSpec {
    std::string subject;
    natsMsgHandler cb;
  };
  for (const SubSpec& sp :
       {SubSpec{"onl.beat", &Impl::OnBeatMsg}, SubSpec{"onl.pd.*", &Impl::OnDeltasMsg},
        SubSpec{"onl.snap." + self, &Impl::OnSnapRequest},
        SubSpec{m.snap_inbox + ".*.*", &Impl::OnSnapChunk},
        SubSpec{"onl.dl." + self, &Impl::OnDeliverMsg},
        SubSpec{"$SYS.ACCOUNT.*.DISCONNECT", &Impl::OnAdvisory}}) {
    natsSubscription* sub = nullptr;
    s = natsConnection_Subscribe(&sub, m.nc, sp.subject.c_str(), sp.cb, &m);
    if (s != NATS_OK)
      throw std::runtime_error("cluster: subscribe " + sp.subject + ": " + Status(s));
    natsSubscription_SetPendingLimits(sub, 1 << 20, 256 << 20);
    m.subs.push_back(sub);
  }
}

// The connection and subscriptions outlive Stop: loops still running until
// the node stops them may publish (a closed connection refuses that), and
// callbacks still in flight see `alive` false. Freed here, after the loops.
Engine::~Engine() {
  Stop();
  Impl& m = *impl_;
  for (natsSubscription* s : m.subs) natsSubscription_Destroy(s);
  if (m.stream_sub != nullptr) natsSubscription_Destroy(m.stream_sub);
  for (natsSubscription* s : m.desk_subs) {
    if (s != nullptr) natsSubscription_Destroy(s);
  }
  jsCtx_Destroy(m.js);
  natsConnection_Destroy(m.nc);
}

void Engine::Start() {
  Impl& m = *impl_;
  m.started_at = base::SteadyMs();
  m.membership = std::thread([&m] { m.RunMembership(); });
  m.publisher = std::thread([&m] { m.RunPublisher(); });
  std::lock_guard lock(m.mu);
  m.beat_now = true;
  m.qcv.notify_one();
}

void Engine::Stop() {
  Impl& m = *impl_;
  {
    std::lock_guard lock(m.qmu);
    if (m.stopping) return;
    m.stopping = true;
  }
  m.qcv.notify_all();
  if (m.membership.joinable()) m.membership.join();
  if (m.publisher.joinable()) m.publisher.join();
  if (m.is_connected.load()) {
    m.SendBeat(true);
    natsConnection_FlushTimeout(m.nc, 500);
  }
  m.alive = false;
  for (natsSubscription* s : m.subs) natsSubscription_Unsubscribe(s);
  if (m.stream_sub != nullptr) natsSubscription_Unsubscribe(m.stream_sub);
  {
    std::lock_guard lock(m.mu);
    for (natsSubscription* s : m.desk_subs) {
      if (s != nullptr) natsSubscription_Unsubscribe(s);
    }
  }
  natsConnection_Close(m.nc);
}

bool Engine::connected() const { return impl_->is_connected.load(); }
bool Engine::joined() const { return impl_->is_joined.load() && impl_->consuming.load(); }

const char* Engine::Standing() const {
  if (!connected()) return "nats_unreachable";
  return joined() ? "joined" : "joining";
}

void Engine::Open(ChannelIdx ch, std::string user_id, std::shared_ptr<presence::SessionCell> cell,
                  std::function<void()> done) {
  impl_->local.Open(ch, std::move(user_id), std::move(cell), std::move(done));
}

void Engine::Close(ChannelIdx ch, std::string user_id, std::shared_ptr<presence::SessionCell> cell,
                   bool timed_out) {
  impl_->local.Close(ch, std::move(user_id), std::move(cell), timed_out);
}

void Engine::StateChanged(ChannelIdx ch, std::string user_id) {
  impl_->local.StateChanged(ch, std::move(user_id));
}

void Engine::Query(ChannelIdx ch, std::vector<std::string> ids, QueryDone done) {
  Impl& m = *impl_;
  presence::ScatterQuery(
      m.loops, ch, std::move(ids), std::move(done),
      [&m, ch](size_t s, const std::string_view* ids, size_t n, presence::UserInfo* out) {
        const Shard& sh = *m.shards[s];
        const int64_t now = base::WallMs();
        for (size_t k = 0; k < n; ++k) {
          auto it = sh.recs.find(RecKey(ch, ids[k]));
          if (it == sh.recs.end()) continue;
          const Rec& r = *it->second;
          presence::UserInfo& u = out[k];
          u.sessions = r.Sessions();
          u.online = r.Online();
          // A live share is vouched for by its node (its sessions beat there):
          // its last_seen is now, to within the heartbeat timeout.
          u.last_seen = r.shares.empty() ? r.last_seen : now;
          u.idle = r.shares.empty() ? (u.online && r.pub_idle) : r.AllIdle();
        }
      });
}

uint64_t Engine::Subscribe(ChannelIdx ch, presence::Subscriber* sub,
                           std::optional<uint64_t> after) {
  Impl& m = *impl_;
  const uint64_t h = m.local.Subscribe(ch, sub, after);
  if (ch >= m.desk_count.size()) return h;  // not one of the cluster's channels: local only
  std::lock_guard lock(m.mu);
  m.sub_channel[{base::Loop::Current()->index(), h}] = ch;
  if (m.desk_count[ch]++ == 0 && m.nc != nullptr) {
    natsSubscription* s = nullptr;
    if (natsConnection_Subscribe(&s, m.nc, ("onl.desk." + m.tokens[ch]).c_str(), &Impl::OnDeskMsg,
                                 &m) == NATS_OK) {
      m.desk_subs[ch] = s;
    }
  }
  return h;
}

void Engine::Unsubscribe(uint64_t handle) {
  Impl& m = *impl_;
  m.local.Unsubscribe(handle);
  std::lock_guard lock(m.mu);
  auto it = m.sub_channel.find({base::Loop::Current()->index(), handle});
  if (it == m.sub_channel.end()) return;
  const ChannelIdx ch = it->second;
  m.sub_channel.erase(it);
  if (--m.desk_count[ch] == 0 && m.desk_subs[ch] != nullptr) {
    natsSubscription_Unsubscribe(m.desk_subs[ch]);
    natsSubscription_Destroy(m.desk_subs[ch]);
    m.desk_subs[ch] = nullptr;
  }
}

void Engine::OnlineCounts(std::function<void(std::vector<int64_t>)> done) {
  Impl& m = *impl_;
  struct Gather {
    std::mutex mu;  // the scrape path only
    std::vector<int64_t> sum;
    size_t pending;
    std::function<void(std::vector<int64_t>)> done;
  };
  auto g = std::make_shared<Gather>();
  g->pending = m.shards.size();
  g->sum.assign(m.opts.channels.size(), 0);
  g->done = std::move(done);
  for (size_t i = 0; i < m.shards.size(); ++i) {
    m.PostTo(i, [g](Shard& s) {
      std::vector<int64_t> part(g->sum.size(), 0);
      for (const auto& [k, r] : s.recs) {
        if (r->ch < part.size() && r->Online()) ++part[r->ch];
      }
      std::lock_guard lock(g->mu);
      for (size_t c = 0; c < part.size(); ++c) g->sum[c] += part[c];
      if (--g->pending == 0) g->done(std::move(g->sum));
    });
  }
}

void Engine::DeliverToUser(ChannelIdx ch, std::string user_id, Payload frame, std::string chat_id,
                           int64_t seq, std::function<void(bool)> done) {
  Impl& m = *impl_;
  const size_t si = presence::ShardOf(ch, user_id, m.shards.size());
  m.PostTo(si, [&m, ch, seq, user = std::move(user_id), frame = std::move(frame),
                chat = std::move(chat_id), done = std::move(done)](Shard& s) mutable {
    bool remote = false, here = false;
    auto it = s.recs.find(RecKey(ch, user));
    if (it != s.recs.end()) {
      std::string body;
      for (const Share& sh : it->second->shares) {
        if (sh.peer == kSelf) {
          here = true;
          continue;
        }
        auto subj = s.dl_subject.find(sh.peer);
        if (subj == s.dl_subject.end() || m.nc == nullptr) continue;
        if (body.empty()) {
          Deliver d{m.opts.channels[ch], user, chat, seq, *frame};
          body = Encode(d);
        }
        natsConnection_Publish(m.nc, subj->second.c_str(), body.data(),
                               static_cast<int>(body.size()));
        m.metrics.Add(s.index, m.m_remote_deliveries);
        m.metrics.Add(s.index, m.m_bytes_out, static_cast<int64_t>(body.size()));
        remote = true;
      }
    }
    if (it != s.recs.end()) {
      Rec& r = *it->second;
      if (here) {
        m.Sequence(s, r, chat, seq, std::move(frame));
      } else if (!r.order.chat().empty()) {
        // No session here: nothing to put in order, and no gap to heal
        // from the store. A session that comes here later starts afresh
        // (its replay, then its first frame's look back).
        r.order.Reset({});
      }
    }
    if (done) done(here || remote);
  });
}

void Engine::PublishToChannel(ChannelIdx ch, Payload frame) {
  Impl& m = *impl_;
  m.local.PublishToChannel(ch, frame);
  if (m.nc == nullptr || ch >= m.tokens.size()) return;
  natsConnection_Publish(m.nc, ("onl.desk." + m.tokens[ch]).c_str(), frame->data(),
                         static_cast<int>(frame->size()));
  m.metrics.Add(m.metrics.loops(), m.m_bytes_out, static_cast<int64_t>(frame->size()));
}

void Engine::SetGrace(int64_t offline_grace_ms) {
  impl_->PostAll([offline_grace_ms](Shard& s) { s.grace_ms = offline_grace_ms; });
}

}  // namespace onlined::cluster
