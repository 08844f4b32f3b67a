#pragma once
// store::Service: runs store operations off the event loops.
//
// Writes go to one writer thread that groups every operation waiting in its
// queue into one transaction (each in its own savepoint, so one failing
// operation does not undo the others) and commits once: one fsync for many
// sends. Completions run on the writer thread, in commit order, after the
// commit; a completion that needs a loop posts to it. Reads run on reader
// threads with their own connections (WAL: readers never wait for the
// writer). Queues are bounded twice: a full queue refuses at once
// (overloaded), it never grows without limit; and a queue whose oldest
// operation has waited longer than max_queue_delay_ms refuses new ones, so
// that what is admitted under overload still completes in about that time
// (the queue holds what can be done soon, not the whole backlog).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/metrics.h"
#include "store/db.h"

namespace onlined::store {

// Why a store operation has no value.
enum class Failure {
  kNone,
  kOverloaded,   // refused before it ran: a queue full or too slow (retry later)
  kEngine,       // the engine failed it (I/O, constraint, corruption): nothing was written
  kUnavailable,  // the engine cannot be reached (down, restarting): nothing was written
};

// The outcome of one store operation: a value, or why there is none.
template <class T>
struct Outcome {
  std::optional<T> value;
  Failure failure = Failure::kNone;
  std::string error;  // for the log: the engine's message, or why it was refused
  bool ok() const { return value.has_value(); }
  bool overloaded() const { return failure == Failure::kOverloaded; }
  // Worth a retry after a wait (overloaded or unreachable), as opposed to a
  // failure of this operation.
  bool transient() const {
    return failure == Failure::kOverloaded || failure == Failure::kUnavailable;
  }
};

class Service {
 public:
  using Opener = std::function<std::unique_ptr<Db>(bool writer)>;
  struct Options {
    int readers = 2;
    size_t max_queue = 20000;          // waiting writes (or reads) before refusing
    size_t max_batch = 1024;           // operations per transaction
    int64_t max_queue_delay_ms = 100;  // refuse while the oldest waits longer (0: no such limit)
  };

  // Opens the connections now (throws DbError on failure) and starts threads.
  Service(const Opener& open, Options opts, base::Metrics& metrics);
  ~Service();
  void Stop();

  // `fn` runs inside the next group transaction on the writer thread; `done`
  // runs there after the commit (or with the error). Never blocks the caller.
  template <class T>
  void Write(std::function<T(Db&)> fn, std::function<void(Outcome<T>)> done) {
    Enqueue(writes_, MakeOp<T>(std::move(fn), std::move(done)));
  }

  // One send (Db::Append) in the next group transaction; sends that wait
  // together go to the engine together (Db::AppendMany: one pipeline on a
  // network engine). `done` as for Write.
  void Append(AppendInput in, std::function<void(Outcome<AppendResult>)> done);

  // `fn` runs on a reader thread; `done` runs there too.
  template <class T>
  void Read(std::function<T(Db&)> fn, std::function<void(Outcome<T>)> done) {
    Enqueue(reads_, MakeOp<T>(std::move(fn), std::move(done)));
  }

  size_t write_backlog() const;
  // False while the engine cannot be reached (its last operation found it
  // down); /readyz and the metrics report it.
  bool reachable() const { return reachable_.load(std::memory_order_relaxed); }
  // True once the engine has stopped copying its log back (Db::
  // CheckpointsStopped, read now): writes still succeed; a restart is due.
  bool checkpoints_stopped() const { return writer_db_->CheckpointsStopped(); }

 private:
  struct AppendJob {
    AppendInput in;
    std::optional<AppendResult> out;
  };
  struct Op {
    std::function<void(Db&)> run;
    std::function<void(const std::string* err, Failure why)> finish;
    int64_t enqueued_ms = 0;            // steady
    std::shared_ptr<AppendJob> append;  // a send: may run with its neighbours
  };
  // Runs `units` (ranges of batch_) as one group; errors per operation.
  bool RunUnits(std::vector<Op>& batch, const std::vector<std::pair<size_t, size_t>>& units,
                std::vector<std::string>& op_errors, std::string& tx_error);
  struct Queue {
    mutable std::mutex mu;
    std::condition_variable cv;
    std::deque<Op> ops;
    bool stop = false;
  };
  void Enqueue(Queue& q, Op op);
  // Erases T: the result travels from `run` to `finish` in a shared slot.
  template <class T>
  static Op MakeOp(std::function<T(Db&)> fn, std::function<void(Outcome<T>)> done,
                   std::shared_ptr<std::optional<T>> slot = std::make_shared<std::optional<T>>()) {
    Op op;
    op.run = [fn = std::move(fn), slot](Db& db) { *slot = fn(db); };
    op.finish = [slot, done = std::move(done)](const std::string* err, Failure why) {
      Outcome<T> o;
      if (err) {
        o.error = *err;
        o.failure = why;
      } else {
        o.value = std::move(*slot);
      }
      done(std::move(o));
    };
    return op;
  }
  void WriterLoop();
  void ReaderLoop(Db* db);
  void SetReachable(bool up);

  Options opts_;
  base::Metrics& metrics_;
  std::unique_ptr<Db> writer_db_;
  std::vector<std::unique_ptr<Db>> reader_dbs_;
  Queue writes_, reads_;
  std::atomic<bool> reachable_{true};
  std::vector<std::thread> threads_;
  base::Metrics::Id m_commits_, m_ops_, m_failed_, m_refused_, m_refused_delay_, m_batch_,
      m_commit_s_, m_unreachable_, m_wal_pages_, m_checkpoints_stopped_;
  int64_t wal_pages_ = 0;             // the writer's: what m_wal_pages_ shows
  bool checkpoints_stopped_ = false;  // the writer's: what m_checkpoints_stopped_ shows
};

}  // namespace onlined::store
