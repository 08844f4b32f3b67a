/* What the two floors (floor.c on epoll, floor_uring.c on io_uring) share:
 * a connection's state, the fixed answers, and the frame loop that answers
 * each complete client frame through the floor's own reply function. */
#pragma once
#include <stddef.h>
#include <string.h>

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

/* Consumes whole frames from c->buf; answers each with reply() ({"type":
 * "welcome"} to the first, {"type":"pong"} to the rest). Returns -1 to drop
 * (a close frame, a 64-bit length, a frame larger than the buffer, or a
 * reply that failed). */
static inline int floor_frames(int fd, struct conn* c,
                               int (*reply)(int fd, const unsigned char* r, size_t n)) {
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
