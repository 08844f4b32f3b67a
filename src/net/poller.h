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
// With io_uring (net/batch_io.h) the reads of a wakeup's readable
// connections are one system call, made before the handlers run: each
// handler gets what was read for it (a small first piece, kSlice bytes at
// most; it reads the rest itself), and the loop's flush writes its dirty
// connections in one more (batch_io()).
//
// Loop-thread only. A handler may be destroyed while the batch that holds its
// event is running: handlers that end hand their last reference to Defer(),
// and it is dropped after the batch.
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstdint>
#include <memory>
#include <vector>

#include "net/batch_io.h"

struct epoll_event;

namespace onlined::net {

class Poller {
 public:
  class Handler {
   public:
    // `got`: what the batched read of this wakeup returned into `data`
    // (bytes, 0 at end of stream, -errno), kNotRead: none was made, or
    // BatchIo::kMayHaveRun: the ring failed with the read perhaps made.
    virtual void OnEvents(uint32_t events, char* data, int32_t got) = 0;
    // The socket to read before OnEvents, or -1: none (closed, closing).
    virtual int batch_read_fd() const = 0;

   protected:
    ~Handler() = default;
  };

  static constexpr int32_t kNotRead = BatchIo::kNotRun;
  static constexpr int kBatch = 256;
  static constexpr size_t kSlice = 128;  // a batched read's size: a heartbeat, an ack
  static constexpr size_t kSlicesBytes = kBatch * kSlice;

  // `batch`: read and write through io_uring where the kernel allows it,
  // into `slices` (kSlicesBytes, the loop's; nothing else uses them while a
  // wakeup's handlers run). `counters`: where the ring's renewals, and
  // io_uring given up (or refused by the kernel), are counted.
  Poller(boost::asio::io_context& io, bool batch, char* slices, BatchIo::Counters counters = {});
  ~Poller();
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  // Watches fd for input, output and peer shutdown, edge-triggered. The fd
  // leaves the set when it is closed (it must not be dup'ed).
  bool Add(int fd, Handler* h);
  // Keeps `p` alive until the running batch (if any) has ended.
  void Defer(std::shared_ptr<void> p);
  // The loop's batched I/O, created on first use (on the loop's thread);
  // null without io_uring, or when `batch` was false.
  BatchIo* batch_io();

 private:
  void Arm();
  void Drain();
  void ReadBatch(epoll_event* evs, int n);

  boost::asio::io_context& io_;
  int epfd_;
  boost::asio::posix::stream_descriptor watch_;
  std::vector<std::shared_ptr<void>> graveyard_;
  bool sweep_posted_ = false;
  bool batch_;
  bool batch_tried_ = false;
  std::unique_ptr<BatchIo> batch_io_;
  BatchIo::Counters counters_;
  char* slices_;  // kBatch x kSlice: the batched reads' bytes
  std::array<int32_t, kBatch> got_{};
};

}  // namespace onlined::net
