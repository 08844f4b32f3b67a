#pragma once
// A SQLite VFS that fails on purpose (LevelDB's fault-injecting Env, for
// SQLite): the nth write, the nth fsync, or every write as a full disk. It
// wraps the default VFS and changes nothing else. For tests of what the
// server does when its disk fails: a send that fails is answered 503 (or an
// error frame), nothing acknowledged is lost, and the writer goes on once the
// fault is gone.
//
// Chosen by the setting `store_faults` (config/config.h); the faults can be
// changed while running (SIGHUP). Thread-safe: counters are atomics.
#include <cstdint>
#include <string>
#include <string_view>

namespace onlined::store {

struct FaultSpec {
  int64_t fail_write = 0;  // the nth xWrite from now fails (SQLITE_IOERR_WRITE); 0: none
  int64_t fail_sync = 0;   // the nth xSync from now fails (SQLITE_IOERR_FSYNC); 0: none
  bool disk_full = false;  // every xWrite fails with SQLITE_FULL
};

// "none", or a comma list of "write=N", "sync=N", "full". False (and `err`
// set) if malformed.
bool ParseFaultSpec(std::string_view text, FaultSpec& out, std::string& err);

// Registers the VFS (once; not the default) and returns its name for
// sqlite3_open_v2.
const char* FaultVfsName();

// Replaces the faults; counting starts again from now.
void SetFaults(const FaultSpec& spec);

// Faults injected since start, for logs and tests.
int64_t FaultsInjected();

}  // namespace onlined::store
