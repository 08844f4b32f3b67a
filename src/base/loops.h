#pragma once
// LoopGroup: one io_context per core, each run by one thread ("a loop").
// Shared-nothing: state that belongs to a loop is touched only by its thread;
// other threads reach it with Post(). Each loop also owns a TimingWheel ticked
// by the loop itself, so deadlines need no timer per object.
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cassert>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/post_batch.h"
#include "base/timing_wheel.h"

namespace onlined::base {

class Loop {
 public:
  Loop(size_t index, int64_t tick_ms, SteadyClock clock);
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  boost::asio::io_context& io() { return io_; }
  size_t index() const { return index_; }
  // The wheel runs on steady time; now_ms() is its time, advanced every tick.
  // Only the loop's own thread may use these.
  TimingWheel& wheel() { return wheel_; }
  int64_t now_ms() const { return wheel_.now_ms(); }
  // The clock the wheel runs on. now_ms() is as old as the last tick (up to
  // tick_ms, more on a busy loop); a deadline set from an event that must
  // not fire early ("offline after the grace, not before") reads it fresh.
  const SteadyClock& clock() const { return clock_; }
  // Wall time (ms since the epoch) read at the same tick as now_ms(), from
  // the same clock: what a deadline in wall time (a token's exp) is set
  // against, so that a test's ManualClock moves it too.
  int64_t wall_ms() const { return wall_ms_; }

  // The loop whose thread is calling, or nullptr on any other thread.
  static Loop* Current();

 private:
  friend class LoopGroup;
  void Run();
  void ArmTick();
  void Advance();  // reads the clock: the wheel fires what is due

  size_t index_;
  int64_t tick_ms_;
  int64_t wall_ms_ = 0;
  SteadyClock clock_;
  // Declared before io_: handlers destroyed with io_ (connections) may
  // still cancel their wheel entries.
  TimingWheel wheel_;
  // An io_context whose pending handlers can be destroyed before it is
  // (LoopGroup::DestroyPending).
  class Context : public boost::asio::io_context {
   public:
    using boost::asio::io_context::io_context;
    // Shuts its services down: every handler still queued or waiting on a
    // socket or timer is destroyed, with what it owns. Again on a second
    // call (what was posted since). The I/O objects may still be destroyed
    // after it, as after the first step of the io_context's destructor.
    void DestroyPending() { shutdown(); }
  };
  Context io_{1};
  boost::asio::steady_timer tick_timer_;
};

// Asserts (debug builds) that the caller runs on loop `i`: state that loop
// owns (a shard, an event log, its subscribers) is touched nowhere else.
inline void AssertOnLoop([[maybe_unused]] size_t i) {
  assert(Loop::Current() != nullptr && Loop::Current()->index() == i && "not on the owning loop");
}

class LoopGroup {
 public:
  // n == 0 means one loop per hardware thread. `clock` is the steady time
  // the wheels run on (a ManualClock in tests).
  explicit LoopGroup(size_t n, int64_t tick_ms = 100, SteadyClock clock = {});
  ~LoopGroup();

  size_t size() const { return loops_.size(); }
  Loop& at(size_t i) { return *loops_[i]; }

  // Starts one thread per loop. Loops run until Stop().
  void Start();
  // Stops every loop and joins the threads. Safe to call twice.
  void Stop();
  // After Stop: destroys what the loops still hold (handlers queued or
  // waiting on a socket, and what they own: connections, answers posted to
  // a loop that had stopped). Call it while what those objects' destructors
  // reach (the server, its counters) still exists; otherwise they would run
  // when the loops are destroyed, after it.
  void DestroyPending();

  // Has every loop read its clock now and fire what is due, and returns once
  // each has (not from a loop's own thread). Tests call it after moving a
  // ManualClock, so what the new time makes due has fired when it returns.
  void TickAll();

  // Runs fn on loop i's thread (FIFO per (sender, loop) pair). Inside a
  // PostBatch on this thread, when the batch ends.
  template <class Fn>
  void Post(size_t i, Fn&& fn) {
    if (PostBatch::Active()) {
      Defer(i, Task(std::forward<Fn>(fn)));
    } else {
      boost::asio::post(loops_[i]->io_, std::forward<Fn>(fn));
    }
  }

 private:
  void Defer(size_t i, Task task);
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::thread> threads_;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards_;
};

}  // namespace onlined::base
