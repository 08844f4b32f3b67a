#include "config/config.h"

#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <type_traits>

extern char** environ;

namespace onlined::config {

namespace {

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

[[noreturn]] void Fail(const std::string& key, const std::string& where, const std::string& what) {
  throw ConfigError("config: " + key + " (" + where + "): " + what);
}

int64_t ParseIntText(const std::string& key, const std::string& where, const std::string& text) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size())
    Fail(key, where, "'" + text + "' is not an integer");
  return v;
}

// Typed readers for one TOML node.
int64_t GetInt(const toml::node& n, const std::string& key, const std::string& where, int64_t lo,
               int64_t hi) {
  std::optional<int64_t> v = n.value<int64_t>();
  if (!v) Fail(key, where, "must be an integer");
  if (*v < lo || *v > hi) {
    Fail(key, where, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  }
  return *v;
}

std::string GetStr(const toml::node& n, const std::string& key, const std::string& where) {
  if (!n.is_string()) Fail(key, where, "must be a string");
  return *n.value<std::string>();
}

// A rate per second: a number from 0 (no limit) to a million.
double GetRate(const toml::node& n, const std::string& key, const std::string& where) {
  std::optional<double> v = n.value<double>();
  if (!v || !(*v >= 0 && *v <= 1e6)) Fail(key, where, "must be a number from 0 to 1000000");
  return *v;
}

constexpr int64_t kMaxLifetimeS = 10LL * 365 * 86400;

// [[channels.keys]]: each { kid, secret }, kids distinct.
std::vector<ChannelKey> GetKeys(const toml::node& n, const std::string& key,
                                const std::string& where) {
  const toml::array* a = n.as_array();
  if (!a) Fail(key, where, "must be an array of tables ([[channels.keys]])");
  std::vector<ChannelKey> out;
  size_t i = 0;
  for (const auto& el : *a) {
    std::string base = key + "[" + std::to_string(i++) + "]";
    const toml::table* t = el.as_table();
    if (!t) Fail(base, where, "must be a table with kid and secret");
    ChannelKey k;
    for (const auto& [kk, kv] : *t) {
      if (kk == "kid")
        k.kid = GetStr(kv, base + ".kid", where);
      else if (kk == "secret")
        k.secret = GetStr(kv, base + ".secret", where);
      else
        Fail(base + "." + std::string(kk.str()), where, "unknown setting");
    }
    if (k.kid.empty() || k.kid.size() > 64) Fail(base + ".kid", where, "must be 1-64 characters");
    if (k.secret.size() < 16) Fail(base + ".secret", where, "must be at least 16 characters");
    for (const ChannelKey& o : out) {
      if (o.kid == k.kid) Fail(base + ".kid", where, "'" + k.kid + "' appears twice");
    }
    out.push_back(std::move(k));
  }
  return out;
}

// "HOST:PORT" (IPv6 in brackets) of setting `key`.
void ParseHostPort(const std::string& s, const std::string& key, const std::string& where,
                   std::string& host_out, uint16_t& port_out) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0)
    Fail(key, where, "must be HOST:PORT, got '" + s + "'");
  std::string host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  int64_t port = ParseIntText(key, where, s.substr(colon + 1));
  if (port < 0 || port > 65535) Fail(key, where, "port must be 0..65535");
  host_out = host;
  port_out = static_cast<uint16_t>(port);
}

void ParseListen(Config& c, const std::string& where) {
  ParseHostPort(c.listen, "listen", where, c.listen_host, c.listen_port);
  if (!c.metrics_listen.empty())
    ParseHostPort(c.metrics_listen, "metrics_listen", "config", c.metrics_host, c.metrics_port);
}

bool ValidId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.';
  });
}

// An integer setting of a struct S: its key, bounds and field.
template <class M>
struct OwnerOf;
template <class S, class T>
struct OwnerOf<T S::*> {
  using type = S;
};
template <auto Field>
void SetField(typename OwnerOf<decltype(Field)>::type& c, int64_t v) {
  c.*Field = static_cast<std::remove_reference_t<decltype(c.*Field)>>(v);
}
template <class S>
struct IntSetting {
  const char* key;
  int64_t lo, hi;
  void (*set)(S&, int64_t);
};
// Every top-level scalar setting, once: its key (also ONLINED_<KEY>), its
// range, and the field it sets. ApplyTop and ApplyEnv both read this table.
constexpr IntSetting<Config> kIntSettings[] = {
    {"heartbeat_s", 1, 3600, &SetField<&Config::heartbeat_s>},
    {"heartbeat_timeout_ms", 0, 3600000, &SetField<&Config::heartbeat_timeout_ms>},
    {"offline_grace_ms", 0, 3600000, &SetField<&Config::offline_grace_ms>},
    {"hello_timeout_ms", 100, 600000, &SetField<&Config::hello_timeout_ms>},
    {"token_leeway_s", 0, 3600, &SetField<&Config::token_leeway_s>},
    {"max_frame_bytes", 1024, 16 << 20, &SetField<&Config::max_frame_bytes>},
    {"max_body_bytes", 1024, 64 << 20, &SetField<&Config::max_body_bytes>},
    {"max_connections", 0, 10000000, &SetField<&Config::max_connections>},
    {"max_connections_per_ip", 0, 10000000, &SetField<&Config::max_connections_per_ip>},
    {"handshakes_per_s", 0, 10000000, &SetField<&Config::handshakes_per_s>},
    {"handshake_burst", 0, 10000000, &SetField<&Config::handshake_burst>},
    {"max_http_in_flight", 0, 10000000, &SetField<&Config::max_http_in_flight>},
    {"http_idle_timeout_ms", 100, 600000, &SetField<&Config::http_idle_timeout_ms>},
    {"drain_spread_ms", 0, 600000, &SetField<&Config::drain_spread_ms>},
    {"send_queue_max", 16, 1 << 20, &SetField<&Config::send_queue_max>},
    {"desk_send_queue_max", 16, 1 << 20, &SetField<&Config::desk_send_queue_max>},
    {"ws_read_budget_bytes", 1024, 64 << 20, &SetField<&Config::ws_read_budget_bytes>},
    {"presence_event_buffer", 16, 1 << 24, &SetField<&Config::presence_event_buffer>},
    {"retry_after_ms", 100, 3600000, &SetField<&Config::retry_after_ms>},
    {"max_text_bytes", 1, 1 << 20, &SetField<&Config::max_text_bytes>},
    {"max_sends_per_s", 0, 10000000, &SetField<&Config::max_sends_per_s>},
    {"notify_tick_ms", 10, 60000, &SetField<&Config::notify_tick_ms>},
    {"store_max_batch", 1, 100000, &SetField<&Config::store_max_batch>},
    {"store_max_queue_delay_ms", 0, 600000, &SetField<&Config::store_max_queue_delay_ms>},
    {"store_timeout_ms", 0, 600000, &SetField<&Config::store_timeout_ms>},
    {"outbox_lease_ms", 1000, 86400000, &SetField<&Config::outbox_lease_ms>},
    {"threads", 0, 256, &SetField<&Config::threads>},
    {"io_uring", 0, 1, &SetField<&Config::io_uring>},
    {"revocation_poll_ms", 100, 600000, &SetField<&Config::revocation_poll_ms>},
};
struct StrSetting {
  const char* key;
  std::string Config::*field;
};
constexpr StrSetting kStrSettings[] = {
    {"listen", &Config::listen},
    {"data_dir", &Config::data_dir},
    {"log_level", &Config::log_level},
    {"web_dir", &Config::web_dir},
    {"metrics_listen", &Config::metrics_listen},
    {"metrics_token", &Config::metrics_token},
    {"frame_ancestors", &Config::frame_ancestors},
    {"store_faults", &Config::store_faults},
    {"store_engine", &Config::store_engine},
    {"store_postgres_url", &Config::store_postgres_url},
    {"node_id", &Config::node_id},
};

// A [[channels]] entry's numbers: token lifetimes, pacing, the SMS policy.
constexpr IntSetting<Channel> kChannelInts[] = {
    {"max_user_token_s", 0, kMaxLifetimeS, &SetField<&Channel::max_user_token_s>},
    {"max_manager_token_s", 0, kMaxLifetimeS, &SetField<&Channel::max_manager_token_s>},
    {"max_server_token_s", 0, kMaxLifetimeS, &SetField<&Channel::max_server_token_s>},
    {"user_send_burst", 1, 1000000, &SetField<&Channel::user_send_burst>},
    {"user_total_send_burst", 1, 1000000, &SetField<&Channel::user_total_send_burst>},
    {"manager_send_burst", 1, 1000000, &SetField<&Channel::manager_send_burst>},
    {"receipt_burst", 1, 1000000, &SetField<&Channel::receipt_burst>},
    {"sms_delay_s", 0, 86400 * 7, &SetField<&Channel::sms_delay_s>},
    {"ack_timeout_s", 1, 3600, &SetField<&Channel::ack_timeout_s>},
    {"sms_min_interval_s", 0, 86400 * 7, &SetField<&Channel::sms_min_interval_s>},
};
// Its rates (per second, 0: off).
struct RateSetting {
  const char* key;
  double Channel::*field;
};
constexpr RateSetting kChannelRates[] = {
    {"user_sends_per_s", &Channel::user_sends_per_s},
    {"user_total_sends_per_s", &Channel::user_total_sends_per_s},
    {"manager_sends_per_s", &Channel::manager_sends_per_s},
    {"receipts_per_s", &Channel::receipts_per_s},
};

// An IANA zone name ("Europe/Berlin") that the system's zone database has.
// The name is checked before the file system is asked: no "..", no absolute
// path, and no name too long for a path (the fuzzer's: exists() threw).
bool KnownTimeZone(const std::string& name) {
  if (name.empty() || name.size() > 64 || name.front() == '/' ||
      name.find("..") != std::string::npos) {
    return false;
  }
  for (char ch : name) {
    const bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                    (ch >= '0' && ch <= '9') || ch == '/' || ch == '_' || ch == '-' || ch == '+';
    if (!ok) return false;
  }
  std::error_code ec;
  return std::filesystem::is_regular_file("/usr/share/zoneinfo/" + name, ec);
}

void ApplyTop(Config& c, const toml::table& t, const std::string& where);

// [store]: each key K is the top-level setting store_K (engine, postgres_url,
// max_batch, max_queue_delay_ms, timeout_ms, faults), so that the table, the top level and
// ONLINED_STORE_K name one setting.
void ApplyStore(Config& c, const toml::node& v, const std::string& where) {
  const toml::table* st = v.as_table();
  if (!st) Fail("store", where, "must be a table");
  toml::table flat;
  for (const auto& [sk, sv] : *st) {
    std::string key = "store_" + std::string(sk.str());
    auto is = [&key](const auto& s) { return key == s.key; };
    if (std::none_of(std::begin(kIntSettings), std::end(kIntSettings), is) &&
        std::none_of(std::begin(kStrSettings), std::end(kStrSettings), is)) {
      Fail("store." + std::string(sk.str()), where, "unknown setting");
    }
    flat.insert_or_assign(key, sv);
  }
  ApplyTop(c, flat, where);
}

void ApplyTop(Config& c, const toml::table& t, const std::string& where) {
  for (const auto& [k, v] : t) {
    std::string key(k.str());
    auto is = [&key](const auto& s) { return key == s.key; };
    if (auto i = std::find_if(std::begin(kIntSettings), std::end(kIntSettings), is);
        i != std::end(kIntSettings)) {
      i->set(c, GetInt(v, key, where, i->lo, i->hi));
    } else if (auto s = std::find_if(std::begin(kStrSettings), std::end(kStrSettings), is);
               s != std::end(kStrSettings)) {
      c.*(s->field) = GetStr(v, key, where);
    } else if (key == "store") {
      ApplyStore(c, v, where);
    } else if (key == "sms") {
      const toml::table* st = v.as_table();
      if (!st) Fail("sms", where, "must be a table");
      for (const auto& [sk, sv] : *st) {
        std::string name = "sms." + std::string(sk.str());
        if (sk == "timeout_ms") {
          c.sms.timeout_ms = GetInt(sv, name, where, 100, 120000);
          continue;
        }
        std::string s = GetStr(sv, name, where);
        if (sk == "provider")
          c.sms.provider = s;
        else if (sk == "base_url")
          c.sms.base_url = s;
        else if (sk == "account_sid")
          c.sms.account_sid = s;
        else if (sk == "auth_token")
          c.sms.auth_token = s;
        else if (sk == "from")
          c.sms.from = s;
        else if (sk == "public_url")
          c.sms.public_url = s;
        else
          Fail(name, where, "unknown setting");
      }
    } else if (key == "cluster") {
      const toml::table* ct = v.as_table();
      if (!ct) Fail("cluster", where, "must be a table");
      c.cluster.present = true;
      for (const auto& [ck, cv] : *ct) {
        std::string name = "cluster." + std::string(ck.str());
        if (ck == "nats_urls") {
          const toml::array* a = cv.as_array();
          if (!a) Fail(name, where, "must be an array of strings");
          c.cluster.nats_urls.clear();
          for (const auto& u : *a) c.cluster.nats_urls.push_back(GetStr(u, name, where));
        } else if (ck == "postgres_url") {
          c.cluster.postgres_url = GetStr(cv, name, where);
        } else if (ck == "node_id") {
          c.node_id = GetStr(cv, name, where);
        } else if (ck == "beat_ms") {
          c.cluster.beat_ms = GetInt(cv, name, where, 100, 60000);
        } else if (ck == "dead_after_ms") {
          c.cluster.dead_after_ms = GetInt(cv, name, where, 300, 600000);
        } else if (ck == "stream_replicas") {
          c.cluster.stream_replicas = GetInt(cv, name, where, 1, 5);
        } else if (ck == "join_wait_ms") {
          c.cluster.join_wait_ms = GetInt(cv, name, where, 0, 60000);
        } else {
          Fail(name, where, "unknown setting");
        }
      }
    } else if (key == "channels") {
      const toml::array* a = v.as_array();
      if (!a) Fail("channels", where, "must be an array of tables ([[channels]])");
      c.channels.clear();
      size_t i = 0;
      for (const auto& el : *a) {
        std::string base = "channels[" + std::to_string(i++) + "]";
        const toml::table* ct = el.as_table();
        if (!ct) Fail(base, where, "must be a table");
        Channel ch;
        for (const auto& [ck, cv] : *ct) {
          std::string name = base + "." + std::string(ck.str());
          const std::string_view key_name = ck.str();  // (a lambda cannot capture ck)
          auto is = [key_name](const auto& s) { return key_name == s.key; };
          if (auto i = std::find_if(std::begin(kChannelInts), std::end(kChannelInts), is);
              i != std::end(kChannelInts)) {
            i->set(ch, GetInt(cv, name, where, i->lo, i->hi));
            continue;
          }
          if (auto r = std::find_if(std::begin(kChannelRates), std::end(kChannelRates), is);
              r != std::end(kChannelRates)) {
            ch.*(r->field) = GetRate(cv, name, where);
            continue;
          }
          if (ck == "id")
            ch.id = GetStr(cv, name, where);
          else if (ck == "secret")
            ch.secret = GetStr(cv, name, where);
          else if (ck == "keys")
            ch.keys = GetKeys(cv, name, where);
          else if (ck == "quiet_hours") {
            ch.quiet_hours_text = GetStr(cv, name, where);
            std::string key_where = name;
            key_where += " (" + where + ")";
            ch.quiet_hours = ParseQuietHours(ch.quiet_hours_text, key_where);
          } else if (ck == "time_zone")
            ch.time_zone = GetStr(cv, name, where);
          else
            Fail(name, where, "unknown setting");
        }
        if (!ValidId(ch.id)) Fail(base + ".id", where, "must be 1-64 characters of [A-Za-z0-9._-]");
        if (!ch.secret.empty() && ch.secret.size() < 16)
          Fail(base + ".secret", where, "must be at least 16 characters");
        if (ch.secret.empty() && ch.keys.empty())
          Fail(base + ".secret", where, "a channel needs a secret or [[channels.keys]]");
        if (ch.time_zone != "UTC" && !KnownTimeZone(ch.time_zone)) {
          Fail(base + ".time_zone", where, "unknown time zone '" + ch.time_zone + "'");
        }
        c.channels.push_back(std::move(ch));
      }
    } else {
      Fail(key, where, "unknown setting");
    }
  }
}

// ONLINED_<KEY> for top-level scalars and ONLINED_SMS_<KEY> for [sms].
void ApplyEnv(toml::table& t, const std::map<std::string, std::string>& env) {
  for (const auto& [name, value] : env) {
    if (name.rfind("ONLINED_", 0) != 0) continue;
    std::string rest = name.substr(8);
    bool used = false;
    for (const IntSetting<Config>& k : kIntSettings) {
      if (rest == Upper(k.key)) {
        t.insert_or_assign(k.key, ParseIntText(name, "environment", value));
        used = true;
      }
    }
    for (const StrSetting& k : kStrSettings) {
      if (rest == Upper(k.key)) {
        t.insert_or_assign(k.key, value);
        used = true;
      }
    }
    for (const char* k :
         {"provider", "base_url", "account_sid", "auth_token", "from", "public_url"}) {
      if (rest == "SMS_" + Upper(k)) {
        if (!t.contains("sms")) t.insert("sms", toml::table{});
        t["sms"].as_table()->insert_or_assign(k, value);
        used = true;
      }
    }
    if (rest == "SMS_TIMEOUT_MS") {  // the one number of [sms]
      if (!t.contains("sms")) t.insert("sms", toml::table{});
      t["sms"].as_table()->insert_or_assign("timeout_ms", ParseIntText(name, "environment", value));
      used = true;
    }
    if (rest == "CLUSTER_POSTGRES_URL") {
      if (!t.contains("cluster")) t.insert("cluster", toml::table{});
      t["cluster"].as_table()->insert_or_assign("postgres_url", value);
      used = true;
    }
    if (rest == "CLUSTER_NATS_URLS") {  // comma-separated
      if (!t.contains("cluster")) t.insert("cluster", toml::table{});
      toml::array urls;
      size_t from = 0;
      while (from <= value.size()) {
        size_t to = value.find(',', from);
        if (to == std::string::npos) to = value.size();
        if (to > from) urls.push_back(value.substr(from, to - from));
        from = to + 1;
      }
      t["cluster"].as_table()->insert_or_assign("nats_urls", urls);
      used = true;
    }
    if (!used && rest != "CONFIG") Fail(name, "environment", "unknown setting");
  }
}

Config Finish(Config c, const Overrides& flags) {
  if (flags.listen) c.listen = *flags.listen;
  if (flags.data_dir) c.data_dir = *flags.data_dir;
  if (flags.log_level) c.log_level = *flags.log_level;
  ParseListen(c, flags.listen ? "flag --listen" : "config");
  // It goes into a header: no line breaks, no ';' that would end the directive.
  if (c.frame_ancestors.empty() || c.frame_ancestors.find_first_of(";\r\n,") != std::string::npos) {
    Fail("frame_ancestors", "config",
         "must be a CSP source list such as 'none', 'self' or https://example.com");
  }
  if (c.cluster.present || !c.cluster.postgres_url.empty()) {
    if (c.cluster.nats_urls.empty())
      Fail("cluster.nats_urls", "config", "cluster mode needs the NATS servers' URLs");
    for (const auto& u : c.cluster.nats_urls) {
      if (u.rfind("nats://", 0) != 0 && u.rfind("tls://", 0) != 0)
        Fail("cluster.nats_urls", "config", "'" + u + "' is not a nats:// or tls:// URL");
    }
    if (!c.cluster.postgres_url.empty()) {
      c.store_engine = "postgres";
      c.store_postgres_url = c.cluster.postgres_url;
    }
    if (c.store_engine != "postgres")
      Fail("cluster", "config",
           "cluster mode shares one PostgreSQL store: set cluster.postgres_url "
           "(or [store] engine = \"postgres\")");
    if (c.cluster.dead_after_ms < 2 * c.cluster.beat_ms)
      Fail("cluster.dead_after_ms", "config", "must be at least twice cluster.beat_ms");
  }
  if (c.store_engine != "sqlite" && c.store_engine != "postgres") {
    Fail("store.engine", "config", "must be \"sqlite\" or \"postgres\"");
  }
  if (c.store_engine == "postgres" && c.store_postgres_url.empty()) {
    Fail("store.postgres_url", "config",
         "engine \"postgres\" needs postgres_url (or ONLINED_STORE_POSTGRES_URL)");
  }
  if (c.store_engine == "postgres" && !c.store_faults.empty()) {
    Fail("store_faults", "config", "fault injection is a SQLite VFS: only with engine \"sqlite\"");
  }
  // host:port names a node across restarts; with port 0 (any port) there is
  // no such name, and the process id keeps two nodes apart.
  if (c.node_id.empty()) {
    c.node_id = HostName() + ":" +
                (c.listen_port != 0 ? std::to_string(c.listen_port)
                                    : "pid" + std::to_string(static_cast<long>(getpid())));
  }
  static const std::set<std::string> kLevels = {"trace", "debug", "info", "warn", "error", "off"};
  if (!kLevels.count(c.log_level))
    Fail("log_level", "config", "must be one of trace, debug, info, warn, error, off");
  if (c.sms.provider != "log" && c.sms.provider != "twilio") {
    Fail("sms.provider", "config", "must be \"log\" or \"twilio\"");
  }
  if (c.sms.provider == "twilio" &&
      (c.sms.account_sid.empty() || c.sms.auth_token.empty() || c.sms.from.empty())) {
    Fail("sms", "config", "provider \"twilio\" needs account_sid, auth_token and from");
  }
  std::set<std::string> ids;
  for (const Channel& ch : c.channels) {
    if (!ids.insert(ch.id).second)
      Fail("channels", "config", "channel id '" + ch.id + "' appears twice");
  }
  if (c.EffectiveHeartbeatTimeoutMs() <= c.heartbeat_s * 1000LL) {
    Fail("heartbeat_timeout_ms", "config", "must be longer than heartbeat_s");
  }
  return c;
}

Config FromTable(const toml::table& t, const std::map<std::string, std::string>& env,
                 const Overrides& flags, const std::string& origin) {
  Config c;
  ApplyTop(c, t, origin);
  toml::table env_table;
  ApplyEnv(env_table, env);
  ApplyTop(c, env_table, "environment");
  return Finish(std::move(c), flags);
}

}  // namespace

const Channel* Config::FindChannel(std::string_view id) const {
  for (const Channel& ch : channels) {
    if (ch.id == id) return &ch;
  }
  return nullptr;
}

QuietHours ParseQuietHours(const std::string& text, const std::string& key) {
  QuietHours q;
  if (text.empty() || text == "off" || text == "none") {
    q.enabled = false;
    return q;
  }
  int h1, m1, h2, m2;
  char tail;
  if (std::sscanf(text.c_str(), "%d:%d-%d:%d%c", &h1, &m1, &h2, &m2, &tail) != 4 || h1 < 0 ||
      h1 > 23 || h2 < 0 || h2 > 23 || m1 < 0 || m1 > 59 || m2 < 0 || m2 > 59) {
    throw ConfigError("config: " + key + ": must be \"HH:MM-HH:MM\" or \"off\", got '" + text +
                      "'");
  }
  q.start_min = h1 * 60 + m1;
  q.end_min = h2 * 60 + m2;
  q.enabled = q.start_min != q.end_min;
  return q;
}

Config LoadFromString(const std::string& text, const std::map<std::string, std::string>& env,
                      const Overrides& flags, const std::string& origin) {
  toml::table t;
  try {
    t = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << "config: " << origin << ":" << e.source().begin.line << ":" << e.source().begin.column
       << ": " << e.description();
    throw ConfigError(os.str());
  }
  return FromTable(t, env, flags, origin);
}

Config Load(const std::optional<std::string>& path, const std::map<std::string, std::string>& env,
            const Overrides& flags) {
  if (!path) return FromTable(toml::table{}, env, flags, "defaults");
  std::ifstream in(*path);
  if (!in) throw ConfigError("config: cannot read '" + *path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  Config c = LoadFromString(ss.str(), env, flags, *path);
  c.path = *path;
  return c;
}

std::map<std::string, std::string> EnvFromProcess() {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    if (kv.rfind("ONLINED_", 0) != 0) continue;
    size_t eq = kv.find('=');
    if (eq == std::string::npos) continue;
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

}  // namespace onlined::config
