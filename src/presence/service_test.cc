// presence::Service on a real two-loop group: events reach subscribers on
// every loop with the same numbers, in order; a resume replays what was
// missed before anything new, or resets when it is too old.
#include "presence/service.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <future>
#include <mutex>

namespace onlined::presence {
namespace {

using namespace std::chrono_literals;

// Collects frames on its loop; the test reads them under the mutex.
struct Desk : Subscriber {
  std::mutex mu;
  std::vector<std::string> frames;
  bool reset = false;
  uint64_t last = 0;
  std::promise<void> subscribed;
  void OnChannelFrame(const Payload& f) override {
    std::lock_guard l(mu);
    frames.push_back(*f);
  }
  void OnSubscribed(std::vector<Payload> replay, bool r, uint64_t last_seq) override {
    {
      std::lock_guard l(mu);
      for (auto& p : replay) frames.push_back(*p);
      reset = r;
      last = last_seq;
    }
    subscribed.set_value();
  }
  // The event numbers received, in order.
  std::vector<uint64_t> Seqs() {
    std::lock_guard l(mu);
    std::vector<uint64_t> out;
    for (const auto& f : frames)
      out.push_back(boost::json::parse(f).at("event_seq").to_number<uint64_t>());
    return out;
  }
};

class ServiceTest : public ::testing::Test {
 protected:
  ServiceTest() : loops_(2), metrics_(2), service_(loops_, metrics_, Options()) { loops_.Start(); }
  ~ServiceTest() override { loops_.Stop(); }
  static ServiceOptions Options() {
    ServiceOptions o;
    o.table.offline_grace_ms = 0;
    o.event_log_capacity = 4;
    o.first_seq = 1000;
    return o;
  }
  // Runs `fn` on loop `i` and waits for it.
  template <class Fn>
  void On(size_t i, Fn fn) {
    std::promise<void> done;
    loops_.Post(i, [&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }
  void Subscribe(size_t loop, Desk& d, std::optional<uint64_t> after = std::nullopt) {
    On(loop, [&] { service_.Subscribe(0, &d, after); });
    d.subscribed.get_future().wait();
  }
  // A user's session opens (from loop 0) and the shard knows it.
  std::shared_ptr<SessionCell> Open(const std::string& user) {
    auto cell = std::make_shared<SessionCell>();
    cell->loop = 0;
    std::promise<void> known;
    loops_.Post(0, [&] { service_.Open(0, user, cell, [&known] { known.set_value(); }); });
    known.get_future().wait();
    return cell;
  }
  void Close(const std::string& user, std::shared_ptr<SessionCell> cell) {
    On(0, [&] { service_.Close(0, user, cell, false); });
  }
  static void WaitFor(Desk& d, size_t n) {
    for (int i = 0; i < 200; ++i) {
      {
        std::lock_guard l(d.mu);
        if (d.frames.size() >= n) return;
      }
      std::this_thread::sleep_for(5ms);
    }
  }

  base::LoopGroup loops_;
  base::Metrics metrics_;
  Service service_;
};

TEST_F(ServiceTest, DesksOnBothLoopsGetTheSameEventsInOrder) {
  Desk a, b;
  Subscribe(0, a);
  Subscribe(1, b);
  EXPECT_EQ(a.last, 1000u);
  auto ann = Open("ann");
  auto bob = Open("bob");
  Close("ann", ann);
  WaitFor(a, 3);
  WaitFor(b, 3);
  EXPECT_EQ(a.Seqs(), (std::vector<uint64_t>{1001, 1002, 1003}));
  EXPECT_EQ(b.Seqs(), a.Seqs());
  std::lock_guard l(a.mu);
  EXPECT_EQ(a.frames[0], b.frames[0]);  // one encoding, shared
}

TEST_F(ServiceTest, AResumeReplaysWhatWasMissedThenWhatIsNew) {
  auto ann = Open("ann");  // 1001
  auto bob = Open("bob");  // 1002
  auto cat = Open("cat");  // 1003
  Desk d;
  Subscribe(1, d, 1001);
  EXPECT_FALSE(d.reset);
  auto dan = Open("dan");  // 1004, live
  WaitFor(d, 3);
  EXPECT_EQ(d.Seqs(), (std::vector<uint64_t>{1002, 1003, 1004}));
}

TEST_F(ServiceTest, AResumeOlderThanWhatIsKeptIsAReset) {
  std::vector<std::shared_ptr<SessionCell>> cells;
  for (int i = 0; i < 6; ++i) cells.push_back(Open("u" + std::to_string(i)));  // 1001..1006, 4 kept
  Desk old, fresh, bogus;
  Subscribe(0, old, 1001);
  EXPECT_TRUE(old.reset);
  EXPECT_EQ(old.last, 1006u);
  Subscribe(0, fresh, 1002);  // 1003..1006 are kept
  EXPECT_FALSE(fresh.reset);
  EXPECT_EQ(fresh.Seqs(), (std::vector<uint64_t>{1003, 1004, 1005, 1006}));
  Subscribe(1, bogus, 5);  // a number of an earlier run
  EXPECT_TRUE(bogus.reset);
}

TEST_F(ServiceTest, AnUnsubscribedDeskHearsNothingMore) {
  Desk d;
  uint64_t handle = 0;
  On(1, [&] { handle = service_.Subscribe(0, &d, std::nullopt); });
  d.subscribed.get_future().wait();
  On(1, [&] { service_.Unsubscribe(handle); });
  auto ann = Open("ann");
  std::this_thread::sleep_for(50ms);
  std::lock_guard l(d.mu);
  EXPECT_TRUE(d.frames.empty());
}

}  // namespace
}  // namespace onlined::presence
