#pragma once
// The SQLite VFS every connection of the store opens with: the default VFS
// with two additions, and nothing else changed.
//
// 1. The database file's writes reach the disk in pieces as they are made.
//    In WAL mode only a checkpoint writes that file: the WAL's pages copied
//    back, a megabyte and more at once, then one fsync. A commit's fsync of
//    the WAL that falls in that window waits for the megabyte to be written
//    first: measured here with a probe that commits 10 pages and fsyncs 400
//    times a second beside 1.4 MB written and fsynced every 100 ms, the
//    commit's fsync p99 was 2.1 ms against 0.4 ms alone. Made durable every
//    kWritebackPiece bytes, the copy leaves the commits' fsyncs as they are
//    alone (p99 0.4-0.5 ms). RocksDB's `bytes_per_sync` is the same idea; a
//    VFS does not see the file descriptor, so the piece is made durable with
//    the file's own sync. A piece's failed sync fails the write that asked for
//    it: the checkpoint stops there and copies those pages again next time.
// 2. Faults on purpose, for tests (LevelDB's fault-injecting Env, for
//    SQLite): the nth write, the nth sync, or every write as a full disk. For
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

namespace onlined::store {

// Bytes written to the database file between two of its syncs (a checkpoint
// of ~1,000 WAL frames copies ~340 distinct pages: about 20 pieces).
inline constexpr int64_t kWritebackPiece = 64 * 1024;

// Registers the VFS (once; not the default) and returns its name for
// sqlite3_open_v2. With `faults`, the one that injects the faults set by
// SetFaults (its pieces' syncs are counted among the syncs, as SQLite's are).
const char* VfsName(bool faults);

// Syncs of a piece of the database file made so far in this process.
uint64_t WritebackSyncs();

struct FaultSpec {
  int64_t fail_write = 0;  // the nth xWrite from now fails (SQLITE_IOERR_WRITE); 0: none
  int64_t fail_sync = 0;   // the nth xSync from now fails (SQLITE_IOERR_FSYNC); 0: none
  bool disk_full = false;  // every xWrite fails with SQLITE_FULL
};

// "none", or a comma list of "write=N", "sync=N", "full". False (and `err`
// set) if malformed.
bool ParseFaultSpec(std::string_view text, FaultSpec& out, std::string& err);

// Replaces the faults; counting starts again from now.
void SetFaults(const FaultSpec& spec);

// Faults injected since start, for logs and tests.
int64_t FaultsInjected();

}  // namespace onlined::store
