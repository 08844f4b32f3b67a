/* floor: the least a server can do per heartbeat, as the benchmark's floor.
 *
 * One thread, epoll, edge-triggered. Answers the WebSocket upgrade with a 101
 * (no key check), then for every client frame reads it and writes one reply:
 * {"type":"welcome"} to the first (the hello), {"type":"pong"} to the rest.
 * No JSON, no presence, no state beyond a partial frame. Not a server to use:
 * a measure of read+reply cost on this machine.
 *
 *   floor PORT     prints "onlined: listening on http://127.0.0.1:PORT" (same line as onlined)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "floor_common.h"

enum { kMaxFd = 65536, kBuf = 4096 };

static struct conn* conns[kMaxFd];

static void drop(int ep, int fd) {
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  free(conns[fd]);
  conns[fd] = NULL;
}

static int write_reply(int fd, const unsigned char* r, size_t n) {
  return write(fd, r, n) == (ssize_t)n ? 0 : -1;
}

int main(int argc, char** argv) {
  int port = argc > 1 ? atoi(argv[1]) : 0;
  floor_init_answers();
  int ls = floor_listen(port, SOCK_NONBLOCK, "floor"), one = 1;
  if (ls < 0) return 1;
  floor_ready(ls);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  struct epoll_event evs[256];
  unsigned char scratch[kBuf];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; ++i) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        for (;;) {
          int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
          if (c < 0) break;
          if (c >= kMaxFd) {
            close(c);
            continue;
          }
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conns[c] = calloc(1, sizeof(struct conn));
          struct epoll_event ce = {.events = EPOLLIN | EPOLLET, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
        }
        continue;
      }
      struct conn* c = conns[fd];
      if (!c) continue;
      for (;;) {
        ssize_t r = read(fd, scratch, sizeof scratch);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (r <= 0) {
          drop(ep, fd);
          break;
        }
        if (floor_on_data(fd, c, scratch, (size_t)r, write_reply) < 0) {
          drop(ep, fd);
          break;
        }
      }
    }
  }
}
