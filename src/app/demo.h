#pragma once
// The demo (`onlined demo`): a channel "demo" whose secret is kept in the
// demo's data directory (so tokens and open pages survive a restart), three
// users with a chat each, and the URLs a newcomer opens. Main thread only.
#include <cstdint>
#include <optional>
#include <string>

#include "config/config.h"
#include "store/db.h"

namespace onlined::app {

// The demo's settings: `listen` (default 127.0.0.1:8080), data in the
// system's temp directory, SMS after 30 s at any hour, the `log` provider.
// Throws config::ConfigError as config::Load does.
config::Config DemoConfig(const std::optional<std::string>& listen);

// Users with chats and a little history, so the desk has something to show.
// Idempotent: an earlier run's users are left as they are.
void SeedDemo(store::Db& db);

// Prints the desk's and the widgets' URLs (tokens valid 24 h) to stdout.
void PrintDemoUrls(const config::Config& cfg, uint16_t port, std::optional<uint16_t> metrics_port);

}  // namespace onlined::app
