// Microbenchmarks (Google Benchmark) of the presence hot paths, single
// thread, no sockets: what a shard does per id of a presence query, with the
// table far bigger than the caches, as on a loaded server.
//   build/bench/micro [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "base/timing_wheel.h"
#include "presence/presence_table.h"

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

}  // namespace

BENCHMARK_MAIN();
