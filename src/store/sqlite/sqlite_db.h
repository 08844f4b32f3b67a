#pragma once
// The embedded engine: SQLite in WAL mode in `data_dir`. One SqliteDb is one
// connection (see store::Db for the threading rules). The writer connection
// commits with synchronous=FULL: a committed transaction survives a crash
// or power loss; store::Service groups many operations per commit.
#include <cstdint>
#include <memory>
#include <string>

#include "store/db.h"

namespace onlined::store {

// Opens (creating and migrating if needed) `dir`/onlined.db. Throws DbError.
// Every connection goes through the store's VFS (vfs.h), with
// `fault_injection` through the one that injects faults.
std::unique_ptr<Db> OpenSqlite(const std::string& dir, bool writer, bool fault_injection = false);

// The WAL's pages between two checkpoints, and its most (plus the commits
// made while a checkpoint in progress ends): see Checkpointer in sqlite_db.cc.
inline constexpr int kSqliteCheckpointPages = 1000;
inline constexpr int kSqliteWalMaxPages = 16 * kSqliteCheckpointPages;

// Checkpoints (the WAL copied back into the database file) done by the
// writers' checkpointer threads in this process so far: one per
// kSqliteCheckpointPages committed, under sustained writes one per commit
// for the last pages before kSqliteWalMaxPages. The writer's own commits
// checkpoint only at kSqliteWalMaxPages (the WAL is then reused from its
// start). With `store_faults` the checkpointer's writes count among the
// injected faults' writes too.
uint64_t SqliteCheckpoints();

}  // namespace onlined::store
