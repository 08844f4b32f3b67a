#pragma once
// PostBatch: defers this thread's LoopGroup::Post calls until the scope ends,
// then hands each loop its handlers as one, in the order they were posted.
//
// A post costs the loop's queue lock and, when the loop sleeps in epoll, a
// wake-up made while that lock is held. A thread that posts in bursts (the
// store's writer after a commit: a reply and a delivery per send) pays that
// once per handler, and on a busy core the woken loop often preempts the
// poster still holding the lock, waits for it and switches back. In a batch
// it is paid once per loop per burst.
//
// Order: handlers posted in a batch to one loop run in that order, and before
// any this thread posts to that loop after the batch ("FIFO per (sender,
// loop) pair" holds). A post made with boost::asio::post directly is not
// deferred, and so may run before handlers batched earlier. Never wait inside
// a batch for a handler posted in it: it has not been posted yet.
#include <cstddef>
#include <memory>
#include <utility>

namespace onlined::base {

// A move-only callable taking nothing and returning nothing.
class Task {
 public:
  template <class Fn>
  explicit Task(Fn fn) : impl_(std::make_unique<Impl<Fn>>(std::move(fn))) {}
  void operator()() { impl_->Call(); }

 private:
  struct Base {
    virtual ~Base() = default;
    virtual void Call() = 0;
  };
  template <class Fn>
  struct Impl final : Base {
    explicit Impl(Fn f) : fn(std::move(f)) {}
    void Call() override { fn(); }
    Fn fn;
  };
  std::unique_ptr<Base> impl_;
};

namespace detail {
// This thread's open batches (inline: read on every post without a call).
inline thread_local int post_batch_depth = 0;
}  // namespace detail

class PostBatch {
 public:
  // Batches nest: an inner one joins the outermost, which posts. A post
  // that cannot be made (out of memory) would lose replies: it terminates.
  PostBatch();
  ~PostBatch();
  PostBatch(const PostBatch&) = delete;
  PostBatch& operator=(const PostBatch&) = delete;

  // True while this thread is inside a batch.
  static bool Active() { return detail::post_batch_depth > 0; }
};

}  // namespace onlined::base
