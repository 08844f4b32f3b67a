#pragma once
// Settings of onlined, v1 (docs/protocol.md "Configuration"; README lists them all).
// Sources, later wins: defaults, the TOML file, ONLINED_* environment, flags.
// Loading throws ConfigError whose message names the key and its source;
// errors are a start-up (or SIGHUP) matter, never a hot path.
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace onlined::config {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct QuietHours {
  int start_min = 21 * 60;  // minutes after local midnight
  int end_min = 8 * 60;
  bool enabled = true;
};

// A key that signs a channel's tokens, named by the tokens' `kid` header.
struct ChannelKey {
  std::string kid;
  std::string secret;
};

struct Channel {
  std::string id;
  // The key of tokens without `kid` ("" if the channel has only `keys`).
  std::string secret;
  // [[channels.keys]]: keys named by `kid`, so that a new key can sign
  // tokens while the old one still verifies the tokens it signed (rotation
  // with overlap). Removing one (SIGHUP) ends the sessions it signed.
  std::vector<ChannelKey> keys;
  int sms_delay_s = 120;
  int ack_timeout_s = 10;
  int sms_min_interval_s = 600;  // at most one SMS per user per this
  QuietHours quiet_hours;
  std::string quiet_hours_text = "21:00-08:00";
  std::string time_zone = "UTC";
  // The longest a token of each role may live (exp - iat, or exp - now for
  // a token without iat); 0: no limit.
  int64_t max_user_token_s = 30 * 86400;
  int64_t max_manager_token_s = 86400;
  int64_t max_server_token_s = 0;
  // A user session's `send` frames: this many at once, then this many a
  // second (0: no limit); past it `rate_limited` with retry_after_ms.
  int64_t user_send_burst = 20;
  double user_sends_per_s = 1.0;
  // The same, for all of one user's sessions on this node together (a user
  // with many tabs, or reconnecting, is one sender).
  int64_t user_total_send_burst = 40;
  double user_total_sends_per_s = 2.0;
  // A manager's sends (POST .../messages), per manager on this node.
  int64_t manager_send_burst = 100;
  double manager_sends_per_s = 20.0;
  // A session's `ack` and `read` frames (each one a store write).
  int64_t receipt_burst = 100;
  double receipts_per_s = 20.0;

  // The key that signs new tokens (`onlined token`, the demo): the last of
  // `keys`, or `secret` (kid "") if there are none.
  ChannelKey SigningKey() const { return keys.empty() ? ChannelKey{"", secret} : keys.back(); }
};

struct Sms {
  std::string provider = "log";  // "log" | "twilio"
  std::string base_url = "https://api.twilio.com";
  std::string account_sid;
  std::string auth_token;
  std::string from;
  std::string public_url;      // the base URL the provider calls back (webhook signatures)
  int64_t timeout_ms = 10000;  // one provider request, connect to answer
  bool operator==(const Sms&) const = default;
};

// [cluster]: many nodes over NATS sharing one PostgreSQL store (README
// "Cluster mode"). On when nats_urls is set.
struct Cluster {
  std::vector<std::string> nats_urls;  // nats://host:port, any of the NATS cluster's servers
  std::string postgres_url;            // sets store.engine = "postgres" and its URL
  int64_t beat_ms = 1000;              // a node's beat to its peers
  int64_t dead_after_ms = 3000;        // a peer silent this long is gone (a freeze, a partition)
  int64_t stream_replicas = 3;  // JetStream replicas of the presence stream (1 if fewer servers)
  int64_t join_wait_ms = 2000;  // a new node waits at most this long for peers' snapshots
  bool present = false;         // the table was given
  bool enabled() const { return !nats_urls.empty(); }
  bool operator==(const Cluster&) const = default;
};

struct Config {
  std::string listen = "127.0.0.1:8080";
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8080;
  std::string data_dir = "./data";
  int heartbeat_s = 25;
  int64_t heartbeat_timeout_ms = 0;  // 0: 2.5 x heartbeat_s
  int64_t offline_grace_ms = 10000;
  int64_t hello_timeout_ms = 10000;
  int64_t token_leeway_s = 30;  // clock skew allowed on a token's nbf, iat and exp
  int64_t max_frame_bytes = 64 * 1024;
  int64_t max_body_bytes = 1024 * 1024;
  int64_t max_connections = 0;            // every socket; 0: derived from the open-file limit
  int64_t max_connections_per_ip = 1024;  // sockets from one source address; 0: unlimited
  double handshakes_per_s = 0;            // WebSocket upgrades admitted per second; 0: unlimited
  double handshake_burst = 0;             // the bucket's size; 0: one second's worth
  int64_t max_http_in_flight = 4096;      // requests waiting for an answer; 0: unlimited
  int64_t http_idle_timeout_ms = 10000;   // for a request's headers and between requests
  std::string metrics_listen = "127.0.0.1:9464";  // /metrics apart; "" for none
  std::string metrics_host;                       // parsed from metrics_listen
  uint16_t metrics_port = 0;
  std::string metrics_token;               // if set, /metrics on `listen` with this Bearer token
  std::string frame_ancestors = "'none'";  // CSP frame-ancestors of /desk and /widget
  // Testing only: "" off; "none", "write=N", "sync=N", "dbsync=N", "full".
  std::string store_faults;
  // [store] (or store_<key> at the top): the engine of the durable state.
  std::string store_engine = "sqlite";  // "sqlite" (embedded, data_dir) | "postgres"
  std::string store_postgres_url;       // libpq URL or key=value string (engine postgres)
  int64_t drain_spread_ms = 2000;       // SIGTERM: clients told to come back within this, spread
  std::string node_id;                  // this node in outbox claims; "": host:port
  int64_t outbox_lease_ms = 60000;      // a send's claim; then another node may retry it
  int64_t send_queue_max = 1024;        // frames queued to one connection before it is cut
  int64_t desk_send_queue_max = 8192;   // the same for a desk's (manager or server role) connection
  int64_t ws_read_budget_bytes = 1 << 20;  // one connection's reads per wakeup, then the others
  int64_t presence_event_buffer = 4096;    // events kept per channel for resume
  int64_t retry_after_ms = 5000;           // the wait handed to refused clients
  int64_t max_text_bytes = 4000;           // a message's text
  int64_t notify_tick_ms = 250;            // how often the outbox is looked at
  int64_t store_max_batch = 1024;          // writes per group commit (1: each commits alone)
  double max_sends_per_s =
      0;  // messages stored per second on this node (users' and managers'); 0: unlimited
  int64_t store_max_queue_delay_ms =
      100;  // refuse store work while the oldest queued waits longer (0: off)
  // PostgreSQL: an answer slower than this counts as the server lost (0: off).
  int64_t store_timeout_ms = 750;
  // How often the revocations are read from the store (other nodes' ones,
  // in cluster mode; expired ones forgotten).
  int64_t revocation_poll_ms = 1000;
  std::string web_dir;  // the desk and widget pages ("": found next to the binary)
  int threads = 0;      // 0: one loop per core
  // 1: WebSocket reads and writes batched through io_uring where the kernel
  // allows it (net/batch_io.h); 0: one system call per socket operation.
  int64_t io_uring = 1;
  std::string log_level = "info";
  Sms sms;
  Cluster cluster;
  std::vector<Channel> channels;

  // Where the settings came from (for SIGHUP).
  std::optional<std::string> path;

  int64_t EffectiveHeartbeatTimeoutMs() const {
    return heartbeat_timeout_ms > 0 ? heartbeat_timeout_ms : heartbeat_s * 2500;
  }
  const Channel* FindChannel(std::string_view id) const;
};

// Flag values given on the command line; empty ones are not set.
struct Overrides {
  std::optional<std::string> listen;
  std::optional<std::string> data_dir;
  std::optional<std::string> log_level;
};

// Loads settings from `path` (if any), then `env` (ONLINED_* variables, as
// in environ), then `flags`. Throws ConfigError naming the offending key.
Config Load(const std::optional<std::string>& path, const std::map<std::string, std::string>& env,
            const Overrides& flags);

// Parses from TOML text (tests, demo). `origin` names the source in errors.
Config LoadFromString(const std::string& toml_text, const std::map<std::string, std::string>& env,
                      const Overrides& flags, const std::string& origin = "config");

// The process environment's ONLINED_* variables.
std::map<std::string, std::string> EnvFromProcess();

// "HH:MM-HH:MM"; throws ConfigError naming `key`.
QuietHours ParseQuietHours(const std::string& text, const std::string& key);

}  // namespace onlined::config
