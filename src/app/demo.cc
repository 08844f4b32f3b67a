#include "app/demo.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "auth/token.h"
#include "base/clock.h"
#include "chat/messages.h"

namespace onlined::app {

namespace {

constexpr const char* kUsers[] = {"alice", "bob", "carol"};

std::string RandomSecret() {
  std::random_device rd;
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string s;
  for (int i = 0; i < 40; ++i) s.push_back(kAlphabet[rd() % (sizeof kAlphabet - 1)]);
  return s;
}

std::string MintFor(const config::Channel& ch, auth::Role role, const std::string& sub,
                    int64_t ttl_s) {
  const config::ChannelKey key = ch.SigningKey();
  const int64_t now_s = base::WallMs() / 1000;
  return auth::Mint({ch.id, sub, role, now_s + ttl_s, now_s}, key.secret, key.kid);
}

}  // namespace

config::Config DemoConfig(const std::optional<std::string>& listen) {
  config::Overrides o;
  o.listen = listen.value_or("127.0.0.1:8080");
  o.data_dir = (std::filesystem::temp_directory_path() / "onlined-demo").string();
  config::Config cfg = config::Load(std::nullopt, config::EnvFromProcess(), o);
  config::Channel ch;
  ch.id = "demo";
  std::filesystem::create_directories(cfg.data_dir);
  std::string secret_path = cfg.data_dir + "/demo-secret";
  std::ifstream in(secret_path);
  std::getline(in, ch.secret);
  if (ch.secret.size() < 16) {
    ch.secret = RandomSecret();
    std::ofstream(secret_path) << ch.secret << "\n";
    std::filesystem::permissions(
        secret_path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  }
  ch.sms_delay_s = 30;
  ch.quiet_hours.enabled = false;  // the demo shows an SMS at any hour
  ch.quiet_hours_text = "off";
  cfg.channels.push_back(ch);
  return cfg;
}

void SeedDemo(store::Db& db) {
  const int64_t now = base::WallMs();
  const char* first[] = {"Hi! My order #1042 has not arrived yet.",
                         "Can I change my delivery address?", "Do you ship to Canada?"};
  for (int i = 0; i < 3; ++i) {
    const char* name = kUsers[i];
    if (db.FindChatOfUser("demo", name)) continue;  // seeded by an earlier run
    db.PutUser({"demo", name, std::string(1, static_cast<char>(name[0] - 32)) + (name + 1),
                "+1555010000" + std::to_string(i), i != 2, now});
    chat::SendInput in;
    in.channel = "demo";
    in.from = "user";
    in.user_id = in.sender_id = name;
    in.text = first[i];
    in.now = now - (3 - i) * 60000;
    chat::Send(db, in);
  }
}

void PrintDemoUrls(const config::Config& cfg, uint16_t port, std::optional<uint16_t> metrics_port) {
  const config::Channel& ch = cfg.channels.front();
  std::string host = cfg.listen_host == "0.0.0.0" ? "127.0.0.1" : cfg.listen_host;
  std::string base = "http://" + host + ":" + std::to_string(port);
  std::printf("onlined demo is running (channel \"demo\", tokens valid 24 h)\n\n");
  std::printf("  Desk (the support team's inbox):\n    %s/desk#token=%s\n\n", base.c_str(),
              MintFor(ch, auth::Role::kManager, "manager-1", 86400).c_str());
  std::printf("  Chat widget, one per user (open a few tabs and watch the desk):\n");
  for (const char* u : kUsers) {
    std::printf("    %-6s %s/widget#token=%s\n", u, base.c_str(),
                MintFor(ch, auth::Role::kUser, u, 86400).c_str());
  }
  std::printf("\n  API:  %s/v1/...   WebSocket: ws://%s:%u/v1/connect\n", base.c_str(),
              host.c_str(), port);
  if (metrics_port)
    std::printf("  Metrics: http://%s:%u/metrics\n", cfg.metrics_host.c_str(), *metrics_port);
  std::printf(
      "  SMS go to this log (provider \"log\"): close a widget, write to that user from the desk,\n"
      "  and the desk shows the SMS scheduled, then sent, 30 s later. Ctrl-C stops it.\n");
  std::fflush(stdout);
}

}  // namespace onlined::app
