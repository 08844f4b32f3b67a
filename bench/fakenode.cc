// fakenode: a cluster peer that holds many users without their sockets, for
// the bench's join measurement (bench/run --scenario cluster). It speaks the
// cluster's wire format (src/cluster/wire.h) over NATS: beats as a node that
// is not ready (so it is never a channel's home), and answers a snapshot
// request with its users, in the same chunks a real node sends. A machine
// with 20,000 descriptors per process cannot hold 100,000 real sessions on
// three nodes; this is the share of a node that does.
//   fakenode --nats URL --node ID --channel CH --users N [--shards K]
// Prints READY once connected; runs until stdin closes.
#include <nats/nats.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "cluster/wire.h"

using namespace onlined::cluster;

namespace {

struct Fake {
  std::string node, channel;
  uint64_t boot = 0;
  uint32_t shards = 2;
  std::vector<std::vector<UserEntry>> users;  // per shard
  natsConnection* nc = nullptr;
};

void OnSnap(natsConnection* nc, natsSubscription*, natsMsg* msg, void* closure) {
  auto* f = static_cast<Fake*>(closure);
  const char* reply = natsMsg_GetReply(msg);
  if (reply != nullptr) {
    std::string out;
    for (uint32_t s = 0; s < f->shards; ++s) {
      Snapshot head;
      head.node = f->node;
      head.boot = f->boot;
      head.shard = s;
      head.shards = f->shards;
      size_t from = 0;
      do {
        from += EncodeChunk(head, f->users[s], from, 512 * 1024, out);
        natsConnection_Publish(nc, reply, out.data(), static_cast<int>(out.size()));
      } while (from < f->users[s].size());
    }
    natsConnection_Flush(nc);
  }
  natsMsg_Destroy(msg);
}

}  // namespace

int main(int argc, char** argv) {
  Fake f;
  std::string url = "nats://127.0.0.1:4222";
  int n = 100000;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--nats") {
      url = v;
    } else if (a == "--node") {
      f.node = v;
    } else if (a == "--channel") {
      f.channel = v;
    } else if (a == "--users") {
      n = std::stoi(v);
    } else if (a == "--shards") {
      f.shards = static_cast<uint32_t>(std::stoi(v));
    } else {
      std::fprintf(stderr, "fakenode: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (f.node.empty() || f.channel.empty() || f.shards == 0) {
    std::fprintf(stderr, "usage: fakenode --nats URL --node ID --channel CH --users N\n");
    return 2;
  }
  f.boot = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch() /
                                 std::chrono::milliseconds(1));
  f.users.resize(f.shards);
  const int64_t now = static_cast<int64_t>(f.boot);
  for (int i = 0; i < n; ++i) {
    UserEntry e;
    e.channel = f.channel;
    e.user = "f" + std::to_string(i);
    e.sessions = 1;
    e.last_seen = now;
    e.pub_known = e.pub_online = true;
    f.users[static_cast<size_t>(i) % f.shards].push_back(std::move(e));
  }
  natsOptions* o = nullptr;
  natsOptions_Create(&o);
  natsOptions_SetURL(o, url.c_str());
  const std::string name = "onlined " + f.node + " " + std::to_string(f.boot);
  natsOptions_SetName(o, name.c_str());
  natsOptions_SetNoEcho(o, true);
  if (natsConnection_Connect(&f.nc, o) != NATS_OK) {
    std::fprintf(stderr, "fakenode: cannot connect to %s\n", url.c_str());
    return 1;
  }
  natsSubscription* sub = nullptr;
  natsConnection_Subscribe(&sub, f.nc, ("onl.snap." + Token(f.node)).c_str(), OnSnap, &f);
  std::printf("READY\n");
  std::fflush(stdout);
  std::thread beats([&f] {
    while (true) {
      Beat b{f.node, f.boot, false, false, std::vector<uint64_t>(f.shards, 0)};
      std::string m = Encode(b);
      if (natsConnection_Publish(f.nc, "onl.beat", m.data(), static_cast<int>(m.size())) ==
          NATS_CONNECTION_CLOSED)
        return;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  });
  char buf[64];
  while (std::fread(buf, 1, sizeof buf, stdin) > 0) {
  }
  natsConnection_Close(f.nc);
  beats.join();
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(f.nc);
  natsOptions_Destroy(o);
  return 0;
}
