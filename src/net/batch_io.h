#pragma once
// BatchIo: many non-blocking socket reads or writes in one system call, on
// io_uring.
//
// Why: a heartbeat is a tiny read and a tiny write, and on this kind of
// machine the system call around each costs about as much as the kernel's
// work inside it. The Poller already learns which sockets are ready in one
// epoll_wait; with BatchIo it then reads all of them in one io_uring_enter,
// and the loop's flush writes all its dirty connections in another. Every
// operation is non-blocking (MSG_DONTWAIT): it finishes inside the call that
// submits it, with the bytes moved or -EAGAIN, so Run() never waits on a
// socket and no operation outlives it (nothing to cancel, no buffer to keep).
//
// Loop-thread only: created on the thread that uses it (io_uring's
// single-issuer mode). Create() returns null where the kernel has no
// io_uring or forbids it (a seccomp profile, io_uring_disabled): the caller
// then makes one system call per operation, as without it.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/log_limit.h"
#include "base/metrics.h"

namespace onlined::net {

class BatchIo {
 public:
  // What Run() leaves in a result slot whose operation did not run (do it
  // yourself), and in one whose operation may or may not have run when the
  // ring failed under it (its bytes are lost or sent: end the connection).
  static constexpr int32_t kNotRun = INT32_MIN;
  static constexpr int32_t kMayHaveRun = INT32_MIN + 1;

  // Null where the kernel has no io_uring, forbids it, or lacks its recv or
  // sendmsg operation (before 5.6).
  static std::unique_ptr<BatchIo> Create(unsigned entries);
  ~BatchIo();
  BatchIo(const BatchIo&) = delete;
  BatchIo& operator=(const BatchIo&) = delete;

  // At most this many operations between two Run()s.
  unsigned capacity() const { return capacity_; }
  // Queue one operation; `slot` (< capacity()) names its result in Run().
  // `buf` and `msg` (with what it points to) must live until Run() returns.
  // False if it cannot be queued (full, broken, no ring just now): do it
  // yourself.
  bool Recv(int fd, void* buf, size_t len, uint32_t slot);
  bool SendMsg(int fd, const msghdr* msg, uint32_t slot);
  // Submits what is queued and collects every result into res[slot] (bytes,
  // or -errno). res must hold capacity() slots; slots of no operation are
  // left as they were. False if the ring failed: an operation that surely
  // did not run has kNotRun, one that may have run kMayHaveRun.
  //
  // After a failure that may pass (the kernel short of memory: EAGAIN,
  // ENOMEM, EBUSY; or only some operations taken) the ring is dropped with
  // what the failure left in it, and the next batch makes a new one (a
  // batch whose new ring cannot be made yet is left to the caller, and
  // counts as a failure). After kMaxFailuresInARow failures in a row, or
  // any other failure, io_uring is given up: broken() is true and the
  // caller makes its own calls.
  bool Run(int32_t* res);
  bool broken() const { return broken_; }
  // Rings made again after a failure, in all.
  unsigned renewals() const { return renewals_; }
  static constexpr unsigned kMaxFailuresInARow = 8;

  // Where a loop counts its rings made again, and io_uring given up (a
  // gauge: 1 once broken()), for operators; no metrics without it.
  struct Counters {
    base::Metrics* metrics = nullptr;
    size_t slot = 0;  // the loop's
    base::Metrics::Id renewals = 0;
    base::Metrics::Id given_up = 0;
    void Add(base::Metrics::Id id) const {
      if (metrics != nullptr) metrics->Add(slot, id);
    }
  };
  void set_counters(const Counters& c) { counters_ = c; }

  // Tests: the next `count` Run()s on this thread fail as if io_uring_enter
  // had returned -err, without entering; the next `count` new rings (after
  // a failure) as if io_uring_setup had.
  static void FailEntersForTest(unsigned count, int err);
  static void FailNewRingsForTest(unsigned count, int err);

 private:
  struct Ring;
  explicit BatchIo(std::unique_ptr<Ring> ring, unsigned capacity);
  // 0 and `out` set, or -errno (-EOPNOTSUPP: no recv or sendmsg operation).
  static int MakeRing(unsigned entries, std::unique_ptr<Ring>& out);
  // The ring to queue on, made again if a failure dropped it (one try per
  // batch); false if there is none.
  bool HaveRing();
  // A failure that may pass (`why`, for the log): the ring is dropped, and
  // after kMaxFailuresInARow in a row io_uring is given up.
  void Failed(const std::string& why);
  // io_uring given up for good: broken() from now on.
  void GiveUp();
  std::unique_ptr<Ring> ring_;
  unsigned capacity_;
  std::vector<uint32_t> slots_;  // of the operations queued
  unsigned queued_ = 0;
  unsigned failures_in_a_row_ = 0;
  unsigned renewals_ = 0;
  bool may_remake_ = true;  // no new ring tried since the last Run()
  // A few lines per 10 s for this loop's failures, the rest counted.
  base::LogLimit failure_log_{4, 10'000};
  Counters counters_;
  bool broken_ = false;
};

}  // namespace onlined::net
