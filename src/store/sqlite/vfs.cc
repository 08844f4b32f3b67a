#include "store/sqlite/vfs.h"

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include <atomic>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace onlined::store {

namespace {

std::atomic<int64_t> g_fail_write{0}, g_fail_sync{0}, g_fail_db_sync{0}, g_writes{0}, g_syncs{0},
    g_db_syncs{0}, g_injected{0};
std::atomic<bool> g_full{false};
std::atomic<uint64_t> g_piece_syncs{0};
std::atomic<bool> g_db_sync_failed{false};
std::atomic<uint64_t> g_wal_appends{0}, g_wal_writes{0}, g_wal_at_barrier{0};

// sqlite3_file_control opcode of PaceCheckpoints (over 100: the
// application's, as sqlite3.h asks).
constexpr int kFcntlPace = 0x6f6e6c01;
// ... and of CoalesceWalWrites.
constexpr int kFcntlCoalesce = 0x6f6e6c02;

sqlite3_vfs* g_base = nullptr;
sqlite3_vfs g_vfs;         // "onlined": pieces
sqlite3_vfs g_faulty_vfs;  // "onlined-faults": pieces and faults

// A file of the wrapping VFS: our methods first, then the base file.
struct ShimFile {
  sqlite3_file base_hdr;  // pMethods = our io methods
  sqlite3_file* real;     // the base VFS's file, allocated after this struct
  bool faults;            // opened through g_faulty_vfs
  bool main_db;           // the database file (not the WAL, a journal or a temporary file)
  bool paced;             // main_db, and its connection asked for pieces (PaceCheckpoints)
  bool coalesce;          // main_db, and its connection's WAL writes are coalesced
  int64_t unsynced;       // bytes written since the last sync (paced only)
  ShimFile* db;           // a WAL: its database's file, if one of ours (for `coalesce`)
  ShimFile* wal;          // main_db: its open WAL, if any (for ShmBarrier)
  // A WAL's coalesced writes (vfs.h): buf_len bytes at file offset buf_off,
  // not yet written; buf (kWalBuffer bytes) allocated at the first.
  char* buf;
  int64_t buf_off;
  int64_t buf_len;
};

ShimFile* Shim(sqlite3_file* f) { return reinterpret_cast<ShimFile*>(f); }

// Counts one more call in `count`: true if it is the nth that `at` names (0:
// none).
bool IsNth(const std::atomic<int64_t>& at, std::atomic<int64_t>& count) {
  const int64_t n = at.load(std::memory_order_relaxed);
  return n > 0 && count.fetch_add(1) + 1 == n;
}
sqlite3_file* Real(sqlite3_file* f) { return Shim(f)->real; }

// Writes a WAL's coalesced bytes, in one call. They are gone from the buffer
// whatever the outcome: a failure fails the transaction they belong to,
// which SQLite then rolls back (its frames past the WAL's last commit are
// never read).
int Flush(ShimFile* sf) {
  if (sf->buf_len == 0) return SQLITE_OK;
  const int n = static_cast<int>(sf->buf_len);
  sf->buf_len = 0;
  g_wal_writes.fetch_add(1, std::memory_order_relaxed);
  return sf->real->pMethods->xWrite(sf->real, sf->buf, n, sf->buf_off);
}

int Close(sqlite3_file* f) {
  ShimFile* sf = Shim(f);
  const int flushed = Flush(sf);
  std::free(sf->buf);
  sf->buf = nullptr;
  if (sf->db != nullptr && sf->db->wal == sf) sf->db->wal = nullptr;
  const int rc = Real(f)->pMethods->xClose(Real(f));
  return flushed != SQLITE_OK ? flushed : rc;
}
int Read(sqlite3_file* f, void* p, int n, sqlite3_int64 off) {
  // The writer reading back a frame of its own transaction (a page it had
  // to spill): what it wrote is in the file first.
  if (const int rc = Flush(Shim(f)); rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xRead(Real(f), p, n, off);
}
int Sync(sqlite3_file* f, int flags) {
  ShimFile* sf = Shim(f);
  if (const int rc = Flush(sf); rc != SQLITE_OK) return rc;
  if (sf->main_db && g_db_sync_failed.load(std::memory_order_relaxed)) return SQLITE_IOERR_FSYNC;
  int rc = SQLITE_OK;
  if (sf->faults) {
    // Both counted; one failed sync even if both name it.
    const bool nth = IsNth(g_fail_sync, g_syncs);
    if ((sf->main_db && IsNth(g_fail_db_sync, g_db_syncs)) || nth) {
      g_injected.fetch_add(1);
      rc = SQLITE_IOERR_FSYNC;
    }
  }
  if (rc == SQLITE_OK) rc = Real(f)->pMethods->xSync(Real(f), flags);
  if (rc == SQLITE_OK) {
    sf->unsynced = 0;
  } else if (sf->main_db && !g_db_sync_failed.exchange(true)) {
    spdlog::error(
        "store: a sync of the database file failed: checkpoints stop and the WAL keeps every "
        "commit until the server is restarted");
  }
  return rc;
}
int Write(sqlite3_file* f, const void* p, int n, sqlite3_int64 off) {
  ShimFile* sf = Shim(f);
  if (sf->faults) {
    if (g_full.load(std::memory_order_relaxed)) {
      g_injected.fetch_add(1);
      return SQLITE_FULL;
    }
    if (IsNth(g_fail_write, g_writes)) {
      g_injected.fetch_add(1);
      return SQLITE_IOERR_WRITE;
    }
  }
  if (sf->db != nullptr && sf->db->coalesce) {
    // A WAL's frames are written as two calls each (a 24-byte header, then
    // the page), in order: taken together, one write per kWalBuffer (vfs.h).
    const bool follows = sf->buf_len > 0 && off == sf->buf_off + sf->buf_len;
    if (!follows || sf->buf_len + n > kWalBuffer) {
      if (const int rc = Flush(sf); rc != SQLITE_OK) return rc;
    }
    if (sf->buf == nullptr && n <= kWalBuffer)
      sf->buf = static_cast<char*>(std::malloc(kWalBuffer));
    if (sf->buf != nullptr && n > 0 && n <= kWalBuffer) {
      if (sf->buf_len == 0) sf->buf_off = off;
      std::memcpy(sf->buf + sf->buf_len, p, static_cast<size_t>(n));
      sf->buf_len += n;
      g_wal_appends.fetch_add(1, std::memory_order_relaxed);
      return SQLITE_OK;
    }
  }
  const int rc = Real(f)->pMethods->xWrite(Real(f), p, n, off);
  if (rc != SQLITE_OK || !sf->paced) return rc;
  sf->unsynced += n;
  if (sf->unsynced < kWritebackPiece) return SQLITE_OK;
  g_piece_syncs.fetch_add(1, std::memory_order_relaxed);
  // Data only: the file's size is made durable by the sync that SQLite asks
  // for at the checkpoint's end. A failure fails this write (vfs.h).
  return Sync(f, SQLITE_SYNC_NORMAL | SQLITE_SYNC_DATAONLY);
}
int Truncate(sqlite3_file* f, sqlite3_int64 size) {
  if (const int rc = Flush(Shim(f)); rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xTruncate(Real(f), size);
}
int FileSize(sqlite3_file* f, sqlite3_int64* size) {
  if (const int rc = Flush(Shim(f)); rc != SQLITE_OK) return rc;
  return Real(f)->pMethods->xFileSize(Real(f), size);
}
int Lock(sqlite3_file* f, int l) { return Real(f)->pMethods->xLock(Real(f), l); }
int Unlock(sqlite3_file* f, int l) { return Real(f)->pMethods->xUnlock(Real(f), l); }
int CheckReservedLock(sqlite3_file* f, int* out) {
  return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
}
int FileControl(sqlite3_file* f, int op, void* arg) {
  if (op == kFcntlPace) {
    ShimFile* sf = Shim(f);
    if (!sf->main_db) return SQLITE_NOTFOUND;
    sf->paced = *static_cast<const bool*>(arg);
    return SQLITE_OK;
  }
  if (op == kFcntlCoalesce) {
    ShimFile* sf = Shim(f);
    if (!sf->main_db) return SQLITE_NOTFOUND;
    sf->coalesce = *static_cast<const bool*>(arg);
    // Off: what the open WAL holds is written now, as a write would have.
    if (!sf->coalesce && sf->wal != nullptr) return Flush(sf->wal);
    return SQLITE_OK;
  }
  return Real(f)->pMethods->xFileControl(Real(f), op, arg);
}
int SectorSize(sqlite3_file* f) { return Real(f)->pMethods->xSectorSize(Real(f)); }
int DeviceCharacteristics(sqlite3_file* f) {
  return Real(f)->pMethods->xDeviceCharacteristics(Real(f));
}
int ShmMap(sqlite3_file* f, int pg, int sz, int extend, void volatile** pp) {
  return Real(f)->pMethods->xShmMap(Real(f), pg, sz, extend, pp);
}
int ShmLock(sqlite3_file* f, int off, int n, int flags) {
  return Real(f)->pMethods->xShmLock(Real(f), off, n, flags);
}
void ShmBarrier(sqlite3_file* f) {
  // SQLite publishes a commit's frames in the WAL index between barriers on
  // the database file. With synchronous=FULL (which CoalesceWalWrites asks
  // for) the WAL was synced, and so flushed, before: nothing is left here.
  // Should anything be (a connection that did not sync), it is written
  // before the frames can be read by another connection; a failure cannot
  // be returned from here and is logged.
  ShimFile* sf = Shim(f);
  if (sf->wal != nullptr && sf->wal->buf_len > 0) {
    g_wal_at_barrier.fetch_add(1, std::memory_order_relaxed);
    if (Flush(sf->wal) != SQLITE_OK)
      spdlog::error("store: a write of the WAL failed as its frames were published");
  }
  Real(f)->pMethods->xShmBarrier(Real(f));
}
int ShmUnmap(sqlite3_file* f, int del) { return Real(f)->pMethods->xShmUnmap(Real(f), del); }

// Version 2 methods: WAL needs the shared-memory calls; no mmap (version 3).
const sqlite3_io_methods kMethods = {2,
                                     Close,
                                     Read,
                                     Write,
                                     Truncate,
                                     Sync,
                                     FileSize,
                                     Lock,
                                     Unlock,
                                     CheckReservedLock,
                                     FileControl,
                                     SectorSize,
                                     DeviceCharacteristics,
                                     ShmMap,
                                     ShmLock,
                                     ShmBarrier,
                                     ShmUnmap,
                                     nullptr,
                                     nullptr};

int Open(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  auto* ff = Shim(f);
  ff->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + sizeof(ShimFile));
  ff->faults = vfs == &g_faulty_vfs;
  ff->main_db = (flags & SQLITE_OPEN_MAIN_DB) != 0;
  ff->paced = false;
  ff->coalesce = false;
  ff->unsynced = 0;
  ff->db = nullptr;
  ff->wal = nullptr;
  ff->buf = nullptr;
  ff->buf_off = 0;
  ff->buf_len = 0;
  std::memset(ff->real, 0, static_cast<size_t>(g_base->szOsFile));
  int rc = g_base->xOpen(g_base, name, ff->real, flags, out_flags);
  // SQLite calls xClose only if pMethods is set: set it only on success.
  ff->base_hdr.pMethods = rc == SQLITE_OK && ff->real->pMethods != nullptr ? &kMethods : nullptr;
  if (ff->base_hdr.pMethods != nullptr && (flags & SQLITE_OPEN_WAL) != 0 && name != nullptr) {
    // The database's file outlives its WAL's (SQLite closes the WAL first).
    sqlite3_file* main = sqlite3_database_file_object(name);
    if (main != nullptr && main->pMethods == &kMethods) {
      ff->db = Shim(main);
      ff->db->wal = ff;
    }
  }
  return rc;
}

int Delete(sqlite3_vfs*, const char* name, int sync) { return g_base->xDelete(g_base, name, sync); }
int Access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return g_base->xAccess(g_base, name, flags, out);
}
int FullPathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return g_base->xFullPathname(g_base, name, n, out);
}
void* DlOpen(sqlite3_vfs*, const char* name) { return g_base->xDlOpen(g_base, name); }
void DlError(sqlite3_vfs*, int n, char* msg) { g_base->xDlError(g_base, n, msg); }
void (*DlSym(sqlite3_vfs*, void* h, const char* sym))(void) {
  return g_base->xDlSym(g_base, h, sym);
}
void DlClose(sqlite3_vfs*, void* h) { g_base->xDlClose(g_base, h); }
int Randomness(sqlite3_vfs*, int n, char* out) { return g_base->xRandomness(g_base, n, out); }
int Sleep(sqlite3_vfs*, int us) { return g_base->xSleep(g_base, us); }
int CurrentTime(sqlite3_vfs*, double* out) { return g_base->xCurrentTime(g_base, out); }
int GetLastError(sqlite3_vfs*, int n, char* out) { return g_base->xGetLastError(g_base, n, out); }
int CurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* out) {
  return g_base->xCurrentTimeInt64(g_base, out);
}

void Register(sqlite3_vfs& vfs, const char* name) {
  vfs = *g_base;
  vfs.iVersion = 2;
  vfs.szOsFile = static_cast<int>(sizeof(ShimFile)) + g_base->szOsFile;
  vfs.zName = name;
  vfs.pNext = nullptr;
  vfs.xOpen = Open;
  vfs.xDelete = Delete;
  vfs.xAccess = Access;
  vfs.xFullPathname = FullPathname;
  vfs.xDlOpen = DlOpen;
  vfs.xDlError = DlError;
  vfs.xDlSym = DlSym;
  vfs.xDlClose = DlClose;
  vfs.xRandomness = Randomness;
  vfs.xSleep = Sleep;
  vfs.xCurrentTime = CurrentTime;
  vfs.xGetLastError = GetLastError;
  vfs.xCurrentTimeInt64 = CurrentTimeInt64;
  sqlite3_vfs_register(&vfs, 0);
}

}  // namespace

bool ParseFaultSpec(std::string_view text, FaultSpec& out, std::string& err) {
  out = FaultSpec{};
  if (text == "none" || text.empty()) return true;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    auto number = [&](std::string_view v, int64_t& dst) {
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), dst);
      return ec == std::errc() && p == v.data() + v.size() && dst > 0;
    };
    const bool ok = item == "full"                  ? (out.disk_full = true)
                    : item.rfind("write=", 0) == 0  ? number(item.substr(6), out.fail_write)
                    : item.rfind("sync=", 0) == 0   ? number(item.substr(5), out.fail_sync)
                    : item.rfind("dbsync=", 0) == 0 ? number(item.substr(7), out.fail_db_sync)
                                                    : false;
    if (!ok) {
      err = "unknown fault '" + std::string(item) +
            "' (none | write=N | sync=N | dbsync=N | full, comma-separated)";
      return false;
    }
  }
  return true;
}

const char* VfsName(bool faults) {
  static std::once_flag once;
  std::call_once(once, [] {
    g_base = sqlite3_vfs_find(nullptr);
    Register(g_vfs, "onlined");
    Register(g_faulty_vfs, "onlined-faults");
  });
  return faults ? g_faulty_vfs.zName : g_vfs.zName;
}

bool PaceCheckpoints(sqlite3* db, bool on) {
  return sqlite3_file_control(db, "main", kFcntlPace, &on) == SQLITE_OK;
}

bool CoalesceWalWrites(sqlite3* db, bool on) {
  if (on) {
    // Only where every commit syncs the WAL before publishing it (vfs.h).
    sqlite3_stmt* st = nullptr;
    int level = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA synchronous", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      level = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    if (level < 2) return false;  // 2: FULL, 3: EXTRA
  }
  return sqlite3_file_control(db, "main", kFcntlCoalesce, &on) == SQLITE_OK;
}

WalWriteCounts WalWrites() {
  return {g_wal_appends.load(std::memory_order_relaxed),
          g_wal_writes.load(std::memory_order_relaxed),
          g_wal_at_barrier.load(std::memory_order_relaxed)};
}

bool DatabaseSyncFailed() { return g_db_sync_failed.load(std::memory_order_relaxed); }

uint64_t WritebackSyncs() { return g_piece_syncs.load(std::memory_order_relaxed); }

void SetFaults(const FaultSpec& spec) {
  g_writes = 0;
  g_syncs = 0;
  g_db_syncs = 0;
  g_fail_write = spec.fail_write;
  g_fail_sync = spec.fail_sync;
  g_fail_db_sync = spec.fail_db_sync;
  g_full = spec.disk_full;
  g_db_sync_failed = false;
}

int64_t FaultsInjected() { return g_injected.load(); }

}  // namespace onlined::store
