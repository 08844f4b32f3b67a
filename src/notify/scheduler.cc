#include "notify/scheduler.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <random>
#include <utility>

#include "base/clock.h"

namespace onlined::notify {

namespace asio = boost::asio;

Scheduler::Scheduler(store::Service& store, const PolicySource& policies, base::Metrics& metrics,
                     Options opts)
    : store_(store), policies_(policies), metrics_(metrics), opts_(std::move(opts)) {
  m_sent_ = metrics.Counter("onlined_sms_sent_total", "SMS accepted by the provider.");
  m_failed_ = metrics.Counter("onlined_sms_failed_total",
                              "Notifications failed (provider refusal or retries exhausted).");
  m_cancelled_ = metrics.Counter(
      "onlined_sms_cancelled_total",
      "Notifications cancelled (read, delivered, no phone, opted out, rate limit).");
  m_retried_ =
      metrics.Counter("onlined_sms_retries_total", "Provider errors retried with backoff.");
  m_waiting_ =
      metrics.Counter("onlined_sms_quiet_hours_total", "Notifications held back by quiet hours.");
  m_inflight_ = metrics.Gauge("onlined_sms_in_flight", "Provider requests under way.");
  m_lapsed_ = metrics.Counter(
      "onlined_sms_lease_expired_total",
      "Sends claimed again because their sender's lease ran out (a node died mid-send).");
}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Start(std::unique_ptr<Provider> provider) {
  provider_ = std::move(provider);
  // This node's last run may have left sends under way: each is tried again,
  // once more, now rather than when its lease would run out.
  store_.Write<int>(
      [owner = opts_.owner](store::Db& db) { return db.EndLeasesOf(owner, base::WallMs()); },
      [](store::Outcome<int> o) {
        if (o.ok() && *o.value > 0)
          spdlog::warn("outbox: {} send(s) in flight at the last stop are retried", *o.value);
      });
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "notify");
    auto guard = asio::make_work_guard(io_);
    Tick();
    io_.run();
  });
}

void Scheduler::Stop() {
  if (stopping_.exchange(true)) return;
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::PullEarlier(int64_t id, int64_t due_at) {
  store_.Write<bool>(
      [id, due_at](store::Db& db) {
        auto n = db.GetNotification(id);
        if (!n || n->state != store::NotifyState::kScheduled || n->due_at <= due_at) return false;
        n->due_at = due_at;
        n->reason = "user_offline";
        n->updated_at = base::WallMs();
        db.UpdateNotification(*n);
        return true;
      },
      [](const store::Outcome<bool>&) {});
}

void Scheduler::Tick() {
  if (stopping_) return;
  if (!claiming_) {
    claiming_ = true;
    // A look on a reader first: an idle outbox costs no write transaction.
    store_.Read<bool>([](store::Db& db) { return db.AnyDue(base::WallMs()); },
                      [this](store::Outcome<bool> due) {
                        asio::post(io_, [this, any = due.ok() && *due.value] {
                          if (any) {
                            Claim();
                          } else {
                            claiming_ = false;
                          }
                        });
                      });
  }
  timer_.expires_after(std::chrono::milliseconds(opts_.tick_ms));
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) Tick();
  });
}

// Claims and decides up to opts_.batch due notifications in one write
// transaction (notify thread); Claimed() sends what was decided.
void Scheduler::Claim() {
  {
    std::shared_ptr<const Policies> policies =
        policies_.Get();  // time zones read at load, not here
    // Counted when committed (the engine may run a group twice: Db::RunGroup).
    auto cancelled = std::make_shared<int>(0);
    auto waiting = std::make_shared<int>(0);
    auto lapsed = std::make_shared<int>(0);
    auto exhausted = std::make_shared<int>(0);
    auto claimed = std::make_shared<int>(0);
    store_.Write<std::vector<store::Notification>>(
        [opts = opts_, policies, cancelled, waiting, lapsed, exhausted, claimed](store::Db& db) {
          *cancelled = *waiting = *lapsed = *exhausted = 0;
          std::vector<store::Notification> sends;
          const int64_t now = base::WallMs();
          std::vector<store::Notification> due = db.ClaimDue(now, opts.batch);
          *claimed = static_cast<int>(due.size());
          for (store::Notification& n : due) {
            n.updated_at = now;
            if (n.state == store::NotifyState::kSending) {
              // Its sender's lease ran out (the node died or froze mid-send).
              ++*lapsed;
              if (n.attempts >= opts.max_attempts) {
                n.state = store::NotifyState::kFailed;
                n.reason = "retries_exhausted: lease expired";
                db.UpdateNotification(n);
                ++*exhausted;
                continue;
              }
            }
            const Policy* p = policies->Find(n.channel);
            std::optional<store::Chat> chat = db.GetChat(n.channel, n.chat_id);
            if (!p || !chat) {
              n.state = store::NotifyState::kCancelled;
              n.reason = !p ? "channel_removed" : "chat_missing";
              db.UpdateNotification(n);
              ++*cancelled;
              continue;
            }
            FireInput in;
            in.n = n;
            in.user = db.GetUser(n.channel, n.user_id);
            in.chat = *chat;
            in.window = db.ListMessages(n.chat_id, n.first_seq - 1,
                                        static_cast<int>(n.last_seq - n.first_seq + 1));
            in.last_sms_at = db.LastSmsSentAt(n.channel, n.user_id, n.id);
            in.now = now;
            Decision d = Decide(in, *p);
            switch (d.action) {
              case Decision::Action::kCancel:
                n.state = store::NotifyState::kCancelled;
                n.reason = d.reason;
                ++*cancelled;
                break;
              case Decision::Action::kWait:
                // Scheduled again (a lapsed send too: left `sending` under
                // its old lease, it would be due, and claimed, at once).
                n.state = store::NotifyState::kScheduled;
                n.claimed_by.clear();
                n.lease_until = 0;
                n.due_at = d.wait_until;
                n.reason = d.reason;
                ++*waiting;
                break;
              case Decision::Action::kSend:
                n.state = store::NotifyState::kSending;
                n.reason = "sending";
                n.phone = d.phone;
                n.body = d.body;
                n.claimed_by = opts.owner;
                n.lease_until = now + opts.lease_ms;
                ++n.attempts;
                sends.push_back(n);
                break;
            }
            db.UpdateNotification(n);
          }
          return sends;
        },
        [this, cancelled, waiting, lapsed, exhausted,
         claimed](store::Outcome<std::vector<store::Notification>> o) {
          if (o.ok()) {
            metrics_.Add(metrics_.loops(), m_failed_, *exhausted);  // failed for good
            metrics_.Add(metrics_.loops(), m_cancelled_, *cancelled);
            metrics_.Add(metrics_.loops(), m_waiting_, *waiting);
            metrics_.Add(metrics_.loops(), m_lapsed_, *lapsed);
            if (*lapsed > *exhausted) {
              spdlog::warn("outbox: {} send(s) whose sender's lease ran out are retried",
                           *lapsed - *exhausted);
            }
            if (*exhausted > 0) {
              spdlog::warn(
                  "outbox: {} send(s) whose sender's lease ran out failed for good "
                  "(attempts exhausted)",
                  *exhausted);
            }
          }
          const bool full = o.ok() && *claimed >= opts_.batch;
          asio::post(io_, [this, o = std::move(o), full]() mutable {
            claiming_ = false;
            if (!o.ok()) {
              spdlog::warn("outbox: cannot claim due notifications: {}", o.error);
              return;
            }
            Claimed(*o.value);
            // More may be due: the next slice now, behind what the writer
            // was given meanwhile (sends wait for one slice, not for all).
            if (full && !stopping_) {
              claiming_ = true;
              Claim();
            }
          });
        });
  }
}

void Scheduler::Claimed(const std::vector<store::Notification>& sends) {
  for (const store::Notification& n : sends) {
    metrics_.Add(metrics_.loops(), m_inflight_, 1);
    provider_->Send({n.id, n.phone, n.body},
                    [this, id = n.id, attempt = n.attempts](const SmsResult& r) {
                      metrics_.Add(metrics_.loops(), m_inflight_, -1);
                      if (r.kind == SmsResult::Kind::kSent) metrics_.Add(metrics_.loops(), m_sent_);
                      Record(id, attempt, r, 0);
                    });
  }
}

void Scheduler::Record(int64_t id, int attempt, const SmsResult& r, int tries) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  const double j = jitter(rng);
  Options opts = opts_;
  using K = SmsResult::Kind;
  enum : int { kSentDone, kRetried, kFailed, kTakenOver, kAlreadyRecorded };
  store_.Write<int>(
      [id, attempt, r, j, opts](store::Db& db) -> int {
        auto n = db.GetNotification(id);
        // Fenced: only the claim this send was made under takes its result.
        // After this node's lease ran out another may have claimed it again
        // (and sent it, or be sending it): its own result is the one kept.
        if (!n || n->claimed_by != opts.owner || n->attempts != attempt) return kTakenOver;
        // Written before, its answer lost (PostgreSQL went away after the
        // commit): nothing to do again.
        if (n->state != store::NotifyState::kSending) return kAlreadyRecorded;
        const int64_t now = base::WallMs();
        n->updated_at = now;
        if (r.kind == K::kSent) {
          n->state = store::NotifyState::kSent;
          n->provider_sid = r.sid;
          if (n->provider_status.empty()) n->provider_status = r.status;
          n->reason = "sent";
        } else if (r.kind == K::kRetry && n->attempts < opts.max_attempts) {
          int64_t backoff = opts.backoff_base_ms << std::min(n->attempts - 1, 20);
          backoff = static_cast<int64_t>(
              std::min<double>(static_cast<double>(opts.backoff_max_ms), backoff * j));
          n->state = store::NotifyState::kScheduled;
          n->due_at = now + backoff;
          n->reason = "retry: " + r.reason;
          db.UpdateNotification(*n);
          return kRetried;
        } else {
          n->state = store::NotifyState::kFailed;
          n->reason = r.kind == K::kRetry ? "retries_exhausted: " + r.reason : r.reason;
        }
        db.UpdateNotification(*n);
        return r.kind == K::kSent ? kSentDone : kFailed;
      },
      [this, id, attempt, r, tries](store::Outcome<int> o) {
        if (!o.ok()) {
          // The provider has the send: a result not written would leave the
          // row `sending`, and the next claim after the lease would send it
          // again. Written again until it is, with backoff, while running.
          asio::post(io_, [this, id, attempt, r, tries, error = o.error] {
            RecordLater(id, attempt, r, tries, error);
          });
          return;
        }
        if (*o.value == kRetried) metrics_.Add(metrics_.loops(), m_retried_);
        if (*o.value == kFailed) {
          metrics_.Add(metrics_.loops(), m_failed_);
          spdlog::warn("outbox: notification {} failed: {}", id, r.reason);
        }
        if (*o.value == kTakenOver) {
          spdlog::warn(
              "outbox: the result of notification {} (attempt {}) came after its lease was "
              "taken over; kept the later claim's",
              id, attempt);
        }
      });
}

void Scheduler::RecordLater(int64_t id, int attempt, const SmsResult& r, int tries,
                            const std::string& error) {
  if (stopping_) {
    spdlog::error("outbox: the result of notification {} is not recorded (stopping): {}", id,
                  error);
    return;
  }
  const int64_t wait_ms = std::min<int64_t>(int64_t{250} << std::min(tries, 5), 8000);
  if (tries % 8 == 0) {
    spdlog::warn("outbox: cannot record the result of notification {} yet ({}); again in {} ms", id,
                 error, wait_ms);
  }
  auto t = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(wait_ms));
  t->async_wait([this, t, id, attempt, r, tries](boost::system::error_code ec) {
    if (!ec && !stopping_) Record(id, attempt, r, tries + 1);
  });
}

}  // namespace onlined::notify
