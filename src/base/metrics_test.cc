#include "base/metrics.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace onlined::base {
namespace {

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Two listeners (the public one and /metrics apart) register the same
// series: the exposition holds it once, with both listeners' counts.
TEST(Metrics, ASeriesRegisteredAgainIsTheSameSeries) {
  Metrics m(2);
  const Metrics::Id a = m.Counter("x_requests_total", "Requests.");
  const Metrics::Id g = m.Gauge("x_open", "Open.");
  const Metrics::Id b = m.Counter("x_requests_total", "Requests.");
  EXPECT_EQ(a, b);
  EXPECT_EQ(m.Gauge("x_open", "Open."), g);
  m.Add(0, a, 2);
  m.Add(1, b, 3);
  const std::string text = m.Render();
  EXPECT_EQ(Count(text, "# HELP x_requests_total "), 1U) << text;
  EXPECT_EQ(Count(text, "# TYPE x_requests_total counter"), 1U) << text;
  EXPECT_EQ(Count(text, "\nx_requests_total "), 1U) << text;
  EXPECT_NE(text.find("\nx_requests_total 5\n"), std::string::npos) << text;
}

// Prometheus wants one HELP and TYPE per family, its series together.
TEST(Metrics, AFamilyRegisteredApartIsRenderedTogether) {
  Metrics m(1);
  const Metrics::Id bad = m.Counter("x_refusals_total", "Refusals.", R"(code="bad")");
  m.Counter("x_other_total", "Other.");
  const Metrics::Id late = m.Counter("x_refusals_total", "Refusals.", R"(code="late")");
  EXPECT_NE(bad, late);
  m.Add(0, late, 4);
  const std::string text = m.Render();
  EXPECT_EQ(Count(text, "# HELP x_refusals_total "), 1U) << text;
  const size_t first = text.find(R"(x_refusals_total{code="bad"} 0)");
  const size_t second = text.find(R"(x_refusals_total{code="late"} 4)");
  const size_t other = text.find("# HELP x_other_total");
  ASSERT_NE(first, std::string::npos) << text;
  ASSERT_NE(second, std::string::npos) << text;
  EXPECT_LT(first, second);
  EXPECT_LT(second, other) << "the family is split:\n" << text;
}

// _count is the +Inf bucket's total: the two cannot disagree.
TEST(Metrics, AHistogramCountsWhatItObserved) {
  Metrics m(2);
  const Metrics::Id h = m.Histogram("x_seconds", "Time.", {0.001, 0.01});
  m.Observe(0, h, 0.0005);
  m.Observe(1, h, 0.005);
  m.Observe(1, h, 5);
  const std::string text = m.Render();
  EXPECT_NE(text.find("x_seconds_bucket{le=\"0.001\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_seconds_sum 5.005500\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_seconds_count 3\n"), std::string::npos) << text;
}

TEST(Metrics, ANameRegisteredAsTwoKindsIsAMistake) {
  Metrics m(1);
  m.Counter("x_things", "Things.");
  EXPECT_THROW(m.Gauge("x_things", "Things."), std::logic_error);
  m.Histogram("x_seconds", "Time.", {0.1, 1});
  EXPECT_EQ(m.Histogram("x_seconds", "Time.", {0.1, 1}), m.Histogram("x_seconds", "", {0.1, 1}));
  EXPECT_THROW(m.Histogram("x_seconds", "Time.", {0.5}), std::logic_error);
}

}  // namespace
}  // namespace onlined::base
