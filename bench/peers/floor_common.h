/* What the two floors (floor.c on epoll, floor_uring.c on io_uring) share:
 * a connection's state, the fixed answers, and the frame loop that answers
 * each complete client frame through the floor's own reply function. */
#pragma once
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

struct conn {
  unsigned char upgraded, hello_done;
  unsigned short have;
  unsigned char buf[512];
};

static const char kUpgrade[] =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: x\r\n\r\n";
static unsigned char pong[2 + 15] = {0x81, 15};
static unsigned char welcome[2 + 18] = {0x81, 18};

static void floor_init_answers(void) {
  memcpy(pong + 2, "{\"type\":\"pong\"}", 15);
  memcpy(welcome + 2, "{\"type\":\"welcome\"}", 18);
}

/* How a floor writes an answer: 0, or -1 to drop the connection. */
typedef int (*floor_reply_fn)(int fd, const unsigned char* r, size_t n);

/* Consumes whole frames from c->buf; answers each with reply() ({"type":
 * "welcome"} to the first, {"type":"pong"} to the rest). Returns -1 to drop
 * (a close frame, a 64-bit length, a frame larger than the buffer, or a
 * reply that failed). */
static inline int floor_frames(int fd, struct conn* c, floor_reply_fn reply) {
  size_t pos = 0;
  while (c->have - pos >= 6) {
    unsigned char* b = c->buf + pos;
    size_t len = b[1] & 0x7f, hdr = 2;
    if (len == 126) {
      if (c->have - pos < 8) break;
      len = ((size_t)b[2] << 8) | b[3];
      hdr = 4;
    } else if (len == 127) {
      return -1;
    }
    if (hdr + 4 + len > sizeof c->buf) return -1;
    if (c->have - pos < hdr + 4 + len) break;
    pos += hdr + 4 + len;
    if ((b[0] & 0x0f) == 8) return -1;
    int ok = c->hello_done ? reply(fd, pong, sizeof pong) : reply(fd, welcome, sizeof welcome);
    c->hello_done = 1;
    if (ok < 0) return -1;
  }
  memmove(c->buf, c->buf + pos, c->have - pos);
  c->have -= (unsigned short)pos;
  return 0;
}

/* Bytes [p, p+r) arrived on fd: before the upgrade, the request (answered
 * with a 101 once its CRLFCRLF is seen; what follows it is frames), then
 * frames. Returns -1 to drop. */
static inline int floor_on_data(int fd, struct conn* c, const unsigned char* p, size_t r,
                                floor_reply_fn reply) {
  if (!c->upgraded) {
    const unsigned char* end = memmem(p, r, "\r\n\r\n", 4);
    if (!end) return 0; /* a long request: wait for its end (no state kept) */
    c->upgraded = 1;
    if (reply(fd, (const unsigned char*)kUpgrade, sizeof kUpgrade - 1) < 0) return -1;
    size_t rest = r - (size_t)(end + 4 - p);
    if (rest > sizeof c->buf) return -1;
    memcpy(c->buf, end + 4, rest);
    c->have = (unsigned short)rest;
  } else {
    if (c->have + r > sizeof c->buf) return -1;
    memcpy(c->buf + c->have, p, r);
    c->have += (unsigned short)r;
  }
  return floor_frames(fd, c, reply);
}

/* Raises the open-file limit to its hard limit, then listens on
 * 127.0.0.1:port (0: any free port) with `sock_flags` (SOCK_NONBLOCK, 0).
 * -1 on failure. floor_ready() then prints the line onlined prints. */
static int floor_listen(int port, int sock_flags, const char* name) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  int ls = socket(AF_INET, SOCK_STREAM | sock_flags, 0), one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr*)&a, sizeof a) || listen(ls, 4096)) {
    fprintf(stderr, "%s: bind: %s\n", name, strerror(errno));
    return -1;
  }
  return ls;
}

/* "onlined: listening on http://127.0.0.1:PORT", as onlined prints it. */
static void floor_ready(int ls) {
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  getsockname(ls, (struct sockaddr*)&a, &al);
  printf("onlined: listening on http://127.0.0.1:%d\n", ntohs(a.sin_port));
  fflush(stdout);
}
