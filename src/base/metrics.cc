#include "base/metrics.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace onlined::base {

Metrics::Metrics(size_t loops) {
  for (size_t i = 0; i <= loops; ++i) slots_.push_back(std::make_unique<Slot>());
}

Metrics::Id Metrics::NewCells(size_t n) {
  if (next_cell_ + n > kMaxSeries * 2) throw std::logic_error("metrics: too many series");
  Id id = next_cell_;
  next_cell_ += static_cast<Id>(n);
  return id;
}

const Metrics::Series* Metrics::Find(const std::string& name, const std::string& labels, Kind kind,
                                     const std::vector<double>& bounds) const {
  for (const Series& s : series_) {
    if (s.name != name) continue;
    if (s.kind != kind) throw std::logic_error("metrics: " + name + " registered as two kinds");
    if (s.labels != labels) continue;
    if (s.bounds != bounds) throw std::logic_error("metrics: " + name + " with two bucket sets");
    return &s;
  }
  return nullptr;
}

Metrics::Id Metrics::Add(std::string name, std::string help, std::string labels, Kind kind,
                         std::vector<double> bounds) {
  // A series registered again (a second listener, say) is the same series:
  // one line in the exposition, its increments summed.
  if (const Series* s = Find(name, labels, kind, bounds)) return s->first_cell;
  const Id id = NewCells(kind == Kind::kHistogram ? bounds.size() + 2 : 1);
  size_t family = 0;
  while (family < series_.size() && series_[family].name != name) ++family;
  series_.push_back(
      {std::move(name), std::move(help), std::move(labels), kind, std::move(bounds), id, family});
  return id;
}

Metrics::Id Metrics::Counter(std::string name, std::string help, std::string labels) {
  return Add(std::move(name), std::move(help), std::move(labels), Kind::kCounter, {});
}

Metrics::Id Metrics::Gauge(std::string name, std::string help, std::string labels) {
  return Add(std::move(name), std::move(help), std::move(labels), Kind::kGauge, {});
}

Metrics::Id Metrics::Histogram(std::string name, std::string help, std::vector<double> bounds) {
  assert(bounds.size() <= kMaxBuckets);
  return Add(std::move(name), std::move(help), "", Kind::kHistogram, std::move(bounds));
}

void Metrics::Observe(size_t slot, Id hist, double value) {
  // `hist` is the first cell; find its series' bounds. Histograms are few,
  // so a short scan is cheaper than another indirection table.
  for (const Series& s : series_) {
    if (s.kind != Kind::kHistogram || s.first_cell != hist) continue;
    size_t b = 0;
    while (b < s.bounds.size() && value > s.bounds[b]) ++b;
    auto& v = slots_[slot]->v;
    v[hist + b].fetch_add(1, std::memory_order_relaxed);
    v[hist + s.bounds.size() + 1].fetch_add(static_cast<int64_t>(std::llround(value * 1e6)),
                                            std::memory_order_relaxed);
    return;
  }
}

std::string Metrics::Render() const {
  auto sum = [this](Id cell) {
    int64_t t = 0;
    for (const auto& s : slots_) t += s->v[cell].load(std::memory_order_relaxed);
    return t;
  };
  // A family's series together, under one HELP and TYPE (the exposition
  // format requires it), in the order the families were first registered.
  std::vector<const Series*> order;
  order.reserve(series_.size());
  for (const Series& s : series_) order.push_back(&s);
  std::stable_sort(order.begin(), order.end(),
                   [](const Series* a, const Series* b) { return a->family < b->family; });
  std::string out;
  out.reserve(8192);
  std::string last_name;
  char num[64];
  for (const Series* sp : order) {
    const Series& s = *sp;
    if (s.name != last_name) {
      const char* type = s.kind == Kind::kCounter ? "counter"
                         : s.kind == Kind::kGauge ? "gauge"
                                                  : "histogram";
      out += "# HELP " + s.name + " " + s.help + "\n# TYPE " + s.name + " " + type + "\n";
      last_name = s.name;
    }
    if (s.kind != Kind::kHistogram) {
      out += s.name;
      if (!s.labels.empty()) out += "{" + s.labels + "}";
      snprintf(num, sizeof num, " %lld\n", static_cast<long long>(sum(s.first_cell)));
      out += num;
      continue;
    }
    int64_t cumulative = 0;
    for (size_t b = 0; b <= s.bounds.size(); ++b) {
      cumulative += sum(s.first_cell + b);
      if (b < s.bounds.size()) {
        snprintf(num, sizeof num, "%g", s.bounds[b]);
      } else {
        snprintf(num, sizeof num, "+Inf");
      }
      out += s.name + "_bucket{le=\"" + num + "\"} " + std::to_string(cumulative) + "\n";
    }
    snprintf(num, sizeof num, "%.6f",
             static_cast<double>(sum(s.first_cell + s.bounds.size() + 1)) / 1e6);
    out += s.name + "_sum " + num + "\n";
    // The count is the +Inf bucket's total (no cell of its own to drift
    // from it under load).
    out += s.name + "_count " + std::to_string(cumulative) + "\n";
  }
  return out;
}

}  // namespace onlined::base
