/* fsync_probe: what a commit's fsync waits for beside a checkpoint's copy.
 *
 * The foreground does what the store's writer does per group commit: it
 * writes N pages to a "WAL" file and fdatasyncs it, R times a second, and
 * records how long the pair took. A background thread does what a
 * checkpoint does: every P ms it writes K KiB of pages at scattered offsets
 * of a "database" file, then fdatasyncs it; with a piece size, it also
 * fdatasyncs every piece as it goes (the store's VFS, src/store/sqlite/vfs.h).
 * Prints one JSON line with the foreground's latency percentiles.
 *
 *   fsync_probe DIR [--pages N] [--rate R] [--seconds S]
 *               [--bg-kib K --bg-every-ms P [--piece-kib Q]]
 *
 * Its files (64 MiB each) are made in DIR and removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { kPage = 4096 };
static const long kFileBytes = 64L << 20;

static atomic_int stop;
static int bg_kib, bg_every_ms, piece_kib;
static char db_path[4096], wal_path[4096];

static double Now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void Die(const char* what) {
  perror(what);
  exit(1);
}

static void* Background(void* arg) {
  (void)arg;
  int fd = open(db_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || ftruncate(fd, kFileBytes) != 0) Die("fsync_probe: database file");
  static char page[kPage];
  memset(page, 7, sizeof page);
  long off = 0;
  while (!atomic_load(&stop)) {
    int since = 0;
    for (int i = 0; i < bg_kib / 4; ++i) {
      if (pwrite(fd, page, kPage, off % kFileBytes) != kPage) Die("fsync_probe: pwrite");
      off += 7L * kPage; /* scattered, as a B-tree's pages are */
      since += 4;
      if (piece_kib > 0 && since >= piece_kib) {
        if (fdatasync(fd) != 0) Die("fsync_probe: fdatasync");
        since = 0;
      }
    }
    if (fdatasync(fd) != 0) Die("fsync_probe: fdatasync");
    usleep((useconds_t)bg_every_ms * 1000);
  }
  close(fd);
  return NULL;
}

static int Cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr,
            "usage: fsync_probe DIR [--pages N] [--rate R] [--seconds S] "
            "[--bg-kib K --bg-every-ms P [--piece-kib Q]]\n");
    return 2;
  }
  int pages = 10, rate = 400, seconds = 8;
  if ((argc - 2) % 2 != 0) {
    fprintf(stderr, "fsync_probe: %s needs a value\n", argv[argc - 1]);
    return 2;
  }
  for (int i = 2; i + 1 < argc; i += 2) {
    int v = atoi(argv[i + 1]);
    if (v < 0 || v > 1000000) {
      fprintf(stderr, "fsync_probe: %s out of range\n", argv[i]);
      return 2;
    }
    if (!strcmp(argv[i], "--pages"))
      pages = v;
    else if (!strcmp(argv[i], "--rate"))
      rate = v;
    else if (!strcmp(argv[i], "--seconds"))
      seconds = v;
    else if (!strcmp(argv[i], "--bg-kib"))
      bg_kib = v;
    else if (!strcmp(argv[i], "--bg-every-ms"))
      bg_every_ms = v;
    else if (!strcmp(argv[i], "--piece-kib"))
      piece_kib = v;
    else {
      fprintf(stderr, "fsync_probe: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (pages < 1 || pages > 64 || rate < 1 || seconds < 1) {
    fprintf(stderr, "fsync_probe: --pages 1..64, --rate and --seconds at least 1\n");
    return 2;
  }
  snprintf(db_path, sizeof db_path, "%s/fsync-probe.db", argv[1]);
  snprintf(wal_path, sizeof wal_path, "%s/fsync-probe.wal", argv[1]);
  int fd = open(wal_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || ftruncate(fd, kFileBytes) != 0 || fsync(fd) != 0) Die("fsync_probe: WAL file");
  pthread_t bg;
  if (bg_kib > 0 && pthread_create(&bg, NULL, Background, NULL) != 0) Die("fsync_probe: thread");
  static char frames[64 * kPage];
  memset(frames, 1, sizeof frames);
  const long n = (long)rate * seconds;
  double* lat = malloc(sizeof(double) * (size_t)n);
  if (!lat) Die("fsync_probe: malloc");
  long off = 0;
  const double t0 = Now();
  for (long i = 0; i < n; ++i) {
    const double due = t0 + (double)i / rate;
    for (double w = due - Now(); w > 0; w = due - Now()) usleep((useconds_t)(w * 1e6));
    const double s = Now();
    for (int f = 0; f < pages; ++f) {
      if (pwrite(fd, frames + (long)f * kPage, kPage, off) != kPage) Die("fsync_probe: pwrite");
      off = (off + kPage) % (kFileBytes - kPage);
    }
    if (fdatasync(fd) != 0) Die("fsync_probe: fdatasync");
    lat[i] = (Now() - s) * 1e3;
  }
  atomic_store(&stop, 1);
  if (bg_kib > 0) pthread_join(bg, NULL);
  qsort(lat, (size_t)n, sizeof(double), Cmp);
  printf(
      "{\"pages\":%d,\"rate\":%d,\"seconds\":%d,\"bg_kib\":%d,\"bg_every_ms\":%d,\"piece_kib\":%d,"
      "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f}\n",
      pages, rate, seconds, bg_kib, bg_every_ms, piece_kib, lat[n / 2], lat[n * 9 / 10],
      lat[n * 99 / 100], lat[n * 999 / 1000], lat[n - 1]);
  close(fd);
  unlink(wal_path);
  unlink(db_path);
  free(lat);
  return 0;
}
