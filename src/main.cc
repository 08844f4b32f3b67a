// onlined: wiring only. Parses the command line, loads the settings, starts
// a node (app/node.h) and waits for signals: TERM/INT drain and stop; HUP
// re-reads the file and applies what can change live.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>

#include "app/demo.h"
#include "app/node.h"
#include "auth/token.h"
#include "base/clock.h"
#include "config/config.h"

namespace {

using namespace onlined;

// Blocks TERM, INT and HUP in every thread (the node's threads inherit the
// mask), so that only WaitForSignals takes them.
sigset_t BlockSignals() {
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  return sigs;
}

// Serves until TERM or INT; HUP reloads from the file, refusing a file that
// does not load (the running settings stay).
int RunUntilStopped(app::Node& node, const sigset_t& sigs) {
  for (;;) {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (sig != SIGHUP) break;
    const std::optional<std::string>& path = node.config().path;
    if (!path) {
      spdlog::warn("SIGHUP: no config file to re-read");
      continue;
    }
    try {
      config::Overrides keep;
      keep.listen = node.config().listen;
      keep.data_dir = node.config().data_dir;
      node.Reload(config::Load(path, config::EnvFromProcess(), keep));
    } catch (const std::exception& e) {
      spdlog::error("SIGHUP: reload refused, keeping the running settings: {}", e.what());
    }
  }
  node.Stop();
  return 0;
}

int Run(int argc, char** argv) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("onlined"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  CLI::App cli{"onlined: who is online, live, and messages that always arrive"};
  cli.require_subcommand(1);
  cli.set_version_flag("--version", std::string(ONLINED_VERSION));

  std::optional<std::string> config_path;
  config::Overrides flags;
  auto* serve = cli.add_subcommand("serve", "Run the server");
  serve->add_option("--config", config_path, "TOML settings file");
  serve->add_option("--listen", flags.listen, "HOST:PORT (overrides the file)");
  serve->add_option("--data-dir", flags.data_dir, "data directory (overrides the file)");
  serve->add_option("--log-level", flags.log_level, "trace|debug|info|warn|error|off");

  std::optional<std::string> demo_listen;
  auto* demo = cli.add_subcommand("demo", "Run with a demo channel; prints URLs and tokens");
  demo->add_option("--listen", demo_listen, "HOST:PORT (default 127.0.0.1:8080)");

  std::string token_config, token_channel, token_role, token_sub;
  int64_t token_ttl = 3600;
  auto* token = cli.add_subcommand("token", "Print a signed token");
  token->add_option("--config", token_config, "TOML settings file")->required();
  token->add_option("--channel", token_channel, "channel id")->required();
  token->add_option("--role", token_role, "user|manager|server")->required();
  token->add_option("--sub", token_sub, "user or manager id")->required();
  token->add_option("--ttl", token_ttl, "lifetime in seconds (default 3600)")
      ->check(CLI::Range(1, 366 * 86400));

  CLI11_PARSE(cli, argc, argv);

  try {
    if (*serve || *demo) {
      const sigset_t sigs = BlockSignals();
      config::Config cfg = *demo ? app::DemoConfig(demo_listen)
                                 : config::Load(config_path, config::EnvFromProcess(), flags);
      if (cfg.channels.empty())
        spdlog::warn("no [[channels]] configured: every token will be refused");
      std::unique_ptr<app::Node> node =
          app::Node::Start(cfg, *demo ? app::SeedDemo : std::function<void(store::Db&)>{});
      if (*demo) {
        app::PrintDemoUrls(node->config(), node->port(), node->metrics_port());
      } else {
        const std::string& host = node->config().listen_host;
        const bool v6 = host.find(':') != std::string::npos;
        std::printf("onlined: listening on http://%s%s%s:%u\n", v6 ? "[" : "", host.c_str(),
                    v6 ? "]" : "", node->port());
        std::fflush(stdout);
      }
      return RunUntilStopped(*node, sigs);
    }
    if (*token) {
      config::Config cfg = config::Load(token_config, config::EnvFromProcess(), {});
      const config::Channel* ch = cfg.FindChannel(token_channel);
      if (ch == nullptr) {
        std::fprintf(stderr, "onlined token: no channel '%s' in %s\n", token_channel.c_str(),
                     token_config.c_str());
        return 2;
      }
      auth::Role role;
      if (!auth::ParseRole(token_role, role)) {
        std::fprintf(stderr, "onlined token: --role must be user, manager or server\n");
        return 2;
      }
      const int64_t now_s = base::WallMs() / 1000;
      const config::ChannelKey key = ch->SigningKey();
      std::printf("%s\n", auth::Mint({ch->id, token_sub, role, now_s + token_ttl, now_s},
                                     key.secret, key.kid)
                              .c_str());
      return 0;
    }
  } catch (const config::ConfigError& e) {
    std::fprintf(stderr, "onlined: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {  // before the logger exists, or from a handler
    std::fprintf(stderr, "onlined: %s\n", e.what());
    return 1;
  } catch (...) {
    std::fputs("onlined: unexpected error\n", stderr);
    return 1;
  }
}
