#include "net/batch_io.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <string>
#include <vector>

namespace onlined::net {
namespace {

// A connected pair of non-blocking stream sockets, closed at the end.
struct Pair {
  int a = -1, b = -1;
  Pair() {
    int fds[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    a = fds[0];
    b = fds[1];
  }
  ~Pair() {
    if (a >= 0) close(a);
    if (b >= 0) close(b);
  }
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;
};

class BatchIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ClearInjected();
    bio_ = BatchIo::Create(8);
    if (bio_ == nullptr)
      GTEST_SKIP() << "no io_uring here (the caller then makes the calls itself)";
    res_.assign(bio_->capacity(), 7);
  }
  // A test that stopped half way leaves no failure for the next one.
  void TearDown() override { ClearInjected(); }
  static void ClearInjected() {
    BatchIo::FailEntersForTest(0, 0);
    BatchIo::FailNewRingsForTest(0, 0);
  }
  std::unique_ptr<BatchIo> bio_;
  std::vector<int32_t> res_;
};

TEST_F(BatchIoTest, ReadsOfManySocketsLandInTheirOwnSlots) {
  Pair p0, p1, p2;
  ASSERT_EQ(write(p0.b, "first", 5), 5);
  ASSERT_EQ(write(p2.b, "third!", 6), 6);
  std::array<std::array<char, 16>, 3> buf{};
  ASSERT_TRUE(bio_->Recv(p0.a, buf[0].data(), buf[0].size(), 5));
  ASSERT_TRUE(bio_->Recv(p1.a, buf[1].data(), buf[1].size(), 0));
  ASSERT_TRUE(bio_->Recv(p2.a, buf[2].data(), buf[2].size(), 2));
  ASSERT_TRUE(bio_->Run(res_.data()));
  EXPECT_EQ(res_[5], 5);
  EXPECT_EQ(std::string(buf[0].data(), 5), "first");
  EXPECT_EQ(res_[0], -EAGAIN);  // nothing there: non-blocking, never parked
  EXPECT_EQ(res_[2], 6);
  EXPECT_EQ(std::string(buf[2].data(), 6), "third!");
  EXPECT_EQ(res_[1], 7);  // a slot of no operation is left as it was
}

TEST_F(BatchIoTest, AReadAfterThePeerClosedIsTheEnd) {
  Pair p;
  ASSERT_EQ(write(p.b, "x", 1), 1);
  close(p.b);
  p.b = -1;
  std::array<char, 4> buf{};
  ASSERT_TRUE(bio_->Recv(p.a, buf.data(), buf.size(), 0));
  ASSERT_TRUE(bio_->Run(res_.data()));
  EXPECT_EQ(res_[0], 1);
  ASSERT_TRUE(bio_->Recv(p.a, buf.data(), buf.size(), 0));
  ASSERT_TRUE(bio_->Run(res_.data()));
  EXPECT_EQ(res_[0], 0);
}

TEST_F(BatchIoTest, WritesGoWholeShortOrNotAtAll) {
  Pair p, full;
  // A small send buffer, then the second pair filled up.
  int small = 4096;
  ASSERT_EQ(setsockopt(full.a, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  ASSERT_EQ(setsockopt(p.a, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  std::string chunk(1024, 'f');
  while (write(full.a, chunk.data(), chunk.size()) > 0) {
  }
  ASSERT_EQ(errno, EAGAIN);

  std::string head = "ab", tail = "cd";
  std::array<iovec, 2> iov{iovec{head.data(), head.size()}, iovec{tail.data(), tail.size()}};
  msghdr small_msg{};
  small_msg.msg_iov = iov.data();
  small_msg.msg_iovlen = iov.size();
  std::string big(4 << 20, 'g');
  iovec big_iov{big.data(), big.size()};
  msghdr big_msg{};
  big_msg.msg_iov = &big_iov;
  big_msg.msg_iovlen = 1;

  ASSERT_TRUE(bio_->SendMsg(p.a, &small_msg, 0));
  ASSERT_TRUE(bio_->SendMsg(full.a, &small_msg, 1));
  ASSERT_TRUE(bio_->Run(res_.data()));
  EXPECT_EQ(res_[0], 4);
  EXPECT_EQ(res_[1], -EAGAIN);  // full: the caller waits for EPOLLOUT
  std::array<char, 8> got{};
  ASSERT_EQ(read(p.b, got.data(), got.size()), 4);
  EXPECT_EQ(std::string(got.data(), 4), "abcd");

  // More than the buffer holds: what fits goes, the count says how much.
  ASSERT_TRUE(bio_->SendMsg(p.a, &big_msg, 3));
  ASSERT_TRUE(bio_->Run(res_.data()));
  EXPECT_GT(res_[3], 0);
  EXPECT_LT(res_[3], static_cast<int32_t>(big.size()));
}

TEST_F(BatchIoTest, AWriteToAClosedPeerFailsWithoutASignal) {
  Pair p;
  close(p.b);
  p.b = -1;
  std::string bytes = "late";
  iovec iov{bytes.data(), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ASSERT_TRUE(bio_->SendMsg(p.a, &msg, 0));
  ASSERT_TRUE(bio_->Run(res_.data()));  // no SIGPIPE (MSG_NOSIGNAL): the test lives
  EXPECT_EQ(res_[0], -EPIPE);
}

TEST_F(BatchIoTest, ABadDescriptorFailsItsOwnOperationOnly) {
  Pair p;
  ASSERT_EQ(write(p.b, "ok", 2), 2);
  const int closed_fd = dup(p.a);
  close(closed_fd);
  std::array<char, 4> a{}, b{};
  ASSERT_TRUE(bio_->Recv(closed_fd, a.data(), a.size(), 0));
  ASSERT_TRUE(bio_->Recv(p.a, b.data(), b.size(), 1));
  const bool whole = bio_->Run(res_.data());
  EXPECT_EQ(res_[0], -EBADF);
  if (!whole) {
    // A kernel before 5.18 checks the descriptor when the request starts,
    // and stops taking the batch there: the operation it did not take is
    // left to the caller, and the ring that still holds it is made again.
    EXPECT_EQ(res_[1], BatchIo::kNotRun);
    EXPECT_FALSE(bio_->broken());
    // The read it did not take is not made later, by the next ring.
    ASSERT_TRUE(bio_->Recv(p.b, a.data(), a.size(), 2));
    EXPECT_TRUE(bio_->Run(res_.data()));
    EXPECT_EQ(bio_->renewals(), 1U);
    EXPECT_EQ(read(p.a, b.data(), b.size()), 2);
    return;
  }
  EXPECT_EQ(res_[1], 2);
  EXPECT_FALSE(bio_->broken());
}

TEST_F(BatchIoTest, QueuesNoMoreThanItsCapacity) {
  Pair p;
  std::array<char, 1> buf{};
  EXPECT_FALSE(bio_->Recv(p.a, buf.data(), buf.size(), bio_->capacity()));  // no such slot
  for (uint32_t i = 0; i < bio_->capacity(); ++i) {
    ASSERT_TRUE(bio_->Recv(p.a, buf.data(), buf.size(), i));
  }
  EXPECT_FALSE(bio_->Recv(p.a, buf.data(), buf.size(), 0));  // full: do it yourself
  ASSERT_TRUE(bio_->Run(res_.data()));
  for (int32_t r : res_) EXPECT_EQ(r, -EAGAIN);
  EXPECT_TRUE(bio_->Run(res_.data()));  // nothing queued
}

// The kernel short of memory for a moment (io_uring_enter fails with
// EAGAIN and takes nothing): that batch is left to the caller, and the next
// one runs on a new ring, not on one system call per operation for good.
TEST_F(BatchIoTest, AFailureThatMayPassMakesTheRingAgain) {
  Pair p, q;
  ASSERT_EQ(write(p.b, "left", 4), 4);
  ASSERT_EQ(write(q.b, "next", 4), 4);
  std::array<char, 8> a{}, b{};
  ASSERT_TRUE(bio_->Recv(p.a, a.data(), a.size(), 0));
  BatchIo::FailEntersForTest(1, EAGAIN);
  EXPECT_FALSE(bio_->Run(res_.data()));
  EXPECT_EQ(res_[0], BatchIo::kNotRun);
  EXPECT_FALSE(bio_->broken());

  // The read the failed batch held went with the old ring: it is not made
  // behind the caller's back by the next batch (its bytes are still there).
  ASSERT_TRUE(bio_->Recv(q.a, b.data(), b.size(), 1));
  ASSERT_TRUE(bio_->Run(res_.data()));
  EXPECT_EQ(bio_->renewals(), 1U);
  EXPECT_EQ(res_[1], 4);
  EXPECT_EQ(std::string(b.data(), 4), "next");
  EXPECT_EQ(res_[0], BatchIo::kNotRun);
  std::array<char, 8> c{};
  EXPECT_EQ(read(p.a, c.data(), c.size()), 4);
  EXPECT_EQ(std::string(c.data(), 4), "left");
}

TEST_F(BatchIoTest, FailuresThatKeepComingGiveTheRingUp) {
  Pair p;
  std::array<char, 4> buf{};
  auto run_one = [&] {
    EXPECT_TRUE(bio_->Recv(p.a, buf.data(), buf.size(), 0));
    return bio_->Run(res_.data());
  };
  // One short of the limit, then a batch that runs: the count starts over.
  BatchIo::FailEntersForTest(BatchIo::kMaxFailuresInARow - 1, ENOMEM);
  for (unsigned i = 0; i + 1 < BatchIo::kMaxFailuresInARow; ++i) EXPECT_FALSE(run_one());
  EXPECT_FALSE(bio_->broken());
  EXPECT_TRUE(run_one());
  EXPECT_EQ(res_[0], -EAGAIN);

  BatchIo::FailEntersForTest(BatchIo::kMaxFailuresInARow, EBUSY);
  for (unsigned i = 0; i < BatchIo::kMaxFailuresInARow; ++i) EXPECT_FALSE(run_one());
  EXPECT_TRUE(bio_->broken());
  EXPECT_EQ(bio_->renewals(), 2 * (BatchIo::kMaxFailuresInARow - 1));
  EXPECT_FALSE(bio_->Recv(p.a, buf.data(), buf.size(), 0));  // given up: do it yourself
}

// What an operator sees: each ring made again counted, and io_uring given up
// counted once, on the loop's slot.
TEST_F(BatchIoTest, RenewalsAndGivingUpAreCounted) {
  base::Metrics metrics(2);
  BatchIo::Counters c{&metrics, 1, metrics.Counter("t_renewals_total", "r"),
                      metrics.Gauge("t_off_loops", "o")};
  bio_->set_counters(c);
  Pair p;
  std::array<char, 4> buf{};
  auto run_one = [&] {
    EXPECT_TRUE(bio_->Recv(p.a, buf.data(), buf.size(), 0));
    return bio_->Run(res_.data());
  };
  BatchIo::FailEntersForTest(2, ENOMEM);
  EXPECT_FALSE(run_one());
  EXPECT_FALSE(run_one());
  EXPECT_TRUE(run_one());
  std::string text = metrics.Render();
  EXPECT_NE(text.find("t_renewals_total 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_off_loops 0\n"), std::string::npos) << text;

  BatchIo::FailEntersForTest(1, EINVAL);
  EXPECT_FALSE(run_one());
  EXPECT_TRUE(bio_->broken());
  text = metrics.Render();
  EXPECT_NE(text.find("t_renewals_total 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_off_loops 1\n"), std::string::npos) << text;
}

// The new ring cannot be made at once either (the memory is still short):
// that batch is left to the caller too, and the one after tries again.
TEST_F(BatchIoTest, ANewRingThatCannotBeMadeYetIsTriedAgainAtTheNextBatch) {
  Pair p;
  ASSERT_EQ(write(p.b, "late", 4), 4);
  std::array<char, 8> buf{};
  ASSERT_TRUE(bio_->Recv(p.a, buf.data(), buf.size(), 0));
  BatchIo::FailEntersForTest(1, EAGAIN);
  BatchIo::FailNewRingsForTest(1, ENOMEM);
  EXPECT_FALSE(bio_->Run(res_.data()));
  EXPECT_FALSE(bio_->Recv(p.a, buf.data(), buf.size(), 0));  // no ring: do it yourself
  EXPECT_FALSE(bio_->Recv(p.a, buf.data(), buf.size(), 1));  // one try per batch
  EXPECT_FALSE(bio_->broken());
  EXPECT_TRUE(bio_->Run(res_.data()));  // nothing queued

  ASSERT_TRUE(bio_->Recv(p.a, buf.data(), buf.size(), 2));
  ASSERT_TRUE(bio_->Run(res_.data()));
  EXPECT_EQ(res_[2], 4);
  EXPECT_EQ(std::string(buf.data(), 4), "late");
  EXPECT_EQ(bio_->renewals(), 1U);
}

// A ring the kernel refused to make is not torn down: liburing would close
// its descriptor, which is 0 in a ring never made, and 0 may be anything
// the process opened since (a socket, once stdin is closed).
TEST(BatchIoCreate, ARingNotMadeClosesNoDescriptor) {
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  const int saved = dup(0);  // -1 if the test runs with no stdin
  ASSERT_EQ(dup2(pipefd[0], 0), 0);
  EXPECT_EQ(BatchIo::Create(0), nullptr);  // no ring of 0 entries
  const bool open = fcntl(0, F_GETFD) != -1;
  if (saved >= 0) {
    ASSERT_EQ(dup2(saved, 0), 0);
    close(saved);
  } else {
    close(0);
  }
  close(pipefd[0]);
  close(pipefd[1]);
  EXPECT_TRUE(open) << "descriptor 0 was closed by a ring that was never made";
}

TEST_F(BatchIoTest, AFailureThatWillNotPassGivesTheRingUpAtOnce) {
  Pair p;
  std::array<char, 4> buf{};
  ASSERT_TRUE(bio_->Recv(p.a, buf.data(), buf.size(), 3));
  BatchIo::FailEntersForTest(1, EINVAL);
  EXPECT_FALSE(bio_->Run(res_.data()));
  EXPECT_EQ(res_[3], BatchIo::kNotRun);
  EXPECT_TRUE(bio_->broken());
  EXPECT_EQ(bio_->renewals(), 0U);
}

}  // namespace
}  // namespace onlined::net
