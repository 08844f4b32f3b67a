#pragma once
// notify::Scheduler: works the durable outbox.
//
// Runs on its own thread ("notify", an io_context shared with the provider's
// HTTP client). Every tick it claims the notifications that are due, a
// slice of Options::batch per store transaction (Db::ClaimDue: rows other
// processes hold are skipped; a full slice is followed by the next at once),
// and decides each (notify::Decide): cancel, wait (quiet hours) or send. A send is marked `sending`
// in that same transaction, before the provider is called, under a lease: this node's id and a time
// until which the claim holds. If the node dies mid-send, the lease runs out and whichever node
// claims next retries it, once per expiry and within max_attempts; a node that restarts ends its
// own leases at once, never another live node's. Provider results are written back: sent, failed,
// or scheduled again with exponential backoff and jitter; a write that fails is made again until it
// succeeds, and applies only to the claim it answers.
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "base/metrics.h"
#include "notify/decide.h"
#include "notify/policy.h"
#include "notify/provider.h"
#include "store/service.h"

namespace onlined::notify {

class Scheduler {
 public:
  struct Options {
    int64_t tick_ms = 250;
    // Notifications claimed and decided per write transaction: each costs a
    // few reads inside it (on PostgreSQL, round trips), and the sends queued
    // behind the claim wait for them. A full slice is followed by the next
    // at once.
    int batch = 32;
    int max_attempts = 8;
    int64_t backoff_base_ms = 2000;
    int64_t backoff_max_ms = 300000;
    std::string owner = "local";  // this node's id, written into its claims
    int64_t lease_ms = 60000;     // a claim's life: longer than a provider request
  };

  // `policies` must outlive the scheduler; each claim takes its current
  // snapshot once, outside the store transaction.
  Scheduler(store::Service& store, const PolicySource& policies, base::Metrics& metrics,
            Options opts);
  ~Scheduler();

  // The io_context providers run on; valid for the scheduler's lifetime.
  boost::asio::io_context& io() { return io_; }
  // Takes the provider (built on io()) and starts the thread.
  void Start(std::unique_ptr<Provider> provider);
  void Stop();

  // The user had no live session when a manager's message was stored: the
  // notification is due `due_at` instead of after the ack timeout.
  // Thread-safe; a durable write, best effort (a lost one only delays).
  void PullEarlier(int64_t notification_id, int64_t due_at);

 private:
  void Tick();
  void Claim();
  void Claimed(const std::vector<store::Notification>& sends);
  // Writes a provider's result for the claim of `attempt` (fenced: a claim
  // taken over since is left as it is); a write that fails is made again
  // (RecordLater) until it succeeds or the scheduler stops.
  void Record(int64_t id, int attempt, const SmsResult& r, int tries);
  void RecordLater(int64_t id, int attempt, const SmsResult& r, int tries,
                   const std::string& error);

  store::Service& store_;
  const PolicySource& policies_;
  base::Metrics& metrics_;
  Options opts_;
  boost::asio::io_context io_{1};
  boost::asio::steady_timer timer_{io_};
  std::unique_ptr<Provider> provider_;
  std::thread thread_;
  bool claiming_ = false;  // notify thread only
  std::atomic<bool> stopping_{false};
  base::Metrics::Id m_sent_, m_failed_, m_cancelled_, m_retried_, m_waiting_, m_inflight_,
      m_lapsed_;
};

}  // namespace onlined::notify
