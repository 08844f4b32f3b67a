#include "app/node.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <future>
#include <stdexcept>
#include <thread>

#include "api/connect.h"
#include "api/context.h"
#include "api/http_api.h"
#include "api/static_files.h"
#include "base/clock.h"
#include "base/loops.h"
#include "base/metrics.h"
#include "chat/codec.h"
#include "chat/delivery.h"
#include "cluster/engine.h"
#include "net/server.h"
#include "notify/policy.h"
#include "notify/provider.h"
#include "notify/scheduler.h"
#include "presence/service.h"
#include "store/postgres/postgres_db.h"
#include "store/service.h"
#include "store/sqlite/sqlite_db.h"
#include "store/sqlite/vfs.h"

namespace onlined::app {

namespace {

// Raises the open-file soft limit to the hard one; returns the limit.
int64_t RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  return static_cast<int64_t>(rl.rlim_cur);
}

api::LiveSettings ToLive(const config::Config& c) {
  api::LiveSettings s;
  s.heartbeat_s = c.heartbeat_s;
  s.heartbeat_timeout_ms = c.EffectiveHeartbeatTimeoutMs();
  s.hello_timeout_ms = c.hello_timeout_ms;
  s.token_leeway_s = c.token_leeway_s;
  s.retry_after_ms = c.retry_after_ms;
  s.max_text_bytes = c.max_text_bytes;
  s.sms_auth_token = c.sms.auth_token;
  s.sms_public_url = c.sms.public_url;
  s.metrics_token = c.metrics_token;
  s.frame_ancestors = c.frame_ancestors;
  while (!s.sms_public_url.empty() && s.sms_public_url.back() == '/') s.sms_public_url.pop_back();
  return s;
}

presence::PresenceTable::Options TableOptions(const config::Config& c) {
  presence::PresenceTable::Options o;
  o.offline_grace_ms = c.offline_grace_ms;
  return o;
}

int64_t MaxConnections(const config::Config& c, int64_t file_limit) {
  if (c.max_connections > 0) return c.max_connections;
  return std::max<int64_t>(64, file_limit - 256);  // leave room for files, the store, the reserve
}

// SIGHUP: the settings that only a restart applies keep their running
// values in `next` (so what the node holds is what it runs: the SMS
// provider's token and the webhooks' stay one token); returns the names of
// those the new file changed, for the log.
std::vector<std::string> KeepRestartOnly(const config::Config& run, config::Config& next) {
  std::vector<std::string> changed;
  auto keep = [&changed](const char* name, auto& field, const auto& running) {
    if (field == running) return;
    changed.emplace_back(name);
    field = running;
  };
  // node_id defaults to host:port: a new port changes it too, named once (as listen).
  if (next.listen_port != run.listen_port) next.node_id = run.node_id;
  keep("listen", next.listen, run.listen);
  next.listen_host = run.listen_host;
  next.listen_port = run.listen_port;
  keep("data_dir", next.data_dir, run.data_dir);
  keep("metrics_listen", next.metrics_listen, run.metrics_listen);
  next.metrics_host = run.metrics_host;
  next.metrics_port = run.metrics_port;
  keep("max_body_bytes", next.max_body_bytes, run.max_body_bytes);
  keep("http_idle_timeout_ms", next.http_idle_timeout_ms, run.http_idle_timeout_ms);
  keep("web_dir", next.web_dir, run.web_dir);
  keep("threads", next.threads, run.threads);
  keep("io_uring", next.io_uring, run.io_uring);
  keep("node_id", next.node_id, run.node_id);
  keep("store_engine", next.store_engine, run.store_engine);
  keep("store_postgres_url", next.store_postgres_url, run.store_postgres_url);
  keep("store_max_batch", next.store_max_batch, run.store_max_batch);
  keep("store_max_queue_delay_ms", next.store_max_queue_delay_ms, run.store_max_queue_delay_ms);
  keep("store_timeout_ms", next.store_timeout_ms, run.store_timeout_ms);
  keep("presence_event_buffer", next.presence_event_buffer, run.presence_event_buffer);
  keep("notify_tick_ms", next.notify_tick_ms, run.notify_tick_ms);
  keep("outbox_lease_ms", next.outbox_lease_ms, run.outbox_lease_ms);
  keep("revocation_poll_ms", next.revocation_poll_ms, run.revocation_poll_ms);
  keep("[sms]", next.sms, run.sms);
  keep("[cluster]", next.cluster, run.cluster);
  return changed;
}

// In cluster mode the channels are the node's since its start: each has its
// presence stream subject and its desks' subscription, made at Start. A
// channel the file adds is left out until a restart (a removed one goes,
// and may come back); its settings, keys included, reload as before.
void KeepClusterChannels(const api::ChannelTable& running, config::Config& next) {
  const std::vector<std::string>& known = running.names();
  std::string left_out;
  std::erase_if(next.channels, [&](const config::Channel& c) {
    if (std::find(known.begin(), known.end(), c.id) != known.end()) return false;
    left_out += (left_out.empty() ? "" : ", ") + c.id;
    return true;
  });
  if (!left_out.empty()) {
    spdlog::warn(
        "SIGHUP: in cluster mode a new channel is added only by a restart (left out until then): "
        "{}",
        left_out);
  }
}

// The node's send bucket saves up 50 ms worth: a second's worth let through
// at once would be a latency spike of its own.
double SendBurst(const config::Config& c) { return std::max(1.0, c.max_sends_per_s / 20); }

net::ServerOptions ServerOptionsOf(const config::Config& cfg, int64_t file_limit) {
  net::ServerOptions o;
  o.host = cfg.listen_host;
  o.port = cfg.listen_port;
  o.max_frame_bytes = static_cast<size_t>(cfg.max_frame_bytes);
  o.max_body_bytes = static_cast<size_t>(cfg.max_body_bytes);
  o.send_queue_max = static_cast<size_t>(cfg.send_queue_max);
  o.desk_send_queue_max = static_cast<size_t>(cfg.desk_send_queue_max);
  o.ws_read_budget_bytes = static_cast<size_t>(cfg.ws_read_budget_bytes);
  o.max_connections = MaxConnections(cfg, file_limit);
  o.max_connections_per_ip = cfg.max_connections_per_ip;
  o.handshakes_per_s = cfg.handshakes_per_s;
  o.handshake_burst = cfg.handshake_burst;
  o.max_http_in_flight = cfg.max_http_in_flight;
  o.retry_after_ms = cfg.retry_after_ms;
  o.http_idle_timeout_ms = cfg.http_idle_timeout_ms;
  o.drain_spread_ms = cfg.drain_spread_ms;
  o.io_uring = cfg.io_uring != 0;
  return o;
}

std::unique_ptr<store::Service> OpenStore(const config::Config& cfg, base::Metrics& metrics) {
  store::Service::Options o;
  o.max_batch = static_cast<size_t>(cfg.store_max_batch);
  o.max_queue_delay_ms = cfg.store_max_queue_delay_ms;
  // store_faults (tests only) puts the files behind the fault VFS.
  const bool faults = !cfg.store_faults.empty();
  if (faults) {
    store::FaultSpec spec;
    std::string err;
    if (!store::ParseFaultSpec(cfg.store_faults, spec, err))
      throw std::runtime_error("store_faults: " + err);
    store::SetFaults(spec);
    spdlog::warn("store_faults is set: the store fails on purpose ({})", cfg.store_faults);
  }
  if (cfg.store_engine == "postgres") {
    std::string url = cfg.store_postgres_url;
    const int64_t timeout_ms = cfg.store_timeout_ms;
    try {
      auto s = std::make_unique<store::Service>(
          [url, timeout_ms](bool writer) { return store::OpenPostgres(url, writer, timeout_ms); },
          o, metrics);
      spdlog::info("store: PostgreSQL, schema version {}", store::PostgresSchemaVersion());
      return s;
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("cannot open the PostgreSQL store: ") + e.what());
    }
  }
  std::string dir = cfg.data_dir;
  try {
    return std::make_unique<store::Service>(
        [dir, faults](bool writer) { return store::OpenSqlite(dir, writer, faults); }, o, metrics);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot open the store in " + dir + ": " + e.what());
  }
}

std::unique_ptr<notify::Provider> MakeProvider(const config::Config& cfg,
                                               notify::Scheduler& scheduler) {
  if (cfg.sms.provider != "twilio") return notify::MakeLogProvider(scheduler.io());
  notify::TwilioOptions t;
  t.base_url = cfg.sms.base_url;
  t.account_sid = cfg.sms.account_sid;
  t.auth_token = cfg.sms.auth_token;
  t.from = cfg.sms.from;
  t.timeout_ms = cfg.sms.timeout_ms;
  if (!cfg.sms.public_url.empty())
    t.status_callback_url = ToLive(cfg).sms_public_url + "/v1/sms/status";
  try {
    return notify::MakeTwilioProvider(scheduler.io(), t);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("sms: ") + e.what());
  }
}

// The presence and delivery seams: one process's engine, or the cluster's.
struct Engines {
  std::unique_ptr<presence::Service> single;
  std::unique_ptr<cluster::Engine> cluster;
  presence::Presence* presence = nullptr;
  presence::Router* router = nullptr;
};

// `store` is filled after the engines are built and before anything runs.
Engines MakeEngines(const config::Config& c, base::LoopGroup& loops, base::Metrics& metrics,
                    const std::unique_ptr<store::Service>* store) {
  Engines e;
  if (c.cluster.enabled()) {
    cluster::Options o;
    o.node_id = c.node_id;
    o.nats_urls = c.cluster.nats_urls;
    for (const auto& ch : c.channels) o.channels.push_back(ch.id);
    o.offline_grace_ms = c.offline_grace_ms;
    o.event_log_capacity = static_cast<size_t>(c.presence_event_buffer);
    o.beat_ms = c.cluster.beat_ms;
    o.dead_after_ms = c.cluster.dead_after_ms;
    o.stream_replicas = static_cast<int>(c.cluster.stream_replicas);
    o.join_wait_ms = c.cluster.join_wait_ms;
    o.heal = [store](const std::string& chat, int64_t after, int64_t upto,
                     std::function<void(cluster::Options::Frames)> done) {
      const int limit = static_cast<int>(std::min<int64_t>(upto - after, 1000));
      (*store)->Read<std::vector<store::Message>>(
          [chat, after, limit](store::Db& db) { return db.ListMessages(chat, after, limit); },
          [upto, done = std::move(done)](store::Outcome<std::vector<store::Message>> o) {
            cluster::Options::Frames out;
            if (o.ok()) {
              for (const store::Message& m : *o.value) {
                if (m.seq <= upto)
                  out.emplace_back(
                      m.seq, std::make_shared<const std::string>(chat::EncodeMessageFrame(m)));
              }
            }
            done(std::move(out));
          });
    };
    e.cluster = std::make_unique<cluster::Engine>(loops, metrics, std::move(o));
    e.presence = e.cluster.get();
    e.router = e.cluster.get();
    return e;
  }
  presence::ServiceOptions o;
  o.table = TableOptions(c);
  o.event_log_capacity = static_cast<size_t>(c.presence_event_buffer);
  o.first_seq = static_cast<uint64_t>(base::WallMs()) * 1000;  // see EventLog
  e.single = std::make_unique<presence::Service>(loops, metrics, o);
  e.presence = e.single.get();
  e.router = e.single.get();
  return e;
}

// The outbox worker as the message path sees it.
class SchedulerClock final : public chat::SmsClock {
 public:
  explicit SchedulerClock(notify::Scheduler& s) : s_(s) {}
  void PullEarlier(int64_t id, int64_t due_at) override { s_.PullEarlier(id, due_at); }

 private:
  notify::Scheduler& s_;
};

}  // namespace

// Declared in the order they are built; destroyed in reverse.
struct Node::Parts {
  Parts(config::Config c, base::SteadyClock clock)
      : cfg(std::move(c)),
        file_limit(RaiseFileLimit()),
        loops(static_cast<size_t>(cfg.threads), 100, clock),
        metrics(loops.size()),
        engines(MakeEngines(cfg, loops, metrics, &store)),
        channels(cfg.channels),
        store(OpenStore(cfg, metrics)),
        policies(notify::Policies::Build(cfg.channels)),
        scheduler(*store, policies, metrics, SchedulerOptions(cfg)),
        sms_clock(scheduler),
        messenger(loops, metrics, *store, *engines.router, &sms_clock),
        ctx(loops, metrics, *engines.presence, *engines.router, channels, *store, messenger,
            ToLive(cfg)),
        http(ctx, &web),
        connect(ctx),
        revocation_sync(ctx, cfg.revocation_poll_ms) {}

  static notify::Scheduler::Options SchedulerOptions(const config::Config& c) {
    notify::Scheduler::Options o;
    o.tick_ms = c.notify_tick_ms;
    o.owner = c.node_id;
    o.lease_ms = c.outbox_lease_ms;
    return o;
  }

  config::Config cfg;
  int64_t file_limit;
  base::LoopGroup loops;
  base::Metrics metrics;
  Engines engines;
  api::Channels channels;
  std::unique_ptr<store::Service> store;
  notify::PolicySource policies;
  notify::Scheduler scheduler;
  SchedulerClock sms_clock;
  chat::Messenger messenger;
  api::Context ctx;
  api::StaticFiles web;
  api::HttpApi http;
  api::ConnectEndpoint connect;
  api::RevocationSync revocation_sync;
  std::unique_ptr<net::Server> server;
  std::unique_ptr<api::MetricsHttp> metrics_http;
  std::unique_ptr<net::Server> metrics_server;
  bool stopped = false;
};

Node::Node(std::unique_ptr<Parts> p) : p_(std::move(p)) {}

Node::~Node() { Stop(); }

std::unique_ptr<Node> Node::Start(config::Config cfg, const std::function<void(store::Db&)>& seed,
                                  base::SteadyClock clock) {
  spdlog::set_level(spdlog::level::from_str(cfg.log_level));
  signal(SIGPIPE, SIG_IGN);
  auto p = std::make_unique<Parts>(std::move(cfg), clock);
  Parts& n = *p;
  n.ctx.sends.Set(n.cfg.max_sends_per_s, SendBurst(n.cfg));
  std::unique_ptr<notify::Provider> provider = MakeProvider(n.cfg, n.scheduler);
  if (seed) {
    std::promise<void> seeded;
    n.store->Write<bool>(
        [&seed](store::Db& db) {
          seed(db);
          return true;
        },
        [&seeded](store::Outcome<bool> o) {
          if (!o.ok()) spdlog::error("seed: {}", o.error);
          seeded.set_value();
        });
    seeded.get_future().wait();
  }
  std::string web_dir = api::FindWebDir(n.cfg.web_dir);
  if (n.web.Load(web_dir) == 0)
    spdlog::warn("no web pages found (web_dir '{}'): /desk and /widget are off", web_dir);

  net::ServerOptions sopts = ServerOptionsOf(n.cfg, n.file_limit);
  n.server = std::make_unique<net::Server>(n.loops, n.metrics, sopts, n.http, n.connect);
  try {
    n.server->Start();
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot listen on " + n.cfg.listen + ": " + e.what());
  }
  // /metrics apart from the public listener. Not being able to bind it is
  // not fatal (another process has the default port): said, and served off.
  if (!n.cfg.metrics_listen.empty()) {
    net::ServerOptions mo;
    mo.host = n.cfg.metrics_host;
    mo.port = n.cfg.metrics_port;
    mo.http_only = true;
    mo.max_connections = 64;
    n.metrics_http = std::make_unique<api::MetricsHttp>(n.http);
    n.metrics_server =
        std::make_unique<net::Server>(n.loops, n.metrics, mo, *n.metrics_http, n.connect);
    try {
      n.metrics_server->Start();
      spdlog::info("metrics on http://{}:{}/metrics", n.cfg.metrics_host, n.metrics_server->port());
    } catch (const std::exception& e) {
      spdlog::warn("metrics_listen {}: {}; /metrics is not served apart", n.cfg.metrics_listen,
                   e.what());
      n.metrics_server.reset();
    }
  }
  n.loops.Start();
  if (n.engines.cluster) n.engines.cluster->Start();
  n.scheduler.Start(std::move(provider));
  try {
    n.revocation_sync.Start();
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("store: ") + e.what());
  }
  n.ctx.ready = true;
  spdlog::info("onlined {} on {}:{} with {} loops, {} channel(s), max {} connections",
               ONLINED_VERSION, n.cfg.listen_host, n.server->port(), n.loops.size(),
               n.cfg.channels.size(), sopts.max_connections);
  return std::unique_ptr<Node>(new Node(std::move(p)));
}

uint16_t Node::port() const { return p_->server->port(); }

std::optional<uint16_t> Node::metrics_port() const {
  if (!p_->metrics_server) return std::nullopt;
  return p_->metrics_server->port();
}

const config::Config& Node::config() const { return p_->cfg; }

void Node::Reload(config::Config next) {
  Parts& n = *p_;
  const std::vector<std::string> restart = KeepRestartOnly(n.cfg, next);
  if (n.engines.cluster) KeepClusterChannels(*n.channels.Get(), next);
  spdlog::set_level(spdlog::level::from_str(next.log_level));
  n.channels.Replace(next.channels);
  // Sessions whose key (or channel) is gone end now (close 4002).
  api::LiveSession::Sweep keys;
  keys.keys = true;
  n.ctx.RecheckSessions(std::move(keys));
  n.policies.Set(notify::Policies::Build(next.channels));  // time zones read here, once
  n.ctx.set_settings(ToLive(next));
  n.ctx.sends.Set(next.max_sends_per_s, SendBurst(next));
  if (n.engines.single) n.engines.single->SetTableOptions(TableOptions(next));
  if (n.engines.cluster) n.engines.cluster->SetGrace(next.offline_grace_ms);
  n.server->SetLimits(ServerOptionsOf(next, n.file_limit));
  if (next.store_faults != n.cfg.store_faults) {
    store::FaultSpec spec;
    std::string err;
    if (n.cfg.store_faults.empty()) {
      spdlog::warn("SIGHUP: store_faults needs a restart to take effect");
      next.store_faults.clear();
    } else if (!store::ParseFaultSpec(next.store_faults.empty() ? "none" : next.store_faults, spec,
                                      err)) {
      spdlog::error("SIGHUP: store_faults: {}", err);
      next.store_faults = n.cfg.store_faults;
    } else {
      store::SetFaults(spec);
      spdlog::warn("SIGHUP: store faults now '{}'", next.store_faults);
      if (next.store_faults.empty()) next.store_faults = "none";
    }
  }
  if (!restart.empty()) {
    std::string names;
    for (const std::string& k : restart) names += (names.empty() ? "" : ", ") + k;
    spdlog::warn("SIGHUP: changed, but applied only by a restart (running as before): {}", names);
  }
  spdlog::info("SIGHUP: settings reloaded ({} channel(s))", next.channels.size());
  n.cfg = std::move(next);
}

void Node::TickLoops() { p_->loops.TickAll(); }

void Node::Stop() {
  Parts& n = *p_;
  if (n.stopped) return;
  n.stopped = true;
  spdlog::info("draining: closing connections with 1001");
  n.ctx.ready = false;
  n.revocation_sync.Stop();
  n.server->Stop();
  if (n.metrics_server) n.metrics_server->Stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  n.scheduler.Stop();
  if (n.engines.cluster) n.engines.cluster->Stop();  // peers drop this node at once
  n.loops.Stop();
  n.store->Stop();  // completes what was queued: every acknowledged write is committed
  // What the loops still hold (an idle keep-alive socket, an answer the store
  // posted to a stopped loop) goes now, while the server, the context and
  // the metrics it reaches exist; not when the loops are destroyed, last.
  n.loops.DestroyPending();
  spdlog::info("stopped");
}

}  // namespace onlined::app
