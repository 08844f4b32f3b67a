/* floor_uring: the floor (floor.c) on io_uring instead of epoll.
 *
 * Same work per frame as floor.c: answers the upgrade with a 101 (no key
 * check), then one reply per client frame. The difference is how it talks to
 * the kernel: a multishot accept, a multishot receive per connection into
 * buffers the kernel picks from a provided-buffer ring, and every reply queued
 * as a send entry; one io_uring_enter submits a batch's sends and waits for
 * the next completions, so a heartbeat costs no system call of its own.
 * A measure of what the kernel interface costs, beside the epoll floor.
 *
 *   floor_uring PORT   prints "onlined: listening on http://127.0.0.1:PORT"
 */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "floor_common.h"

enum { kMaxFd = 65536, kBufs = 4096, kBufSize = 2048, kGroup = 0 };
enum { kAccept = 1, kRecv = 2, kSend = 3 };

static struct conn* conns[kMaxFd];
static struct io_uring ring;
static struct io_uring_buf_ring* br;
static unsigned char* bufs;

static unsigned long long tag(int kind, int fd) {
  return ((unsigned long long)kind << 32) | (unsigned)fd;
}

static struct io_uring_sqe* sqe(void) {
  struct io_uring_sqe* s = io_uring_get_sqe(&ring);
  while (!s) {
    io_uring_submit(&ring);
    s = io_uring_get_sqe(&ring);
  }
  return s;
}

static void send_const(int fd, const void* p, size_t n) {
  struct io_uring_sqe* s = sqe();
  io_uring_prep_send(s, fd, p, n, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, tag(kSend, fd));
}

static void arm_recv(int fd) {
  struct io_uring_sqe* s = sqe();
  io_uring_prep_recv_multishot(s, fd, NULL, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = kGroup;
  io_uring_sqe_set_data64(s, tag(kRecv, fd));
}

static void arm_accept(int ls) {
  struct io_uring_sqe* s = sqe();
  io_uring_prep_multishot_accept(s, ls, NULL, NULL, 0);
  io_uring_sqe_set_data64(s, tag(kAccept, ls));
}

static void drop(int fd) {
  if (!conns[fd]) return;
  struct io_uring_sqe* s = sqe();
  io_uring_prep_cancel64(s, tag(kRecv, fd), 0);
  io_uring_sqe_set_data64(s, 0);
  close(fd);
  free(conns[fd]);
  conns[fd] = NULL;
}

static int queue_reply(int fd, const unsigned char* r, size_t n) {
  send_const(fd, r, n);
  return 0;
}

int main(int argc, char** argv) {
  int port = argc > 1 ? atoi(argv[1]) : 0;
  floor_init_answers();
  int ls = floor_listen(port, 0, "floor_uring"), one = 1;
  if (ls < 0) return 1;

  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  p.cq_entries = 65536;
  int rc = io_uring_queue_init_params(4096, &ring, &p);
  if (rc < 0) {
    fprintf(stderr, "floor_uring: io_uring_queue_init: %s\n", strerror(-rc));
    return 1;
  }
  if (posix_memalign((void**)&br, 4096, kBufs * sizeof(struct io_uring_buf)) ||
      !(bufs = malloc((size_t)kBufs * kBufSize))) {
    fprintf(stderr, "floor_uring: out of memory\n");
    return 1;
  }
  io_uring_buf_ring_init(br);
  struct io_uring_buf_reg reg = {
      .ring_addr = (unsigned long)br, .ring_entries = kBufs, .bgid = kGroup};
  if ((rc = io_uring_register_buf_ring(&ring, &reg, 0)) < 0) {
    fprintf(stderr, "floor_uring: register_buf_ring: %s\n", strerror(-rc));
    return 1;
  }
  for (int i = 0; i < kBufs; ++i)
    io_uring_buf_ring_add(br, bufs + (size_t)i * kBufSize, kBufSize, (unsigned short)i,
                          io_uring_buf_ring_mask(kBufs), i);
  io_uring_buf_ring_advance(br, kBufs);

  floor_ready(ls);
  arm_accept(ls);
  for (;;) {
    io_uring_submit_and_wait(&ring, 1);
    struct io_uring_cqe* cqe;
    unsigned head, seen = 0, returned = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      unsigned long long d = io_uring_cqe_get_data64(cqe);
      int kind = (int)(d >> 32), fd = (int)(d & 0xffffffffu);
      int res = cqe->res;
      if (kind == kAccept) {
        if (res >= 0) {
          if (res >= kMaxFd) {
            close(res);
          } else {
            setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            conns[res] = calloc(1, sizeof(struct conn));
            arm_recv(res);
          }
        }
        if (!(cqe->flags & IORING_CQE_F_MORE)) arm_accept(ls);
      } else if (kind == kRecv) {
        struct conn* c = conns[fd];
        if (cqe->flags & IORING_CQE_F_BUFFER) {
          unsigned short bid = (unsigned short)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
          if (c && res > 0 &&
              floor_on_data(fd, c, bufs + (size_t)bid * kBufSize, (size_t)res, queue_reply) < 0)
            drop(fd);
          io_uring_buf_ring_add(br, bufs + (size_t)bid * kBufSize, kBufSize, bid,
                                io_uring_buf_ring_mask(kBufs), (int)returned++);
        }
        if (c && conns[fd] == c) {
          if (res == 0 || (res < 0 && res != -ENOBUFS))
            drop(fd);
          else if (!(cqe->flags & IORING_CQE_F_MORE))
            arm_recv(fd);
        }
      } else if (kind == kSend) {
        if (res < 0 && conns[fd]) drop(fd);
      }
    }
    if (returned) io_uring_buf_ring_advance(br, (int)returned);
    io_uring_cq_advance(&ring, seen);
  }
}
