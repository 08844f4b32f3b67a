#pragma once
// The SQLite VFS every connection of the store opens with: the default VFS
// with three additions, and nothing else changed.
//
// 1. A checkpoint's writes to the database file reach the disk in pieces as
//    they are made. In WAL mode a checkpoint writes that file: the WAL's
//    pages copied back, a megabyte and more at once, then one fsync. A
//    commit's fsync of the WAL that falls in that window waits for the
//    megabyte to be written first (bench/fsync_probe.c measures it; the
//    README gives the figures). Synced every kWritebackPiece bytes, the copy
//    leaves the commits' fsyncs as they are alone. RocksDB's `bytes_per_sync`
//    is the same idea, with sync_file_range; a VFS does not see the file's
//    descriptor, and one opened beside SQLite's could not be closed without
//    dropping SQLite's locks on the file, so a piece is made durable with the
//    file's own sync. Only on a connection that asked for it (PaceCheckpoints:
//    the checkpointer's, while it keeps up), so that the writer's own
//    checkpoint, which a commit waits for, and the one at the last close stay
//    one sync each.
//    A failed sync of the database file (a piece's or SQLite's own) fails
//    every later one in this process: Linux reports a failed writeback once,
//    and a checkpoint whose pages were lost must never let the WAL be reused.
//    Checkpoints then fail and the WAL keeps every commit (and grows, warned
//    of in the log); a restart copies it all back again.
// 2. A commit's WAL frames reach the file 64 KiB at a time. SQLite writes each
//    frame as two calls (its 24-byte header, then the page), so a commit of
//    40 pages was 80 pwrites, each taking the file's lock and marking its
//    pages dirty anew (a frame straddles two pages of the file). On a
//    connection that asked for it (CoalesceWalWrites: the writer's), the
//    WAL's writes that follow each other are kept in a buffer of
//    kWalBuffer bytes and written as one when the WAL is synced (every
//    commit: synchronous=FULL), read, sized, truncated or closed, when a
//    write does not follow the last, or when the buffer is full. SQLite
//    publishes a commit's frames to other connections only after that sync,
//    so no reader can find a frame that is still in the buffer; a failed
//    write of the buffer fails the sync, and with it the commit, as a failed
//    write would have. Faults count the calls SQLite makes, as before.
// 3. Faults on purpose, for tests (LevelDB's fault-injecting Env, for
//    SQLite): the nth write, the nth sync (of any file, or of the database
//    file alone: a checkpoint's), or every write as a full disk. For
//    tests of what the server does when its disk fails: a send that fails is
//    answered 503 (or an error frame), nothing acknowledged is lost, and the
//    writer goes on once the fault is gone. Only through the VFS that
//    `VfsName(true)` names, chosen by the setting `store_faults`
//    (config/config.h); the faults can be changed while running (SIGHUP).
//
// Thread-safe: counters are atomics; a file's own state is its connection's.
#include <cstdint>
#include <string>
#include <string_view>

struct sqlite3;

namespace onlined::store {

// Bytes written to the database file between two of its syncs (a checkpoint
// of ~1,000 WAL frames copies ~340 distinct pages: about 20 pieces).
inline constexpr int64_t kWritebackPiece = 64 * 1024;

// Registers the VFS (once; not the default) and returns its name for
// sqlite3_open_v2. With `faults`, the one that injects the faults set by
// SetFaults (its pieces' syncs are counted among the syncs, as SQLite's are).
const char* VfsName(bool faults);

// Makes the checkpoints of `db` (opened through VfsName) sync the database
// file in pieces, or (`on` false) no longer. False if its file is not one of
// this VFS's.
bool PaceCheckpoints(sqlite3* db, bool on);

// The most a WAL's writes are held before they are written (see 2. above):
// 15 frames of 4 KiB pages. The default VFS writes less than 128 KiB in one
// call (a larger write comes back short, as a full disk).
inline constexpr int64_t kWalBuffer = 64 * 1024;

// Makes the WAL writes of `db` (opened through VfsName) one per 64 KiB
// (see 2. above), or (`on` false) one per call again. Only for a connection
// with synchronous=FULL or EXTRA, which syncs the WAL at every commit: false
// on any other, if its file is not one of this VFS's, or (off) if writing
// what was held failed.
bool CoalesceWalWrites(sqlite3* db, bool on);

// WAL writes in this process: calls SQLite made that were held (appends),
// the writes that then reached the file (writes), and of those the ones
// left for a barrier of the WAL index (at_barrier: none where the commit's
// sync wrote them, as it must).
struct WalWriteCounts {
  uint64_t appends = 0;
  uint64_t writes = 0;
  uint64_t at_barrier = 0;
};
WalWriteCounts WalWrites();

// True once a sync of a database file failed in this process (see 1. above).
bool DatabaseSyncFailed();

// Syncs of a piece of the database file made so far in this process.
uint64_t WritebackSyncs();

struct FaultSpec {
  int64_t fail_write = 0;    // the nth xWrite from now fails (SQLITE_IOERR_WRITE); 0: none
  int64_t fail_sync = 0;     // the nth xSync from now fails (SQLITE_IOERR_FSYNC); 0: none
  int64_t fail_db_sync = 0;  // the nth xSync of a database file from now fails; 0: none
  bool disk_full = false;    // every xWrite fails with SQLITE_FULL
};

// "none", or a comma list of "write=N", "sync=N", "dbsync=N", "full". False (and `err`
// set) if malformed.
bool ParseFaultSpec(std::string_view text, FaultSpec& out, std::string& err);

// Replaces the faults; counting starts again from now, and a failed sync of
// the database file is forgotten, as at a restart (tests only: a server's
// SIGHUP that changes `store_faults` does it too).
void SetFaults(const FaultSpec& spec);

// Faults injected since start, for logs and tests.
int64_t FaultsInjected();

}  // namespace onlined::store
