// Microbenchmarks (Google Benchmark) of the hot paths, single thread, no
// sockets: what a shard does per id of a presence query, with the table far
// bigger than the caches, as on a loaded server; what the store's writer
// thread does per send.
//   build/bench/micro [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "base/timing_wheel.h"
#include "presence/presence_table.h"
#include "proto/frames.h"
#include "proto/json_writer.h"
#include "store/sqlite/sqlite_db.h"

namespace {

using onlined::presence::PresenceTable;
using onlined::presence::SessionCell;

struct Fixture {
  explicit Fixture(int users) : wheel(0, 100), table(wheel, {}, [](onlined::presence::Event&&) {}) {
    for (int i = 0; i < users; ++i) {
      auto cell = std::make_shared<SessionCell>();
      cell->last_frame_ms = 1000 + i;
      cells.push_back(cell);
      table.Open(0, "u" + std::to_string(i), cell, 1000);
    }
    std::mt19937 rng(1);
    std::uniform_int_distribution<int> pick(0, users - 1);
    for (int i = 0; i < 1 << 16; ++i) ids.push_back("u" + std::to_string(pick(rng)));
  }
  onlined::base::TimingWheel wheel;
  PresenceTable table;
  std::vector<std::shared_ptr<SessionCell>> cells;
  std::vector<std::string> ids;
};

// 100 ids per iteration (one query's worth), random users of the table.
void BM_Lookup100(benchmark::State& state) {
  Fixture f(static_cast<int>(state.range(0)));
  size_t k = 0;
  for (auto _ : state) {
    for (int i = 0; i < 100; ++i) {
      auto info = f.table.Lookup(0, f.ids[k++ & 0xffff]);
      benchmark::DoNotOptimize(info);
    }
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_Lookup100)->Arg(5000)->Arg(20000)->Arg(200000);

// The same through LookupMany, as a presence query uses it.
void BM_LookupMany100(benchmark::State& state) {
  Fixture f(static_cast<int>(state.range(0)));
  std::vector<std::string_view> views(f.ids.begin(), f.ids.end());
  onlined::presence::UserInfo out[100];
  size_t k = 0;
  for (auto _ : state) {
    f.table.LookupMany(0, &views[k], 100, out);
    benchmark::DoNotOptimize(out);
    k = (k + 100) % (views.size() - 100);
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_LookupMany100)->Arg(5000)->Arg(20000)->Arg(200000);

// A presence answer's numbers: 100 last_seen values in wall milliseconds (13
// digits) per iteration, written by std::to_chars (the peer: what the server
// used before) and by proto::WriteInt.
std::vector<int64_t> WallMillis() {
  std::mt19937_64 rng(1);
  std::vector<int64_t> v(1 << 12);
  for (auto& x : v) x = 1765000000000 + static_cast<int64_t>(rng() % 100000000000);
  return v;
}

// 100 numbers per iteration through `write(p, v)`, which returns the end.
template <typename Write>
void WriteNumbers100(benchmark::State& state, Write write) {
  const auto v = WallMillis();
  char buf[100 * 24];
  size_t k = 0;
  for (auto _ : state) {
    char* p = buf;
    for (int i = 0; i < 100; ++i) p = write(p, v[k++ & 0xfff]);
    benchmark::DoNotOptimize(buf);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * 100);
}

void BM_ToChars100(benchmark::State& state) {
  WriteNumbers100(state, [](char* p, int64_t x) { return std::to_chars(p, p + 24, x).ptr; });
}
BENCHMARK(BM_ToChars100);

void BM_WriteInt100(benchmark::State& state) {
  WriteNumbers100(state, [](char* p, int64_t x) { return onlined::proto::WriteInt(p, x); });
}
BENCHMARK(BM_WriteInt100);

// 100 entries' presence fields (online, 13-digit last_seen, state), as a
// presence answer writes them.
void BM_PresenceFields100(benchmark::State& state) {
  const auto v = WallMillis();
  char buf[100 * onlined::proto::kPresenceFieldsMax];
  size_t k = 0;
  for (auto _ : state) {
    char* p = buf;
    for (int i = 0; i < 100; ++i, ++k)
      p = onlined::proto::WritePresenceFields(p, (k & 3) != 0, v[k & 0xfff], (k & 7) == 1);
    benchmark::DoNotOptimize(buf);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_PresenceFields100);

// A fresh directory under /tmp for a store, or "" (the benchmark skipped).
std::string TempDir(benchmark::State& state) {
  char tmpl[] = "/tmp/onlined-micro-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    state.SkipWithError("mkdtemp failed");
    return "";
  }
  return tmpl;
}

// The writer's work per send on SQLite (store::Db::Append, as chat::Messages
// sends it for a desk): groups of `range(0)` manager messages to random chats
// of 2,000, each joining its chat's SMS notification, one transaction per
// group, in savepoints of `range(1)` sends (store::Db::RunGroup, as
// store::Service runs a group: 1 is a savepoint per send, more is a unit of
// sends as Db::AppendUnit allows). CPU time is the writer thread's own (the
// checkpointer's is not in it); real time includes the WAL's fsync.
void BM_SqliteAppend(benchmark::State& state) {
  namespace store = onlined::store;
  const std::string dir = TempDir(state);
  if (dir.empty()) return;
  {
    auto db = store::OpenSqlite(dir, true);
    constexpr int kChats = 2000;
    db->Begin();
    for (int i = 0; i < kChats; ++i) {
      store::Chat c;
      c.chat_id = "c_" + std::to_string(1000000 + i);
      c.channel = "bench";
      c.user_id = "u" + std::to_string(i);
      c.created_at = c.updated_at = 1;
      db->InsertChat(c);
    }
    db->Commit();
    std::mt19937 rng(1);
    std::uniform_int_distribution<int> pick(0, kChats - 1);
    store::AppendInput in;
    in.channel = "bench";
    in.from = "manager";
    in.sender_id = "desk1";
    int64_t n = 0;
    std::vector<std::string> errors;
    std::string group_error;
    const auto unit = static_cast<size_t>(std::max<int64_t>(1, state.range(1)));
    for (auto _ : state) {
      const bool ok = db->RunGroup(
          static_cast<size_t>(state.range(0)) / unit,
          [&](size_t) {
            for (size_t k = 0; k < unit; ++k) {
              in.chat_id = "c_" + std::to_string(1000000 + pick(rng));
              in.text = "b" + std::to_string(n);
              in.message_id = "m_" + std::to_string(n);
              in.now = 1000 + n;
              in.sms_due_at = in.now + 60000;
              ++n;
              auto r = db->Append(in);
              benchmark::DoNotOptimize(r);
            }
          },
          errors, group_error);
      if (!ok) {
        state.SkipWithError(group_error.c_str());
        break;
      }
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_SqliteAppend)
    ->Args({8, 1})
    ->Args({32, 1})
    ->Args({32, 4})
    ->Args({32, 32})
    ->MinTime(3.0);

// The writer's work per receipt on SQLite, in a chat that already holds
// `range(0)` messages, every one acked: a new manager message, then the
// user's ack of it (store::Db::RaiseUserAck, as chat::Receipt makes it),
// 32 of them per transaction. What an ack costs must not grow with the
// chat's history.
void BM_SqliteAckInLongChat(benchmark::State& state) {
  namespace store = onlined::store;
  const std::string dir = TempDir(state);
  if (dir.empty()) return;
  {
    auto db = store::OpenSqlite(dir, true);
    store::Chat c;
    c.chat_id = "c_long";
    c.channel = "bench";
    c.user_id = "u1";
    c.created_at = c.updated_at = 1;
    store::Message m;
    m.chat_id = c.chat_id;
    m.from = "manager";
    m.sender_id = "desk1";
    int64_t seq = 0;
    auto add = [&] {
      ++seq;
      m.seq = seq;
      m.id = "m_" + std::to_string(seq);
      m.text = "message " + std::to_string(seq);
      m.created_at = 1000 + seq;
      db->InsertMessage(m);
      db->UpdateChatAfterMessage(c.chat_id, seq, m.created_at, false);
    };
    db->Begin();
    db->InsertChat(c);
    for (int64_t i = 0; i < state.range(0); ++i) add();
    db->RaiseUserAck(c.chat_id, seq, 1000 + seq);
    db->Commit();
    for (auto _ : state) {
      db->Begin();
      for (int i = 0; i < 32; ++i) {
        add();
        benchmark::DoNotOptimize(db->RaiseUserAck(c.chat_id, seq, 2000 + seq));
      }
      db->Commit();
    }
    state.SetItemsProcessed(state.iterations() * 32);
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_SqliteAckInLongChat)->Arg(100)->Arg(10000)->Arg(100000)->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
