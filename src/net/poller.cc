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

Poller::Poller(boost::asio::io_context& io) : io_(io), epfd_(MakeEpoll()), watch_(io, epfd_) {
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
  for (int i = 0; i < n; ++i) static_cast<Handler*>(evs[i].data.ptr)->OnEvents(evs[i].events);
  if (n == kBatch) {
    // More may be ready: come back after other work, without a syscall.
    boost::asio::post(io_, [this] { Drain(); });
    return;
  }
  Arm();
}

}  // namespace onlined::net
