#pragma once
// Metrics: Prometheus counters, gauges and histograms kept per loop, so the
// hot paths increment memory no other core writes. Everything is registered
// at start-up (before loops run); increments are lock-free from any thread
// but cheapest from the owning loop. Render() sums the loops.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace onlined::base {

class Metrics {
 public:
  using Id = uint32_t;
  static constexpr size_t kMaxSeries = 256;
  static constexpr size_t kMaxBuckets = 16;

  // slots: one per loop, plus one shared slot for other threads.
  explicit Metrics(size_t loops);

  // Registration: start-up only, not thread-safe. `labels` is the Prometheus
  // label set without braces, e.g. `code="bad_token"`. Registering a series
  // again returns the same Id (one series, increments summed).
  Id Counter(std::string name, std::string help, std::string labels = "");
  Id Gauge(std::string name, std::string help, std::string labels = "");
  Id Histogram(std::string name, std::string help, std::vector<double> bounds);

  // slot: the loop index, or loops() for "not a loop thread".
  void Add(size_t slot, Id id, int64_t n = 1) {
    slots_[slot]->v[id].fetch_add(n, std::memory_order_relaxed);
  }
  void Observe(size_t slot, Id hist, double value);
  size_t loops() const { return slots_.size() - 1; }

  std::string Render() const;

 private:
  enum class Kind { kCounter, kGauge, kHistogram };
  struct Series {
    std::string name, help, labels;
    Kind kind;
    std::vector<double> bounds;  // histograms: upper bounds, ascending
    Id first_cell;               // histograms: buckets..., +Inf, sum(us)
    size_t family;               // the index of the first series of this name
  };
  struct alignas(64) Slot {
    std::array<std::atomic<int64_t>, kMaxSeries * 2> v{};
  };
  Id NewCells(size_t n);
  // The series `name`{labels} if registered already (a clash of kind or
  // buckets is a programming error: logic_error), else null.
  const Series* Find(const std::string& name, const std::string& labels, Kind kind,
                     const std::vector<double>& bounds) const;
  Id Add(std::string name, std::string help, std::string labels, Kind kind,
         std::vector<double> bounds);

  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<Series> series_;
  Id next_cell_ = 0;
};

}  // namespace onlined::base
