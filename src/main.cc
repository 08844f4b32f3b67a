// onlined: wiring only. Parses the command line, loads settings, builds the
// engines and the server, and waits for signals (TERM/INT: drain and stop;
// HUP: reload settings that can change live).
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>

#include "chat/messages.h"

#include "api/connect.h"
#include "api/context.h"
#include "api/http_api.h"
#include "auth/token.h"
#include "base/clock.h"
#include "base/loops.h"
#include "base/metrics.h"
#include "config/config.h"
#include "net/server.h"
#include "notify/scheduler.h"
#include "presence/service.h"
#include "store/service.h"
#include "store/sqlite/fault_vfs.h"
#include "store/sqlite/sqlite_db.h"

namespace {

using namespace onlined;

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
  s.retry_after_ms = c.retry_after_ms;
  s.max_text_bytes = c.max_text_bytes;
  s.sms_auth_token = c.sms.auth_token;
  s.sms_public_url = c.sms.public_url;
  s.metrics_token = c.metrics_token;
  s.frame_ancestors = c.frame_ancestors;
  while (!s.sms_public_url.empty() && s.sms_public_url.back() == '/') s.sms_public_url.pop_back();
  return s;
}

// The SMS policy of a channel, from the current channel table.
presence::PresenceTable::Options TableOptions(const config::Config& c) {
  presence::PresenceTable::Options o;
  o.offline_grace_ms = c.offline_grace_ms;
  return o;
}

void SetLogLevel(const std::string& level) { spdlog::set_level(spdlog::level::from_str(level)); }

int64_t MaxConnections(const config::Config& c, int64_t file_limit) {
  if (c.max_connections > 0) return c.max_connections;
  return std::max<int64_t>(64, file_limit - 256);  // leave room for files, the store, the reserve
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
  o.max_connections = MaxConnections(cfg, file_limit);
  o.max_connections_per_ip = cfg.max_connections_per_ip;
  o.handshakes_per_s = cfg.handshakes_per_s;
  o.handshake_burst = cfg.handshake_burst;
  o.max_http_in_flight = cfg.max_http_in_flight;
  o.retry_after_ms = cfg.retry_after_ms;
  o.http_idle_timeout_ms = cfg.http_idle_timeout_ms;
  return o;
}

// Runs the server until SIGTERM/SIGINT. `on_ready` runs once listening.
int Serve(config::Config cfg, const std::function<void(const config::Config&, uint16_t)>& on_ready,
          const std::function<void(store::Db&)>& seed = {}) {
  SetLogLevel(cfg.log_level);
  // Signals are taken synchronously by this thread only.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const int64_t file_limit = RaiseFileLimit();
  base::LoopGroup loops(static_cast<size_t>(cfg.threads));
  base::Metrics metrics(loops.size());
  presence::ServiceOptions popts;
  popts.table = TableOptions(cfg);
  popts.event_log_capacity = static_cast<size_t>(cfg.presence_event_buffer);
  popts.first_seq = static_cast<uint64_t>(base::WallMs()) * 1000;  // see EventLog
  presence::Service presence(loops, metrics, popts);
  api::Channels channels(cfg.channels);
  api::Context ctx(loops, metrics, presence, channels, ToLive(cfg));
  ctx.sends.Set(cfg.max_sends_per_s, SendBurst(cfg));

  // The durable store (SQLite in data_dir) and the outbox worker.
  std::unique_ptr<store::Service> store;
  try {
    std::string dir = cfg.data_dir;
    store::Service::Options sto;
    sto.max_batch = static_cast<size_t>(cfg.store_max_batch);
    sto.max_queue_delay_ms = cfg.store_max_queue_delay_ms;
    // store_faults (tests only) puts the files behind the fault VFS.
    const bool faults = !cfg.store_faults.empty();
    if (faults) {
      store::FaultSpec spec;
      std::string err;
      if (!store::ParseFaultSpec(cfg.store_faults, spec, err)) throw std::runtime_error("store_faults: " + err);
      store::SetFaults(spec);
      spdlog::warn("store_faults is set: the store fails on purpose ({})", cfg.store_faults);
    }
    store = std::make_unique<store::Service>(
        [dir, faults](bool writer) { return store::OpenSqlite(dir, writer, faults); }, sto, metrics);
  } catch (const std::exception& e) {
    spdlog::critical("cannot open the store in {}: {}", cfg.data_dir, e.what());
    return 1;
  }
  notify::Scheduler::Options nopts;
  nopts.tick_ms = cfg.notify_tick_ms;
  notify::PolicySource policies(notify::Policies::Build(cfg.channels));
  notify::Scheduler scheduler(*store, policies, metrics, nopts);
  std::unique_ptr<notify::Provider> provider;
  if (cfg.sms.provider == "twilio") {
    notify::TwilioOptions t;
    t.base_url = cfg.sms.base_url;
    t.account_sid = cfg.sms.account_sid;
    t.auth_token = cfg.sms.auth_token;
    t.from = cfg.sms.from;
    t.timeout_ms = cfg.sms.timeout_ms;
    if (!cfg.sms.public_url.empty()) t.status_callback_url = ToLive(cfg).sms_public_url + "/v1/sms/status";
    try {
      provider = notify::MakeTwilioProvider(scheduler.io(), t);
    } catch (const std::exception& e) {
      spdlog::critical("sms: {}", e.what());
      return 2;
    }
  } else {
    provider = notify::MakeLogProvider(scheduler.io());
  }
  ctx.store = store.get();
  ctx.scheduler = &scheduler;
  if (seed) {
    std::promise<void> seeded;
    store->Write<bool>(
        [&seed](store::Db& db) {
          seed(db);
          return true;
        },
        [&seeded](store::Outcome<bool> o) {
          if (!o.ok()) spdlog::error("demo seed: {}", o.error);
          seeded.set_value();
        });
    seeded.get_future().wait();
  }
  api::StaticFiles web;
  std::string web_dir = api::FindWebDir(cfg.web_dir);
  size_t pages = web.Load(web_dir);
  if (pages == 0) spdlog::warn("no web pages found (web_dir '{}'): /desk and /widget are off", web_dir);
  api::HttpApi http(ctx, &web);
  api::ConnectEndpoint connect(ctx);

  net::ServerOptions sopts = ServerOptionsOf(cfg, file_limit);
  net::Server server(loops, metrics, sopts, http, connect);
  try {
    server.Start();
  } catch (const std::exception& e) {
    spdlog::critical("cannot listen on {}: {}", cfg.listen, e.what());
    return 1;
  }
  // /metrics apart from the public listener. Not being able to bind it is
  // not fatal (another process has the default port): said, and counted off.
  api::MetricsHttp metrics_http(http);
  std::unique_ptr<net::Server> metrics_server;
  if (!cfg.metrics_listen.empty()) {
    net::ServerOptions mo;
    mo.host = cfg.metrics_host;
    mo.port = cfg.metrics_port;
    mo.http_only = true;
    mo.max_connections = 64;
    mo.max_connections_per_ip = 0;
    metrics_server = std::make_unique<net::Server>(loops, metrics, mo, metrics_http, connect);
    try {
      metrics_server->Start();
      spdlog::info("metrics on http://{}:{}/metrics", cfg.metrics_host, metrics_server->port());
    } catch (const std::exception& e) {
      spdlog::warn("metrics_listen {}: {}; /metrics is not served apart", cfg.metrics_listen, e.what());
      metrics_server.reset();
    }
  }
  loops.Start();
  scheduler.Start(std::move(provider));
  ctx.ready = true;
  spdlog::info("onlined {} on {}:{} with {} loops, {} channel(s), max {} connections",
               ONLINED_VERSION, cfg.listen_host, server.port(), loops.size(), cfg.channels.size(),
               sopts.max_connections);
  on_ready(cfg, server.port());

  for (;;) {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (sig != SIGHUP) break;
    if (!cfg.path) {
      spdlog::warn("SIGHUP: no config file to re-read");
      continue;
    }
    try {
      config::Overrides keep;
      keep.listen = cfg.listen;
      keep.data_dir = cfg.data_dir;
      config::Config next = config::Load(cfg.path, config::EnvFromProcess(), keep);
      SetLogLevel(next.log_level);
      channels.Replace(next.channels);
      policies.Set(notify::Policies::Build(next.channels));  // time zones read here, once
      ctx.set_settings(ToLive(next));
      ctx.sends.Set(next.max_sends_per_s, SendBurst(next));
      presence.SetTableOptions(TableOptions(next));
      server.SetLimits(ServerOptionsOf(next, file_limit));
      if (next.store_faults != cfg.store_faults) {
        store::FaultSpec spec;
        std::string err;
        if (cfg.store_faults.empty()) {
          spdlog::warn("SIGHUP: store_faults needs a restart to take effect");
        } else if (!store::ParseFaultSpec(next.store_faults.empty() ? "none" : next.store_faults, spec, err)) {
          spdlog::error("SIGHUP: store_faults: {}", err);
        } else {
          store::SetFaults(spec);
          spdlog::warn("SIGHUP: store faults now '{}'", next.store_faults);
          next.store_faults = next.store_faults.empty() ? "none" : next.store_faults;
        }
      }
      spdlog::info("SIGHUP: settings reloaded ({} channel(s)); listen and data_dir need a restart",
                   next.channels.size());
      cfg = std::move(next);
    } catch (const std::exception& e) {
      spdlog::error("SIGHUP: reload refused, keeping the running settings: {}", e.what());
    }
  }
  spdlog::info("draining: closing connections with 1001");
  ctx.ready = false;
  server.Stop();
  if (metrics_server) metrics_server->Stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  scheduler.Stop();
  loops.Stop();
  store->Stop();  // completes what was queued: every acknowledged write is committed
  spdlog::info("stopped");
  return 0;
}

std::string RandomSecret() {
  std::random_device rd;
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string s;
  for (int i = 0; i < 40; ++i) s.push_back(kAlphabet[rd() % (sizeof kAlphabet - 1)]);
  return s;
}

std::string MintFor(const config::Channel& ch, auth::Role role, const std::string& sub, int64_t ttl_s) {
  auth::Claims c{ch.id, sub, role, base::WallMs() / 1000 + ttl_s};
  return auth::Mint(c, ch.secret);
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("onlined"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  CLI::App app{"onlined: who is online, live, and messages that always arrive"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(ONLINED_VERSION));

  std::optional<std::string> config_path;
  config::Overrides flags;
  auto* serve = app.add_subcommand("serve", "Run the server");
  serve->add_option("--config", config_path, "TOML settings file");
  serve->add_option("--listen", flags.listen, "HOST:PORT (overrides the file)");
  serve->add_option("--data-dir", flags.data_dir, "data directory (overrides the file)");
  serve->add_option("--log-level", flags.log_level, "trace|debug|info|warn|error|off");

  std::optional<std::string> demo_listen;
  auto* demo = app.add_subcommand("demo", "Run with a demo channel; prints URLs and tokens");
  demo->add_option("--listen", demo_listen, "HOST:PORT (default 127.0.0.1:8080)");

  std::string token_config, token_channel, token_role, token_sub;
  int64_t token_ttl = 3600;
  auto* token = app.add_subcommand("token", "Print a signed token");
  token->add_option("--config", token_config, "TOML settings file")->required();
  token->add_option("--channel", token_channel, "channel id")->required();
  token->add_option("--role", token_role, "user|manager|server")->required();
  token->add_option("--sub", token_sub, "user or manager id")->required();
  token->add_option("--ttl", token_ttl, "lifetime in seconds (default 3600)")->check(CLI::Range(1, 366 * 86400));

  CLI11_PARSE(app, argc, argv);

  try {
    if (*serve) {
      config::Config cfg = config::Load(config_path, config::EnvFromProcess(), flags);
      if (cfg.channels.empty()) spdlog::warn("no [[channels]] configured: every token will be refused");
      return Serve(std::move(cfg), [](const config::Config&, uint16_t port) {
        std::printf("onlined: listening on http://%s:%u\n", "127.0.0.1", port);
        std::fflush(stdout);
      });
    }
    if (*demo) {
      config::Overrides o;
      o.listen = demo_listen.value_or("127.0.0.1:8080");
      o.data_dir = (std::filesystem::temp_directory_path() / "onlined-demo").string();
      config::Config cfg = config::Load(std::nullopt, config::EnvFromProcess(), o);
      config::Channel ch;
      ch.id = "demo";
      // Kept in the demo's data dir, so tokens (and open pages) survive a restart.
      std::filesystem::create_directories(cfg.data_dir);
      std::string secret_path = cfg.data_dir + "/demo-secret";
      std::ifstream in(secret_path);
      std::getline(in, ch.secret);
      if (ch.secret.size() < 16) {
        ch.secret = RandomSecret();
        std::ofstream(secret_path) << ch.secret << "\n";
        std::filesystem::permissions(secret_path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
      }
      ch.sms_delay_s = 30;
      ch.quiet_hours.enabled = false;  // the demo shows an SMS at any hour
      ch.quiet_hours_text = "off";
      cfg.channels.push_back(ch);
      auto seed = [](store::Db& db) {
        // Users with chats and a little history, so the desk has something to show.
        const int64_t now = base::WallMs();
        const char* names[] = {"alice", "bob", "carol"};
        const char* first[] = {"Hi! My order #1042 has not arrived yet.", "Can I change my delivery address?",
                               "Do you ship to Canada?"};
        for (int i = 0; i < 3; ++i) {
          if (db.FindChatOfUser("demo", names[i])) continue;  // seeded by an earlier run
          db.PutUser({"demo", names[i], std::string(1, static_cast<char>(names[i][0] - 32)) + (names[i] + 1),
                      "+1555010000" + std::to_string(i), i != 2, now});
          chat::SendInput in;
          in.channel = "demo";
          in.from = "user";
          in.user_id = in.sender_id = names[i];
          in.text = first[i];
          in.now = now - (3 - i) * 60000;
          chat::Send(db, in);
        }
      };
      return Serve(
          std::move(cfg),
          [](const config::Config& c, uint16_t port) {
        const config::Channel& ch = c.channels.front();
        std::string host = c.listen_host == "0.0.0.0" ? "127.0.0.1" : c.listen_host;
        std::string base = "http://" + host + ":" + std::to_string(port);
        std::printf("onlined demo is running (channel \"demo\", tokens valid 24 h)\n\n");
        std::printf("  Desk (the support team's inbox):\n    %s/desk#token=%s\n\n", base.c_str(),
                    MintFor(ch, auth::Role::kManager, "manager-1", 86400).c_str());
        std::printf("  Chat widget, one per user (open a few tabs and watch the desk):\n");
        for (const char* u : {"alice", "bob", "carol"}) {
          std::printf("    %-6s %s/widget#token=%s\n", u, base.c_str(), MintFor(ch, auth::Role::kUser, u, 86400).c_str());
        }
        std::printf("\n  API:  %s/v1/...   WebSocket: ws://%s:%u/v1/connect   metrics: %s/metrics\n", base.c_str(),
                    host.c_str(), port, base.c_str());
        std::printf("  SMS go to this log (provider \"log\"): close a widget, write to that user from the desk,\n"
                    "  and the desk shows the SMS scheduled, then sent, 30 s later. Ctrl-C stops it.\n");
        std::fflush(stdout);
      },
          seed);
    }
    if (*token) {
      config::Config cfg = config::Load(token_config, config::EnvFromProcess(), {});
      const config::Channel* ch = cfg.FindChannel(token_channel);
      if (ch == nullptr) {
        std::fprintf(stderr, "onlined token: no channel '%s' in %s\n", token_channel.c_str(), token_config.c_str());
        return 2;
      }
      auth::Role role;
      if (!auth::ParseRole(token_role, role)) {
        std::fprintf(stderr, "onlined token: --role must be user, manager or server\n");
        return 2;
      }
      std::printf("%s\n", MintFor(*ch, role, token_sub, token_ttl).c_str());
      return 0;
    }
  } catch (const config::ConfigError& e) {
    std::fprintf(stderr, "onlined: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "onlined: %s\n", e.what());
    return 1;
  }
  return 0;
}
