#pragma once
// ThreadChecker: asserts that state owned by one thread (a loop's shard, a
// connection, an event log) is touched only by that thread. It binds to the
// first thread that calls Check() (objects are often built on another) and
// asserts on every later call; Detach() lets a new owner bind (a table handed
// to its loop after construction). In builds with NDEBUG it is empty and
// costs nothing.
#include <cassert>
#include <thread>

namespace onlined::base {

class ThreadChecker {
 public:
#ifndef NDEBUG
  void Check() const {
    if (owner_ == std::thread::id()) owner_ = std::this_thread::get_id();
    assert(owner_ == std::this_thread::get_id() && "loop-owned state touched from another thread");
  }
  void Detach() { owner_ = std::thread::id(); }

 private:
  mutable std::thread::id owner_;
#else
  void Check() const {}
  void Detach() {}
#endif
};

}  // namespace onlined::base
