#include "presence/service.h"

#include <algorithm>
#include <mutex>
#include <unordered_map>

#include "base/clock.h"
#include "proto/frames.h"

namespace onlined::presence {

struct Service::Shard {
  struct Sub {
    uint64_t handle;
    Subscriber* sub;
    bool awaiting;  // answer to Subscribe not yet delivered: drop live events
  };
  std::unique_ptr<PresenceTable> table;
  std::unordered_map<ChannelIdx, EventLog> logs;          // channels homed here
  std::unordered_map<ChannelIdx, std::vector<Sub>> subs;  // subscribers on this loop
  std::unordered_map<uint64_t, ChannelIdx> sub_channel;
  uint64_t next_handle = 1;

  Sub* FindSub(uint64_t handle) {
    auto it = sub_channel.find(handle);
    if (it == sub_channel.end()) return nullptr;
    for (Sub& s : subs[it->second]) {
      if (s.handle == handle) return &s;
    }
    return nullptr;
  }
};

Service::Service(base::LoopGroup& loops, base::Metrics& metrics, ServiceOptions opts)
    : loops_(loops), metrics_(metrics), opts_(std::move(opts)) {
  for (size_t i = 0; i < loops.size(); ++i) {
    auto s = std::make_unique<Shard>();
    s->table = std::make_unique<PresenceTable>(
        loops.at(i).wheel(), opts_.table,
        [this](Event&& e) {
          if (opts_.forward) {
            opts_.forward(std::move(e));
          } else {
            Publish(std::move(e));
          }
        },
        &loops.at(i).clock());
    shards_.push_back(std::move(s));
  }
  m_events_ = metrics.Counter("onlined_presence_events_total",
                              "Presence events (online, offline, state) sequenced.");
  m_opens_ =
      metrics.Counter("onlined_presence_sessions_opened_total", "User sessions that became live.");
  m_closes_ =
      metrics.Counter("onlined_presence_sessions_closed_total", "User sessions that ended.");
  m_timeouts_ = metrics.Counter("onlined_presence_heartbeat_timeouts_total",
                                "User sessions ended by the heartbeat timeout.");
  m_resets_ = metrics.Counter("onlined_presence_resets_total",
                              "Manager resumes answered with presence_reset.");
}

Service::~Service() = default;

template <class Fn>
void Service::RunOn(size_t loop, Fn&& fn) {
  base::Loop* cur = base::Loop::Current();
  if (cur != nullptr && cur->index() == loop) {
    fn();
  } else {
    loops_.Post(loop, std::forward<Fn>(fn));
  }
}

void Service::Open(ChannelIdx ch, std::string user_id, std::shared_ptr<SessionCell> cell,
                   std::function<void()> done) {
  size_t origin = base::Loop::Current()->index();
  size_t shard = ShardOf(ch, user_id, shards_.size());
  RunOn(shard, [this, ch, shard, origin, user = std::move(user_id), cell = std::move(cell),
                done = std::move(done)]() mutable {
    base::AssertOnLoop(shard);
    shards_[shard]->table->Open(ch, user, std::move(cell), base::WallMs());
    metrics_.Add(shard, m_opens_);
    RunOn(origin, std::move(done));
  });
}

void Service::Close(ChannelIdx ch, std::string user_id, std::shared_ptr<SessionCell> cell,
                    bool timed_out) {
  size_t shard = ShardOf(ch, user_id, shards_.size());
  RunOn(shard, [this, ch, shard, timed_out, user = std::move(user_id), cell = std::move(cell)] {
    base::AssertOnLoop(shard);
    shards_[shard]->table->Close(ch, user, cell.get(), timed_out);
    metrics_.Add(shard, m_closes_);
    if (timed_out) metrics_.Add(shard, m_timeouts_);
  });
}

void Service::StateChanged(ChannelIdx ch, std::string user_id) {
  size_t shard = ShardOf(ch, user_id, shards_.size());
  RunOn(shard, [this, ch, shard, user = std::move(user_id)] {
    shards_[shard]->table->StateChanged(ch, user);
  });
}

void ScatterQuery(base::LoopGroup& loops, ChannelIdx ch, std::vector<std::string> ids,
                  Presence::QueryDone done, ShardLookup lookup) {
  const size_t n = loops.size();
  const size_t origin = base::Loop::Current()->index();
  if (n == 1 && origin == 0) {
    // One loop, and this is it: the lookup is made here and now, without the
    // gather's shared state, the per-shard positions and the copies back.
    std::vector<std::string_view> views(ids.begin(), ids.end());
    std::vector<UserInfo> out(ids.size());
    if (!ids.empty()) lookup(0, views.data(), views.size(), out.data());
    done(std::move(out), std::move(ids));
    return;
  }
  struct Gather {
    std::vector<std::string> ids;
    std::vector<UserInfo> out;
    size_t pending = 0;  // touched only on the origin loop
    Presence::QueryDone done;
    ShardLookup lookup;
  };
  auto g = std::make_shared<Gather>();
  g->out.resize(ids.size());
  g->done = std::move(done);
  g->lookup = std::move(lookup);
  // Positions of the ids per shard.
  std::vector<std::vector<uint32_t>> parts(n);
  for (auto& p : parts) p.reserve(ids.size() / n + 16);
  for (uint32_t i = 0; i < ids.size(); ++i) parts[n == 1 ? 0 : ShardOf(ch, ids[i], n)].push_back(i);
  g->ids = std::move(ids);
  for (const auto& p : parts) g->pending += p.empty() ? 0 : 1;
  if (g->pending == 0) {
    g->done(std::move(g->out), std::move(g->ids));
    return;
  }
  auto run_on = [&loops](size_t loop, auto&& fn) {
    if (base::Loop::Current() != nullptr && base::Loop::Current()->index() == loop) {
      fn();
    } else {
      loops.Post(loop, std::forward<decltype(fn)>(fn));
    }
  };
  for (size_t s = 0; s < n; ++s) {
    if (parts[s].empty()) continue;
    run_on(s, [run_on, g, s, origin, idx = std::move(parts[s])]() mutable {
      // Read on the shard's loop; `g->ids` is immutable after dispatch.
      std::vector<std::string_view> ids(idx.size());
      for (size_t k = 0; k < idx.size(); ++k) ids[k] = g->ids[idx[k]];
      std::vector<UserInfo> found(idx.size());
      g->lookup(s, ids.data(), ids.size(), found.data());
      run_on(origin, [g, idx = std::move(idx), found = std::move(found)] {
        for (size_t k = 0; k < idx.size(); ++k) g->out[idx[k]] = found[k];
        if (--g->pending == 0) g->done(std::move(g->out), std::move(g->ids));
      });
    });
  }
}

void Service::Query(ChannelIdx ch, std::vector<std::string> ids, QueryDone done) {
  ScatterQuery(loops_, ch, std::move(ids), std::move(done),
               [this, ch](size_t s, const std::string_view* ids, size_t n, UserInfo* out) {
                 shards_[s]->table->LookupMany(ch, ids, n, out);
               });
}

void Service::Publish(Event&& e) {
  size_t home = HomeOf(e.channel);
  RunOn(home, [this, home, e = std::move(e)]() mutable { Append(home, std::move(e)); });
}

EventLog& Service::LogOf(size_t home, ChannelIdx ch) {
  base::AssertOnLoop(home);
  Shard& h = *shards_[home];
  auto it = h.logs.find(ch);
  if (it == h.logs.end()) {
    it = h.logs.emplace(ch, EventLog(opts_.event_log_capacity, opts_.first_seq)).first;
  }
  return it->second;
}

void Service::FanOut(ChannelIdx ch, const Payload& p) {
  for (size_t l = 0; l < shards_.size(); ++l) {
    RunOn(l, [this, l, ch, p] { Deliver(l, ch, p); });
  }
}

void Service::Append(size_t home, Event&& e) {
  Payload p = LogOf(home, e.channel).Append([&e](uint64_t seq) {
    return proto::EncodePresence(e.user_id, e.online, e.last_seen, e.idle, seq);
  });
  metrics_.Add(home, m_events_);
  FanOut(e.channel, p);
}

void Service::AppendNumbered(ChannelIdx ch, uint64_t seq, Payload frame) {
  const size_t home = HomeOf(ch);
  RunOn(home, [this, home, ch, seq, frame = std::move(frame)] {
    if (!LogOf(home, ch).AppendAt(seq, frame)) return;
    metrics_.Add(home, m_events_);
    FanOut(ch, frame);
  });
}

void Service::Deliver(size_t loop, ChannelIdx ch, const Payload& p) {
  base::AssertOnLoop(loop);
  auto it = shards_[loop]->subs.find(ch);
  if (it == shards_[loop]->subs.end()) return;
  // No subscriber leaves from inside OnChannelFrame (a full send queue aborts
  // its connection, whose end runs later, posted): the list is stable here.
  for (const Shard::Sub& s : it->second) {
    if (!s.awaiting) s.sub->OnChannelFrame(p);
  }
}

uint64_t Service::Subscribe(ChannelIdx ch, Subscriber* sub, std::optional<uint64_t> after) {
  const size_t loop = base::Loop::Current()->index();
  Shard& mine = *shards_[loop];
  const uint64_t handle = mine.next_handle++;
  mine.subs[ch].push_back({handle, sub, true});
  mine.sub_channel[handle] = ch;
  const size_t home = HomeOf(ch);
  RunOn(home, [this, home, loop, ch, handle, after] {
    Shard& h = *shards_[home];
    auto it = h.logs.find(ch);
    uint64_t last = it == h.logs.end() ? opts_.first_seq : it->second.last_seq();
    std::vector<Payload> replay;
    bool reset = false;
    if (after) {
      std::optional<std::vector<Payload>> r;
      if (it != h.logs.end()) {
        r = it->second.After(*after);
      } else if (*after == opts_.first_seq) {
        r.emplace();
      }
      if (r) {
        replay = std::move(*r);
      } else {
        reset = true;
        metrics_.Add(home, m_resets_);
      }
    }
    RunOn(loop, [this, loop, handle, replay = std::move(replay), reset, last]() mutable {
      Shard::Sub* s = shards_[loop]->FindSub(handle);
      if (s == nullptr) return;  // unsubscribed meanwhile
      s->awaiting = false;
      s->sub->OnSubscribed(std::move(replay), reset, last);
    });
  });
  return handle;
}

void Service::Unsubscribe(uint64_t handle) {
  Shard& mine = *shards_[base::Loop::Current()->index()];
  auto it = mine.sub_channel.find(handle);
  if (it == mine.sub_channel.end()) return;
  auto& v = mine.subs[it->second];
  v.erase(
      std::remove_if(v.begin(), v.end(), [handle](const auto& s) { return s.handle == handle; }),
      v.end());
  if (v.empty()) mine.subs.erase(it->second);
  mine.sub_channel.erase(it);
}

void Service::DeliverToUser(ChannelIdx ch, std::string user_id, Payload frame, std::string chat_id,
                            int64_t seq, std::function<void(bool)> done) {
  size_t shard = ShardOf(ch, user_id, shards_.size());
  // Inline when called on the user's shard (a cluster's in-order delivery
  // is there already): one hop less.
  RunOn(shard, [this, ch, shard, seq, user = std::move(user_id), frame = std::move(frame),
                chat = std::move(chat_id), done = std::move(done)] {
    const auto& sessions = shards_[shard]->table->Sessions(ch, user);
    for (const auto& cell : sessions) {
      RunOn(cell->loop, [cell, frame, chat, seq] {
        if (auto alive = cell->alive.lock()) cell->sink->OnChatMessage(frame, chat, seq);
      });
    }
    if (done) done(!sessions.empty());
  });
}

void Service::PublishToChannel(ChannelIdx ch, Payload frame) {
  for (size_t l = 0; l < shards_.size(); ++l) {
    loops_.Post(l, [this, l, ch, frame] { Deliver(l, ch, frame); });
  }
}

void Service::OnlineCounts(std::function<void(std::vector<int64_t>)> done) {
  struct Gather {
    std::mutex mu;  // the scrape path only, never a hot path
    std::vector<int64_t> sum;
    size_t pending;
    std::function<void(std::vector<int64_t>)> done;
  };
  auto g = std::make_shared<Gather>();
  g->pending = shards_.size();
  g->done = std::move(done);
  for (size_t s = 0; s < shards_.size(); ++s) {
    loops_.Post(s, [this, g, s] {
      const PresenceTable& t = *shards_[s]->table;
      std::lock_guard lock(g->mu);
      if (g->sum.size() < t.channel_slots()) g->sum.resize(t.channel_slots(), 0);
      for (ChannelIdx ch = 0; ch < t.channel_slots(); ++ch) g->sum[ch] += t.OnlineCount(ch);
      if (--g->pending == 0) g->done(std::move(g->sum));
    });
  }
}

void Service::SetTableOptions(PresenceTable::Options opts) {
  for (size_t s = 0; s < shards_.size(); ++s) {
    loops_.Post(s, [this, s, opts] { shards_[s]->table->set_options(opts); });
  }
}

}  // namespace onlined::presence
