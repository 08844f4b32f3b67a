#include "base/loops.h"

#include <pthread.h>

#include <exception>
#include <latch>
#include <string>

#include "base/clock.h"

namespace onlined::base {

namespace {
thread_local Loop* current_loop = nullptr;

// What this thread's open batch holds, per (group, loop).
struct Deferred {
  LoopGroup* group;
  size_t loop;
  std::vector<Task> tasks;
};
thread_local std::vector<Deferred> deferred;
}  // namespace

PostBatch::PostBatch() { ++detail::post_batch_depth; }

PostBatch::~PostBatch() {
  if (--detail::post_batch_depth > 0) return;
  std::vector<Deferred> pending;
  pending.swap(deferred);
  try {
    for (Deferred& d : pending) {
      boost::asio::post(d.group->at(d.loop).io(), [tasks = std::move(d.tasks)]() mutable {
        for (Task& t : tasks) t();
      });
    }
  } catch (...) {
    std::terminate();
  }
}

void LoopGroup::Defer(size_t i, Task task) {
  for (Deferred& d : deferred) {
    if (d.group == this && d.loop == i) {
      d.tasks.push_back(std::move(task));
      return;
    }
  }
  deferred.push_back(Deferred{this, i, {}});
  deferred.back().tasks.push_back(std::move(task));
}

Loop::Loop(size_t index, int64_t tick_ms, SteadyClock clock)
    : index_(index),
      tick_ms_(tick_ms),
      wall_ms_(clock.Wall()),
      clock_(clock),
      wheel_(clock.Now(), tick_ms),
      tick_timer_(io_) {}

Loop* Loop::Current() { return current_loop; }

void Loop::Advance() {
  wall_ms_ = clock_.Wall();
  wheel_.Advance(clock_.Now());
}

void Loop::ArmTick() {
  tick_timer_.expires_after(std::chrono::milliseconds(tick_ms_));
  tick_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    Advance();
    ArmTick();
  });
}

void Loop::Run() {
  current_loop = this;
  std::string name = "loop-" + std::to_string(index_);
  pthread_setname_np(pthread_self(), name.c_str());
  Advance();
  ArmTick();
  io_.run();
  current_loop = nullptr;
}

LoopGroup::LoopGroup(size_t n, int64_t tick_ms, SteadyClock clock) {
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  for (size_t i = 0; i < n; ++i) loops_.push_back(std::make_unique<Loop>(i, tick_ms, clock));
}

LoopGroup::~LoopGroup() {
  try {
    Stop();
  } catch (...) {  // joining cannot fail for joinable threads; never throw from here
  }
}

void LoopGroup::Start() {
  for (auto& l : loops_) guards_.emplace_back(l->io_.get_executor());
  for (auto& l : loops_) threads_.emplace_back([lp = l.get()] { lp->Run(); });
}

void LoopGroup::TickAll() {
  assert(Loop::Current() == nullptr && "TickAll from a loop would wait for itself");
  std::latch done(static_cast<std::ptrdiff_t>(loops_.size()));
  for (auto& l : loops_) {
    boost::asio::post(l->io_, [lp = l.get(), &done] {
      lp->Advance();
      done.count_down();
    });
  }
  done.wait();
}

void LoopGroup::DestroyPending() {
  assert(threads_.empty() && "DestroyPending before Stop");
  // A destructor may post to a loop already done: it is done again.
  for (int pass = 0; pass < 3; ++pass) {
    for (auto& l : loops_) l->io_.DestroyPending();
  }
}

void LoopGroup::Stop() {
  guards_.clear();
  for (auto& l : loops_) {
    boost::asio::post(l->io_, [lp = l.get()] { lp->tick_timer_.cancel(); });
  }
  for (auto& l : loops_) l->io_.stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

}  // namespace onlined::base
