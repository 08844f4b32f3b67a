#include "net/batch_io.h"

#include <liburing.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

namespace onlined::net {

struct BatchIo::Ring {
  io_uring ring{};
  ~Ring() { io_uring_queue_exit(&ring); }
};

namespace {
// FailEntersForTest: Run()s left to fail, and with what.
thread_local unsigned t_fail_enters = 0;
thread_local int t_fail_errno = 0;
}  // namespace

void BatchIo::FailEntersForTest(unsigned count, int err) {
  t_fail_enters = count;
  t_fail_errno = err;
}

std::unique_ptr<BatchIo::Ring> BatchIo::MakeRing(unsigned entries, bool quiet) {
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
  if (rc < 0) {
    if (!quiet) {
      spdlog::info("net: io_uring unavailable ({}): one system call per socket read and write",
                   std::strerror(-rc));
    }
    return nullptr;
  }
  // The ring exists from 5.1, IORING_OP_RECV from 5.6: on a kernel between,
  // every batched read would fail with EINVAL.
  io_uring_probe* probe = io_uring_get_probe_ring(&r->ring);
  const bool ops = probe != nullptr && io_uring_opcode_supported(probe, IORING_OP_RECV) != 0 &&
                   io_uring_opcode_supported(probe, IORING_OP_SENDMSG) != 0;
  if (probe != nullptr) io_uring_free_probe(probe);
  if (!ops) {
    if (!quiet) {
      spdlog::info("net: io_uring without recv/sendmsg: one system call per socket read and write");
    }
    return nullptr;
  }
  return r;
}

std::unique_ptr<BatchIo> BatchIo::Create(unsigned entries) {
  auto r = MakeRing(entries, false);
  if (r == nullptr) return nullptr;
  return std::unique_ptr<BatchIo>(new BatchIo(std::move(r), entries));
}

void BatchIo::Renew(const std::string& why) {
  if (++failures_in_a_row_ >= kMaxFailuresInARow) {
    spdlog::error("net: {}, {} times in a row; back to one system call per operation", why,
                  failures_in_a_row_);
    broken_ = true;
    return;
  }
  // The old ring goes first: what it still holds (entries the kernel did not
  // take) is never submitted. Nothing of it is in flight: every operation
  // it took was reaped.
  ring_.reset();
  ring_ = MakeRing(capacity_, true);
  if (ring_ == nullptr) {
    spdlog::error(
        "net: {}, and a new ring could not be made; back to one system call per operation", why);
    broken_ = true;
    return;
  }
  ++renewals_;
  // A kernel short of memory may fail every loop's batches for a while: a
  // few lines per 10 s, the rest counted.
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count();
  uint64_t dropped = 0;
  if (renew_log_.Allow(now_ms, &dropped)) {
    spdlog::warn("net: {}; a new ring for the next batch ({} in a row, {} more not logged)", why,
                 failures_in_a_row_, dropped);
  }
}

BatchIo::BatchIo(std::unique_ptr<Ring> ring, unsigned capacity)
    : ring_(std::move(ring)), capacity_(capacity), slots_(capacity) {}

BatchIo::~BatchIo() = default;

bool BatchIo::Recv(int fd, void* buf, size_t len, uint32_t slot) {
  if (broken_ || slot >= capacity_ || queued_ >= capacity_) return false;
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);
  if (sqe == nullptr) return false;
  io_uring_prep_recv(sqe, fd, buf, len, MSG_DONTWAIT);
  io_uring_sqe_set_data64(sqe, slot);
  slots_[queued_++] = slot;
  return true;
}

bool BatchIo::SendMsg(int fd, const msghdr* msg, uint32_t slot) {
  if (broken_ || slot >= capacity_ || queued_ >= capacity_) return false;
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);
  if (sqe == nullptr) return false;
  io_uring_prep_sendmsg(sqe, fd, msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, slot);
  slots_[queued_++] = slot;
  return true;
}

bool BatchIo::Run(int32_t* res) {
  if (queued_ == 0) return true;
  io_uring& ring = ring_->ring;
  unsigned want = queued_, got = 0;
  queued_ = 0;
  for (unsigned i = 0; i < want; ++i) res[slots_[i]] = kNotRun;
  int rc;
  if (t_fail_enters > 0) {
    --t_fail_enters;
    rc = -t_fail_errno;
  } else {
    do {
      rc = io_uring_submit_and_wait(&ring, want);
    } while (rc == -EINTR);
  }
  if (rc < 0) {
    // Nothing was submitted: every operation keeps kNotRun.
    const std::string why = std::string("io_uring_enter: ") + std::strerror(-rc);
    if (rc == -EAGAIN || rc == -ENOMEM || rc == -EBUSY) {
      Renew(why);
    } else {
      spdlog::error("net: {}; back to one system call per operation", why);
      broken_ = true;
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
    // loop. They keep kNotRun, and leave with the ring (Renew, below).
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
      broken_ = true;
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
    Renew(partial_why);
    return false;
  }
  failures_in_a_row_ = 0;
  return true;
}

}  // namespace onlined::net
