#pragma once
// Poller: one epoll set per loop for upgraded WebSocket connections, nested
// in the loop's io_context (its descriptor is watched by Asio).
//
// Why: Asio's async_wait re-arms the descriptor with epoll_ctl on every wait,
// and every operation goes through the reactor's queues and locks. A
// connection that is mostly idle and sends a tiny heartbeat pays that per
// frame. Here a connection is registered once (edge-triggered, in and out);
// a wakeup drains up to kBatch ready connections with one epoll_wait and
// calls them directly, so a heartbeat costs one read and one write.
//
// Loop-thread only. A handler may be destroyed while the batch that holds its
// event is running: handlers that end hand their last reference to Defer(),
// and it is dropped after the batch.
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstdint>
#include <memory>
#include <vector>

namespace onlined::net {

class Poller {
 public:
  class Handler {
   public:
    virtual void OnEvents(uint32_t events) = 0;

   protected:
    ~Handler() = default;
  };

  explicit Poller(boost::asio::io_context& io);
  ~Poller();
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  // Watches fd for input, output and peer shutdown, edge-triggered. The fd
  // leaves the set when it is closed (it must not be dup'ed).
  bool Add(int fd, Handler* h);
  // Keeps `p` alive until the running batch (if any) has ended.
  void Defer(std::shared_ptr<void> p);

 private:
  static constexpr int kBatch = 256;
  void Arm();
  void Drain();

  boost::asio::io_context& io_;
  int epfd_;
  boost::asio::posix::stream_descriptor watch_;
  std::vector<std::shared_ptr<void>> graveyard_;
  bool sweep_posted_ = false;
};

}  // namespace onlined::net
