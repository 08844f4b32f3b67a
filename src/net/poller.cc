#include "net/poller.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <system_error>

namespace onlined::net {

namespace {
int MakeEpoll() {
  int fd = epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  return fd;
}
}  // namespace

Poller::Poller(boost::asio::io_context& io, bool batch, char* slices, BatchIo::Counters counters)
    : io_(io),
      epfd_(MakeEpoll()),
      watch_(io, epfd_),
      batch_(batch),
      counters_(counters),
      slices_(slices) {
  Arm();
}

Poller::~Poller() {
  boost::system::error_code ec;
  watch_.close(ec);  // closes epfd_
}

bool Poller::Add(int fd, Handler* h) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = h;
  return epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void Poller::Defer(std::shared_ptr<void> p) {
  graveyard_.push_back(std::move(p));
  if (sweep_posted_) return;
  sweep_posted_ = true;
  // Runs after the current handler (and so after any batch) returns.
  boost::asio::post(io_, [this] {
    sweep_posted_ = false;
    graveyard_.clear();
  });
}

BatchIo* Poller::batch_io() {
  if (!batch_tried_) {
    batch_tried_ = true;
    if (batch_) {
      batch_io_ = BatchIo::Create(kBatch);
      if (batch_io_ != nullptr) {
        batch_io_->set_counters(counters_);
      } else {
        counters_.Add(counters_.given_up);  // the kernel refused it
      }
    }
  }
  return batch_io_ && !batch_io_->broken() ? batch_io_.get() : nullptr;
}

void Poller::Arm() {
  watch_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                    [this](boost::system::error_code ec) {
                      if (!ec) Drain();
                    });
}

void Poller::Drain() {
  epoll_event evs[kBatch];
  int n;
  do {
    n = epoll_wait(epfd_, evs, kBatch, 0);
  } while (n < 0 && errno == EINTR);
  // One ready socket: a read is cheaper than a ring entry and its enter.
  if (n > 1 && batch_io() != nullptr) {
    ReadBatch(evs, n);
  } else {
    for (int i = 0; i < n; ++i) {
      static_cast<Handler*>(evs[i].data.ptr)->OnEvents(evs[i].events, nullptr, kNotRead);
    }
  }
  if (n == kBatch) {
    // More may be ready: come back after other work, without a syscall.
    boost::asio::post(io_, [this] { Drain(); });
    return;
  }
  Arm();
}

void Poller::ReadBatch(epoll_event* evs, int n) {
  constexpr uint32_t kIn = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
  BatchIo* bio = batch_io_.get();
  for (int i = 0; i < n; ++i) {
    auto slot = static_cast<size_t>(i);
    got_[slot] = kNotRead;
    if ((evs[i].events & kIn) == 0) continue;
    int fd = static_cast<Handler*>(evs[i].data.ptr)->batch_read_fd();
    if (fd >= 0) bio->Recv(fd, &slices_[slot * kSlice], kSlice, static_cast<uint32_t>(slot));
  }
  // A failed ring leaves kNotRead (BatchIo::kNotRun: the handler reads) or
  // BatchIo::kMayHaveRun (the handler ends its connection).
  bio->Run(got_.data());
  for (int i = 0; i < n; ++i) {
    auto slot = static_cast<size_t>(i);
    static_cast<Handler*>(evs[i].data.ptr)
        ->OnEvents(evs[i].events, &slices_[slot * kSlice], got_[slot]);
  }
}

}  // namespace onlined::net
