#include "store/service.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "base/clock.h"
#include "base/post_batch.h"

namespace onlined::store {

Service::Service(const Opener& open, Options opts, base::Metrics& metrics)
    : opts_(opts), metrics_(metrics) {
  writer_db_ = open(true);
  for (int i = 0; i < opts_.readers; ++i) reader_dbs_.push_back(open(false));
  m_commits_ = metrics.Counter("onlined_store_commits_total",
                               "Store transactions committed (each one fsync).");
  m_ops_ = metrics.Counter("onlined_store_writes_total", "Store write operations committed.");
  m_failed_ =
      metrics.Counter("onlined_store_failed_total", "Store operations that failed in the engine.");
  m_refused_ =
      metrics.Counter("onlined_store_refused_total", "Store operations refused: queue full.");
  m_refused_delay_ = metrics.Counter(
      "onlined_store_refused_delay_total",
      "Store operations refused: the oldest queued one waited past max_queue_delay_ms.");
  m_batch_ =
      metrics.Histogram("onlined_store_batch_size", "Write operations per committed transaction.",
                        {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024});
  m_commit_s_ = metrics.Histogram("onlined_store_commit_seconds",
                                  "Time of one group transaction incl. fsync.",
                                  {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5});
  m_unreachable_ = metrics.Gauge("onlined_store_unreachable",
                                 "1 while the store engine cannot be reached (writes fail fast).");
  m_wal_pages_ =
      metrics.Gauge("onlined_store_wal_pages",
                    "Pages in the store's write-ahead log after the last commit (SQLite).");
  m_checkpoints_stopped_ = metrics.Gauge(
      "onlined_store_checkpoints_stopped",
      "1 once a sync of the database file failed: the WAL is no longer copied back until a "
      "restart (SQLite).");
  threads_.emplace_back([this] {
    pthread_setname_np(pthread_self(), "store-writer");
    WriterLoop();
  });
  for (auto& db : reader_dbs_) {
    threads_.emplace_back([this, d = db.get()] {
      pthread_setname_np(pthread_self(), "store-reader");
      ReaderLoop(d);
    });
  }
}

Service::~Service() { Stop(); }

void Service::Stop() {
  for (Queue* q : {&writes_, &reads_}) {
    std::lock_guard lock(q->mu);
    q->stop = true;
    q->cv.notify_all();
  }
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

size_t Service::write_backlog() const {
  std::lock_guard lock(writes_.mu);
  return writes_.ops.size();
}

void Service::Enqueue(Queue& q, Op op) {
  const int64_t now = base::SteadyMs();
  bool late = false;
  {
    std::unique_lock lock(q.mu);
    late = opts_.max_queue_delay_ms > 0 && !q.ops.empty() &&
           now - q.ops.front().enqueued_ms > opts_.max_queue_delay_ms;
    if (!q.stop && q.ops.size() < opts_.max_queue && !late) {
      op.enqueued_ms = now;
      q.ops.push_back(std::move(op));
      // Woken after the lock is let go: a woken thread on this core would
      // otherwise preempt us, find the lock held and wait for us.
      lock.unlock();
      q.cv.notify_one();
      return;
    }
  }
  metrics_.Add(metrics_.loops(), late ? m_refused_delay_ : m_refused_);
  static const std::string kOverloaded = "store is overloaded";
  op.finish(&kOverloaded, Failure::kOverloaded);
}

void Service::Append(AppendInput in, std::function<void(Outcome<AppendResult>)> done) {
  auto job = std::make_shared<AppendJob>();
  job->in = std::move(in);
  // The result slot is the job's own: a unit of sends fills it directly.
  Op op = MakeOp<AppendResult>([job](Db& db) { return db.Append(job->in); }, std::move(done),
                               std::shared_ptr<std::optional<AppendResult>>(job, &job->out));
  op.append = std::move(job);
  Enqueue(writes_, std::move(op));
}

bool Service::RunUnits(std::vector<Op>& batch, const std::vector<std::pair<size_t, size_t>>& units,
                       std::vector<std::string>& op_errors, std::string& tx_error) {
  std::vector<std::string> unit_errors;
  std::vector<const AppendInput*> ins;
  const bool committed = writer_db_->RunGroup(
      units.size(),
      [&](size_t u) {
        const auto [b, e] = units[u];
        if (e - b == 1) return batch[b].run(*writer_db_);
        ins.clear();
        for (size_t k = b; k < e; ++k) ins.push_back(&batch[k].append->in);
        std::vector<AppendResult> outs = writer_db_->AppendMany(ins);
        if (outs.size() != e - b) throw DbError("the engine answered a different number of sends");
        for (size_t k = b; k < e; ++k) batch[k].append->out = std::move(outs[k - b]);
      },
      unit_errors, tx_error);
  if (committed) {
    for (size_t u = 0; u < units.size(); ++u) {
      for (size_t k = units[u].first; k < units[u].second; ++k) op_errors[k] = unit_errors[u];
    }
  }
  return committed;
}

void Service::SetReachable(bool up) {
  if (reachable_.exchange(up, std::memory_order_relaxed) == up) return;
  metrics_.Add(metrics_.loops(), m_unreachable_, up ? -1 : 1);
  if (up) {
    spdlog::info("store: the engine is reachable again");
  } else {
    spdlog::error("store: the engine cannot be reached; writes fail until it is back");
  }
}

void Service::WriterLoop() {
  std::vector<Op> batch;
  std::vector<std::string> errors;
  const size_t slot = metrics_.loops();
  for (;;) {
    batch.clear();
    {
      std::unique_lock lock(writes_.mu);
      writes_.cv.wait(lock, [this] { return writes_.stop || !writes_.ops.empty(); });
      if (writes_.ops.empty() && writes_.stop) return;
      while (!writes_.ops.empty() && batch.size() < opts_.max_batch) {
        batch.push_back(std::move(writes_.ops.front()));
        writes_.ops.pop_front();
      }
    }
    auto t0 = std::chrono::steady_clock::now();
    // Sends that follow each other go to the engine as one unit (a pipeline
    // on PostgreSQL), as many as it takes at once (Db::AppendUnit).
    const size_t max_unit = writer_db_->AppendUnit();
    std::vector<std::pair<size_t, size_t>> units;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].append && !units.empty() && units.back().second == i &&
          batch[units.back().first].append && i - units.back().first < max_unit) {
        ++units.back().second;
      } else {
        units.emplace_back(i, i + 1);
      }
    }
    errors.assign(batch.size(), std::string());
    std::string tx_error;
    bool committed = RunUnits(batch, units, errors, tx_error);
    // A unit of sends that failed was undone as a whole: each of its sends
    // once more alone, so that only the failing one fails.
    std::vector<size_t> redo;
    if (committed) {
      for (const auto& [b, e] : units) {
        if (e - b > 1 && !errors[b].empty()) {
          for (size_t k = b; k < e; ++k) redo.push_back(k);
        }
      }
    }
    if (!redo.empty()) {
      std::vector<Op> again;
      std::vector<std::pair<size_t, size_t>> singles;
      for (size_t k : redo) {
        singles.emplace_back(again.size(), again.size() + 1);
        again.push_back(std::move(batch[k]));
      }
      std::vector<std::string> again_errors(again.size());
      std::string again_tx;
      if (!RunUnits(again, singles, again_errors, again_tx)) {
        for (auto& e : again_errors) e = again_tx;
      }
      // Completions in commit order: the group first, then these.
      std::vector<Op> ordered;
      std::vector<std::string> ordered_errors;
      std::vector<bool> redone(batch.size(), false);
      for (size_t k : redo) redone[k] = true;
      for (size_t i = 0; i < batch.size(); ++i) {
        if (redone[i]) continue;
        ordered.push_back(std::move(batch[i]));
        ordered_errors.push_back(std::move(errors[i]));
      }
      for (size_t k = 0; k < again.size(); ++k) {
        ordered.push_back(std::move(again[k]));
        ordered_errors.push_back(std::move(again_errors[k]));
      }
      batch = std::move(ordered);
      errors = std::move(ordered_errors);
    }
    // Also after a commit: the connection may have gone while operations
    // were redone one by one. Unreachable engines fail fast and often:
    // logged once per outage (SetReachable).
    const bool unreachable = writer_db_->Unreachable();
    if (!committed && !unreachable) {
      spdlog::error("store: transaction of {} operations failed: {}", batch.size(), tx_error);
    }
    SetReachable(!unreachable);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (committed) {
      metrics_.Add(slot, m_commits_);
      metrics_.Observe(slot, m_batch_, static_cast<double>(batch.size()));
      metrics_.Observe(slot, m_commit_s_, secs);
      const int64_t wal = writer_db_->WalPages();
      metrics_.Add(slot, m_wal_pages_, wal - wal_pages_);
      wal_pages_ = wal;
    }
    // After every pass, committed or not: a disk that failed a checkpoint's
    // sync may fail the commits' too.
    if (const bool stopped = writer_db_->CheckpointsStopped(); stopped != checkpoints_stopped_) {
      checkpoints_stopped_ = stopped;
      metrics_.Add(slot, m_checkpoints_stopped_, stopped ? 1 : -1);
    }
    // The completions' posts (replies, deliveries) reach each loop as one
    // handler per commit, not one per send (base/post_batch.h).
    base::PostBatch posts;
    for (size_t i = 0; i < batch.size(); ++i) {
      const std::string* err = !committed ? &tx_error : errors[i].empty() ? nullptr : &errors[i];
      metrics_.Add(slot, err ? m_failed_ : m_ops_);
      batch[i].finish(err, unreachable ? Failure::kUnavailable : Failure::kEngine);
    }
  }
}

void Service::ReaderLoop(Db* db) {
  for (;;) {
    Op op;
    {
      std::unique_lock lock(reads_.mu);
      reads_.cv.wait(lock, [this] { return reads_.stop || !reads_.ops.empty(); });
      if (reads_.ops.empty() && reads_.stop) return;
      op = std::move(reads_.ops.front());
      reads_.ops.pop_front();
    }
    std::string err;
    Failure why = Failure::kEngine;
    try {
      db->BeginRead();  // a consistent snapshot for multi-statement reads
      op.run(*db);
      db->Commit();
    } catch (const std::exception& e) {
      err = e.what();
      if (dynamic_cast<const DbUnavailable*>(&e) != nullptr) why = Failure::kUnavailable;
      try {
        db->Rollback();
      } catch (...) {
      }
    }
    SetReachable(why != Failure::kUnavailable);
    op.finish(err.empty() ? nullptr : &err, why);
  }
}

}  // namespace onlined::store
