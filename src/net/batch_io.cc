#include "net/batch_io.h"

#include <liburing.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/clock.h"

namespace onlined::net {

struct BatchIo::Ring {
  io_uring ring{};
  // Set once the kernel made it: exiting a ring that failed to be made
  // would close descriptor 0 (its zeroed ring_fd).
  bool live = false;
  ~Ring() {
    if (live) io_uring_queue_exit(&ring);
  }
};

namespace {
// FailEntersForTest, FailNewRingsForTest: what is left to fail, and with what.
thread_local unsigned t_fail_enters = 0;
thread_local int t_fail_enter_errno = 0;
thread_local unsigned t_fail_rings = 0;
thread_local int t_fail_ring_errno = 0;
}  // namespace

void BatchIo::FailEntersForTest(unsigned count, int err) {
  t_fail_enters = count;
  t_fail_enter_errno = err;
}

void BatchIo::FailNewRingsForTest(unsigned count, int err) {
  t_fail_rings = count;
  t_fail_ring_errno = err;
}

int BatchIo::MakeRing(unsigned entries, std::unique_ptr<Ring>& out) {
  auto r = std::make_unique<Ring>();
  io_uring_params p{};
  // One thread submits and reaps (the loop's); completions of what went to
  // the kernel's poll (nothing here: every operation is non-blocking) would
  // run when it next enters, not by interrupting it.
  // A request the kernel refuses to start (a field it does not know) still
  // lets the ones after it be submitted, each with its own completion
  // (SUBMIT_ALL).
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL;
  int rc = io_uring_queue_init_params(entries, &r->ring, &p);
  // An older kernel refuses flags it does not know: SUBMIT_ALL is 5.18, the
  // other two 6.0 and 6.1.
  for (unsigned flags : {unsigned{IORING_SETUP_SUBMIT_ALL}, 0U}) {
    if (rc != -EINVAL) break;
    p = io_uring_params{};
    p.flags = flags;
    rc = io_uring_queue_init_params(entries, &r->ring, &p);
  }
  if (rc < 0) return rc;
  r->live = true;
  // The ring exists from 5.1, IORING_OP_RECV from 5.6: on a kernel between,
  // every batched read would fail with EINVAL.
  io_uring_probe* probe = io_uring_get_probe_ring(&r->ring);
  const bool ops = probe != nullptr && io_uring_opcode_supported(probe, IORING_OP_RECV) != 0 &&
                   io_uring_opcode_supported(probe, IORING_OP_SENDMSG) != 0;
  if (probe != nullptr) io_uring_free_probe(probe);
  if (!ops) return -EOPNOTSUPP;
  out = std::move(r);
  return 0;
}

std::unique_ptr<BatchIo> BatchIo::Create(unsigned entries) {
  std::unique_ptr<Ring> r;
  const int rc = MakeRing(entries, r);
  if (rc == -EOPNOTSUPP) {
    spdlog::info("net: io_uring without recv/sendmsg: one system call per socket read and write");
    return nullptr;
  }
  if (rc < 0) {
    spdlog::info("net: io_uring unavailable ({}): one system call per socket read and write",
                 std::strerror(-rc));
    return nullptr;
  }
  return std::unique_ptr<BatchIo>(new BatchIo(std::move(r), entries));
}

bool BatchIo::HaveRing() {
  if (broken_) return false;
  if (ring_ != nullptr) return true;
  if (!may_remake_) return false;  // tried for this batch: the caller does it
  may_remake_ = false;
  int rc;
  if (t_fail_rings > 0) {
    --t_fail_rings;
    rc = -t_fail_ring_errno;
  } else {
    rc = MakeRing(capacity_, ring_);
  }
  if (rc == 0) {
    ++renewals_;
    counters_.Add(counters_.renewals);
    return true;
  }
  Failed(std::string("a new io_uring: ") + std::strerror(-rc));
  return false;
}

void BatchIo::Failed(const std::string& why) {
  // What the ring still holds (entries the kernel did not take) is never
  // submitted. Nothing of it is in flight: every operation it took was
  // reaped.
  ring_.reset();
  if (++failures_in_a_row_ >= kMaxFailuresInARow) {
    spdlog::error(
        "net: io_uring failed {} times in a row, the last: {}; back to one system call "
        "per operation",
        failures_in_a_row_, why);
    GiveUp();
    return;
  }
  uint64_t dropped = 0;
  if (failure_log_.Allow(base::SteadyMs(), &dropped)) {
    if (dropped > 0) {
      spdlog::warn("net: {}; a new ring at the next batch ({} in a row; {} more not logged)", why,
                   failures_in_a_row_, dropped);
    } else {
      spdlog::warn("net: {}; a new ring at the next batch ({} in a row)", why, failures_in_a_row_);
    }
  }
}

void BatchIo::GiveUp() {
  if (broken_) return;
  broken_ = true;
  counters_.Add(counters_.given_up);
}

BatchIo::BatchIo(std::unique_ptr<Ring> ring, unsigned capacity)
    : ring_(std::move(ring)), capacity_(capacity), slots_(capacity) {}

BatchIo::~BatchIo() = default;

bool BatchIo::Recv(int fd, void* buf, size_t len, uint32_t slot) {
  if (slot >= capacity_ || queued_ >= capacity_ || !HaveRing()) return false;
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);
  if (sqe == nullptr) return false;
  io_uring_prep_recv(sqe, fd, buf, len, MSG_DONTWAIT);
  io_uring_sqe_set_data64(sqe, slot);
  slots_[queued_++] = slot;
  return true;
}

bool BatchIo::SendMsg(int fd, const msghdr* msg, uint32_t slot) {
  if (slot >= capacity_ || queued_ >= capacity_ || !HaveRing()) return false;
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);
  if (sqe == nullptr) return false;
  io_uring_prep_sendmsg(sqe, fd, msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, slot);
  slots_[queued_++] = slot;
  return true;
}

bool BatchIo::Run(int32_t* res) {
  may_remake_ = true;
  if (queued_ == 0) return true;
  io_uring& ring = ring_->ring;
  unsigned want = queued_, got = 0;
  queued_ = 0;
  for (unsigned i = 0; i < want; ++i) res[slots_[i]] = kNotRun;
  int rc;
  if (t_fail_enters > 0) {
    --t_fail_enters;
    rc = -t_fail_enter_errno;
  } else {
    do {
      rc = io_uring_submit_and_wait(&ring, want);
    } while (rc == -EINTR);
  }
  if (rc < 0) {
    // Nothing was submitted: every operation keeps kNotRun.
    const std::string why = std::string("io_uring_enter: ") + std::strerror(-rc);
    if (rc == -EAGAIN || rc == -ENOMEM || rc == -EBUSY) {
      Failed(why);
    } else {
      spdlog::error("net: {}; back to one system call per operation", why);
      GiveUp();
    }
    return false;
  }
  const auto submitted = static_cast<unsigned>(rc);
  const bool partial = submitted < want;
  std::string partial_why;
  if (partial) {
    // The kernel took only the first `submitted` (it ran out of memory, or
    // one failed to start without SUBMIT_ALL) and waited for none. Those
    // complete; the rest never will, so waiting for `want` would hang the
    // loop. They keep kNotRun, and leave with the ring (Failed, below).
    partial_why =
        "io_uring_enter took " + std::to_string(submitted) + " of " + std::to_string(want);
    want = submitted;
  }
  while (got < want) {
    io_uring_cqe* cqe = nullptr;
    do {
      rc = io_uring_wait_cqe(&ring, &cqe);
    } while (rc == -EINTR);
    if (rc < 0) {
      // Cannot happen with non-blocking operations submitted; if it does, the
      // operations not reaped may or may not have run: their connections
      // close rather than risk a write made twice or bytes read and lost.
      // The ring, which may still hold them, is never entered again.
      spdlog::error("net: io_uring wait: {}; back to one system call per operation",
                    std::strerror(-rc));
      for (unsigned i = 0; i < want; ++i) {
        if (res[slots_[i]] == kNotRun) res[slots_[i]] = kMayHaveRun;
      }
      GiveUp();
      return false;
    }
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      uint64_t slot = io_uring_cqe_get_data64(cqe);
      if (slot < capacity_) res[slot] = cqe->res;
      ++seen;
    }
    io_uring_cq_advance(&ring, seen);
    got += seen;
  }
  if (partial) {
    Failed(partial_why);
    return false;
  }
  failures_in_a_row_ = 0;
  return true;
}

}  // namespace onlined::net
