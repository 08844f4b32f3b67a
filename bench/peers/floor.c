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
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr*)&a, sizeof a) || listen(ls, 4096)) {
    perror("floor: bind");
    return 1;
  }
  socklen_t al = sizeof a;
  getsockname(ls, (struct sockaddr*)&a, &al);
  printf("onlined: listening on http://127.0.0.1:%d\n", ntohs(a.sin_port));
  fflush(stdout);
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
        if (!c->upgraded) {
          /* The request ends with CRLFCRLF; anything after it is frames. */
          unsigned char* end = memmem(scratch, (size_t)r, "\r\n\r\n", 4);
          if (!end) continue; /* a long request: wait for its end (no state kept) */
          c->upgraded = 1;
          if (write(fd, kUpgrade, sizeof kUpgrade - 1) < 0) {
            drop(ep, fd);
            break;
          }
          size_t rest = (size_t)r - (size_t)(end + 4 - scratch);
          if (rest > sizeof c->buf) {
            drop(ep, fd);
            break;
          }
          memcpy(c->buf, end + 4, rest);
          c->have = (unsigned short)rest;
        } else {
          if (c->have + (size_t)r > sizeof c->buf) {
            drop(ep, fd);
            break;
          }
          memcpy(c->buf + c->have, scratch, (size_t)r);
          c->have += (unsigned short)r;
        }
        if (floor_frames(fd, c, write_reply) < 0) {
          drop(ep, fd);
          break;
        }
      }
    }
  }
}
