#include "config/config.h"

#include <gtest/gtest.h>

namespace onlined::config {
namespace {

const char* kGood = R"(
listen = "127.0.0.1:9000"
heartbeat_s = 5
[sms]
provider = "log"
[[channels]]
id = "acme"
secret = "0123456789abcdef"
sms_delay_s = 60
quiet_hours = "22:30-07:00"
time_zone = "UTC"
)";

TEST(Config, Defaults) {
  Config c = Load(std::nullopt, {}, {});
  EXPECT_EQ(c.listen, "127.0.0.1:8080");
  EXPECT_EQ(c.heartbeat_s, 25);
  EXPECT_EQ(c.EffectiveHeartbeatTimeoutMs(), 62500);
  EXPECT_EQ(c.offline_grace_ms, 10000);
  EXPECT_EQ(c.max_frame_bytes, 65536);
}

TEST(Config, FileThenEnvThenFlags) {
  Overrides f;
  f.listen = "127.0.0.1:9100";
  Config c =
      LoadFromString(kGood, {{"ONLINED_HEARTBEAT_S", "7"}, {"ONLINED_SMS_FROM", "+1555"}}, f);
  EXPECT_EQ(c.heartbeat_s, 7);
  EXPECT_EQ(c.listen_port, 9100);
  EXPECT_EQ(c.sms.from, "+1555");
  ASSERT_EQ(c.channels.size(), 1u);
  EXPECT_EQ(c.channels[0].sms_delay_s, 60);
  EXPECT_EQ(c.channels[0].quiet_hours.start_min, 22 * 60 + 30);
  EXPECT_EQ(c.channels[0].quiet_hours.end_min, 7 * 60);
}

void ExpectError(const std::string& toml, const std::string& needle,
                 const std::map<std::string, std::string>& env = {}) {
  try {
    LoadFromString(toml, env, {});
    FAIL() << "expected an error mentioning " << needle;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// Every key of [sms] has its ONLINED_SMS_<KEY>, its one number too.
TEST(Config, TheSmsTimeoutFromTheEnvironment) {
  Config c = LoadFromString(kGood, {{"ONLINED_SMS_TIMEOUT_MS", "2500"}}, {});
  EXPECT_EQ(c.sms.timeout_ms, 2500);
  ExpectError(kGood, "ONLINED_SMS_TIMEOUT_MS", {{"ONLINED_SMS_TIMEOUT_MS", "soon"}});
}

// A channel's keys, its token lifetimes and its rate limits.
TEST(Config, ChannelKeysAndLimits) {
  Config c = LoadFromString(R"(
[[channels]]
id = "acme"
secret = "0123456789abcdef"
max_manager_token_s = 3600
user_total_sends_per_s = 0.5
manager_send_burst = 7
receipts_per_s = 0
[[channels.keys]]
kid = "k2"
secret = "fedcba9876543210"
[[channels]]
id = "keys-only"
[[channels.keys]]
kid = "a"
secret = "aaaaaaaaaaaaaaaa"
[[channels.keys]]
kid = "b"
secret = "bbbbbbbbbbbbbbbb"
)",
                            {}, {});
  ASSERT_EQ(c.channels.size(), 2u);
  const Channel& a = c.channels[0];
  ASSERT_EQ(a.keys.size(), 1u);
  EXPECT_EQ(a.keys[0].kid, "k2");
  EXPECT_EQ(a.SigningKey().kid, "k2");
  EXPECT_EQ(a.max_manager_token_s, 3600);
  EXPECT_DOUBLE_EQ(a.user_total_sends_per_s, 0.5);
  EXPECT_EQ(a.manager_send_burst, 7);
  EXPECT_DOUBLE_EQ(a.receipts_per_s, 0);
  EXPECT_EQ(a.user_send_burst, 20);  // defaults stay
  const Channel& k = c.channels[1];
  EXPECT_TRUE(k.secret.empty());
  EXPECT_EQ(k.SigningKey().kid, "b");
  EXPECT_EQ(k.SigningKey().secret, "bbbbbbbbbbbbbbbb");
}

TEST(Config, ChannelKeyErrorsNameTheKey) {
  ExpectError("[[channels]]\nid = \"a\"", "a secret or [[channels.keys]]");
  ExpectError(
      "[[channels]]\nid = \"a\"\n[[channels.keys]]\nkid = \"k\"\nsecret = \"0123456789abcdef\"\n"
      "[[channels.keys]]\nkid = \"k\"\nsecret = \"0123456789abcdefg\"",
      "channels[0].keys[1].kid");
  ExpectError("[[channels]]\nid = \"a\"\n[[channels.keys]]\nkid = \"k\"\nsecret = \"short\"",
              "channels[0].keys[0].secret");
  ExpectError("[[channels]]\nid = \"a\"\n[[channels.keys]]\nsecret = \"0123456789abcdef\"",
              "channels[0].keys[0].kid");
  ExpectError("[[channels]]\nid = \"a\"\nsecret = \"0123456789abcdef\"\nuser_sends_per_s = -1",
              "channels[0].user_sends_per_s");
  ExpectError("[[channels]]\nid = \"a\"\nsecret = \"0123456789abcdef\"\nreceipt_burst = 0",
              "channels[0].receipt_burst");
}

TEST(Config, ErrorsNameTheKey) {
  ExpectError("heartbeat_s = \"x\"", "heartbeat_s");
  ExpectError("heartbeat_s = 0", "heartbeat_s");
  ExpectError("heartbeatz = 1", "heartbeatz");
  ExpectError("listen = \"nope\"", "listen");
  ExpectError("[[channels]]\nid = \"a\"\nsecret = \"short\"", "channels[0].secret");
  ExpectError("[[channels]]\nid = \"a b\"\nsecret = \"0123456789abcdef\"", "channels[0].id");
  ExpectError("[[channels]]\nid = \"a\"\nsecret = \"0123456789abcdef\"\nquiet_hours = \"9-5\"",
              "quiet_hours");
  ExpectError("[[channels]]\nid = \"a\"\nsecret = \"0123456789abcdef\"\ntime_zone = \"Mars/Base\"",
              "time_zone");
  // A name too long for a path made the zone lookup throw (found by the fuzzer);
  // a path out of the zone database is no zone.
  ExpectError("[[channels]]\nid = \"a\"\nsecret = \"0123456789abcdef\"\ntime_zone = \"UTC" +
                  std::string(5000, ']') + "\"",
              "time_zone");
  ExpectError(
      "[[channels]]\nid = \"a\"\nsecret = \"0123456789abcdef\"\ntime_zone = \"../../etc/passwd\"",
      "time_zone");
  ExpectError("[[channels]]\nid = \"a\"\nsecret = \"0123456789abcdef\"\ntime_zone = \"Europe\"",
              "time_zone");
  ExpectError("[sms]\nprovider = \"pigeon\"", "sms.provider");
  ExpectError("", "ONLINED_HEARTBEAT_S", {{"ONLINED_HEARTBEAT_S", "abc"}});
  ExpectError("", "ONLINED_NOPE", {{"ONLINED_NOPE", "1"}});
  ExpectError("listen = ", "config:1");
  ExpectError(
      "[[channels]]\nid=\"a\"\nsecret=\"0123456789abcdef\"\n[[channels]]\nid=\"a\"\nsecret="
      "\"0123456789abcdef\"",
      "twice");
}

TEST(Config, ClusterNeedsNatsAndThePostgresStore) {
  ExpectError("[cluster]\n", "cluster.nats_urls");
  ExpectError("[cluster]\nnats_urls = [\"127.0.0.1:4222\"]", "not a nats://");
  ExpectError("[cluster]\nnats_urls = [\"nats://127.0.0.1:4222\"]", "PostgreSQL store");
  ExpectError("", "cluster.nats_urls", {{"ONLINED_CLUSTER_POSTGRES_URL", "postgresql://x"}});
  ExpectError(
      "[cluster]\nnats_urls = [\"nats://a:1\"]\npostgres_url = \"postgresql://x\"\n"
      "beat_ms = 1000\ndead_after_ms = 1500\n",
      "cluster.dead_after_ms");
  ExpectError("[cluster]\nnats_urls = [\"nats://a:1\"]\nbogus = 1\n", "cluster.bogus");

  Config c = LoadFromString(
      "[cluster]\nnode_id = \"n1\"\nnats_urls = [\"nats://a:1\", \"nats://b:2\"]\n"
      "postgres_url = \"postgresql://db/x\"\n",
      {}, {});
  EXPECT_TRUE(c.cluster.enabled());
  EXPECT_EQ(c.node_id, "n1");
  EXPECT_EQ(c.store_engine, "postgres");
  EXPECT_EQ(c.store_postgres_url, "postgresql://db/x");
  EXPECT_EQ(c.cluster.nats_urls.size(), 2u);
  EXPECT_EQ(c.cluster.beat_ms, 1000);
  EXPECT_EQ(c.cluster.dead_after_ms, 3000);

  Config e = LoadFromString("",
                            {{"ONLINED_CLUSTER_NATS_URLS", "nats://a:1,nats://b:2"},
                             {"ONLINED_CLUSTER_POSTGRES_URL", "postgresql://db/y"}},
                            {});
  ASSERT_EQ(e.cluster.nats_urls.size(), 2u);
  EXPECT_EQ(e.cluster.nats_urls[1], "nats://b:2");
  EXPECT_EQ(e.store_postgres_url, "postgresql://db/y");
  EXPECT_FALSE(LoadFromString("", {}, {}).cluster.enabled());
}

TEST(Config, StoreEngineFromTheTableTheTopLevelOrTheEnvironment) {
  Config d = LoadFromString("", {}, {});
  EXPECT_EQ(d.store_engine, "sqlite");
  EXPECT_FALSE(d.node_id.empty());
  EXPECT_EQ(d.outbox_lease_ms, 60000);
  Config t = LoadFromString(
      "[store]\nengine = \"postgres\"\npostgres_url = \"postgresql://db/onlined\"\n"
      "max_batch = 64\n",
      {}, {});
  EXPECT_EQ(t.store_engine, "postgres");
  EXPECT_EQ(t.store_postgres_url, "postgresql://db/onlined");
  EXPECT_EQ(t.store_max_batch, 64);
  Config e = LoadFromString("listen = \"127.0.0.1:9000\"\n",
                            {{"ONLINED_STORE_ENGINE", "postgres"},
                             {"ONLINED_STORE_POSTGRES_URL", "host=db dbname=onlined"},
                             {"ONLINED_OUTBOX_LEASE_MS", "5000"}},
                            {});
  EXPECT_EQ(e.store_engine, "postgres");
  EXPECT_EQ(e.store_postgres_url, "host=db dbname=onlined");
  EXPECT_EQ(e.outbox_lease_ms, 5000);
  EXPECT_EQ(e.node_id.substr(e.node_id.size() - 5), ":9000");  // host:port
  ExpectError("[store]\nengine = \"mysql\"\n", "store.engine");
  ExpectError("[store]\nengine = \"postgres\"\n", "postgres_url");
  ExpectError("[store]\nflavour = 1\n", "store.flavour");
  ExpectError("store_faults = \"none\"\n[store]\nengine = \"postgres\"\npostgres_url = \"x\"\n",
              "store_faults");
  ExpectError("outbox_lease_ms = 10\n", "outbox_lease_ms");
}

TEST(Config, NewLimitsParseAndAreChecked) {
  Config c = LoadFromString(
      "max_connections_per_ip = 7\nhandshakes_per_s = 100\nmax_sends_per_s = 50\nmetrics_listen = "
      "\"\"\n"
      "frame_ancestors = \"'self'\"\nhttp_idle_timeout_ms = 2000\n",
      {}, {});
  EXPECT_EQ(c.max_connections_per_ip, 7);
  EXPECT_EQ(c.handshakes_per_s, 100);
  EXPECT_EQ(c.max_sends_per_s, 50);
  EXPECT_EQ(c.metrics_listen, "");
  EXPECT_EQ(c.frame_ancestors, "'self'");
  ExpectError("frame_ancestors = \"'self'; script-src *\"", "frame_ancestors");
  ExpectError("metrics_listen = \"nope\"", "metrics_listen");
  EXPECT_EQ(c.desk_send_queue_max, 8192);
  EXPECT_EQ(LoadFromString("desk_send_queue_max = 32\n", {}, {}).desk_send_queue_max, 32);
  ExpectError("desk_send_queue_max = 8", "desk_send_queue_max");
  EXPECT_EQ(c.io_uring, 1);
  EXPECT_EQ(LoadFromString("io_uring = 0\n", {}, {}).io_uring, 0);
  ExpectError("io_uring = 2", "io_uring");
}

TEST(Config, QuietHoursOff) {
  EXPECT_FALSE(ParseQuietHours("off", "k").enabled);
  EXPECT_TRUE(ParseQuietHours("21:00-08:00", "k").enabled);
}

}  // namespace
}  // namespace onlined::config
