// The SQLite engine's own machinery (store/sqlite/sqlite_db.cc): the
// checkpointer that copies the WAL back into the database file while the
// writer goes on, and the VFS that makes that copy durable in pieces
// (store/sqlite/vfs.h).
#include "store/sqlite/sqlite_db.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "store/sqlite/vfs.h"

namespace onlined::store {
namespace {

namespace fs = std::filesystem;

TEST(SqliteCheckpoint, TheWalIsCopiedBackWhileTheWriterGoesOn) {
  char tmpl[] = "/tmp/onlined-ckpt-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  {
    auto db = OpenSqlite(dir, true);
    const uint64_t checkpoints = SqliteCheckpoints();
    const uint64_t pieces = WritebackSyncs();
    const std::string file = dir + "/onlined.db", wal = file + "-wal";
    const uintmax_t before = fs::file_size(file);
    Chat c;
    c.chat_id = "c1";
    c.channel = "acme";
    c.user_id = "ann";
    c.created_at = c.updated_at = 1;
    db->Begin();
    ASSERT_TRUE(db->InsertChat(c));
    db->Commit();
    // 300 commits of 10 messages of 3,000 bytes: ~3,500 pages, over three
    // times the checkpointer's mark and under the one at which the writer
    // would checkpoint itself (Checkpointer::kWriterFrames).
    int64_t seq = 0;
    for (int commit = 0; commit < 300; ++commit) {
      db->Begin();
      for (int i = 0; i < 10; ++i) {
        Message m;
        m.id = "m" + std::to_string(++seq);
        m.chat_id = "c1";
        m.seq = seq;
        m.from = "manager";
        m.sender_id = "m1";
        m.text = std::string(3000, static_cast<char>('a' + i));
        m.created_at = seq;
        db->InsertMessage(m);
      }
      db->Commit();
    }
    // Copied into the database file while the writer is open (not at its
    // close), by the checkpointer: the file holds most of the ~14 MB (what
    // came after the last time the WAL was reused may wait for more).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (fs::file_size(file) < before + 8'000'000 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_GE(fs::file_size(file), before + 8'000'000) << "the WAL was not copied back";
    EXPECT_GT(SqliteCheckpoints(), checkpoints) << "copied back, but not by the checkpointer";
    // Made durable as it was written, a piece at a time: at least one sync
    // per kWritebackPiece of the 8 MB (less what each checkpoint's own sync
    // took of its last piece), not one sync at each checkpoint's end.
    EXPECT_GE(WritebackSyncs() - pieces, 8'000'000 / kWritebackPiece - 20)
        << "the copy was not made durable in pieces";
    EXPECT_TRUE(fs::exists(wal));  // still open: SQLite removes it at the last close
    auto last = db->GetMessage("c1", seq);
    ASSERT_TRUE(last);
    EXPECT_EQ(last->text, std::string(3000, 'j'));
  }
  fs::remove_all(dir);
}

// Under sustained writes (a commit after a commit, as store::Service groups
// them under load) the checkpointer copies in chunks, not after each commit,
// and the WAL is reused from its start instead of growing: its file passes
// kSqliteWalMaxPages only by the commits made while a copy in progress ends.
// After a reuse the chunks start over from the WAL's start (and not only
// past the old length).
TEST(SqliteCheckpoint, SustainedWritesAreCopiedInChunksAndTheWalIsReused) {
  char tmpl[] = "/tmp/onlined-ckpt-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  {
    auto db = OpenSqlite(dir, true);
    const std::string wal = dir + "/onlined.db-wal";
    Chat c;
    c.channel = "acme";
    c.created_at = c.updated_at = 1;
    db->Begin();
    for (int i = 0; i < 64; ++i) {
      c.chat_id = "c" + std::to_string(i);
      c.user_id = "u" + std::to_string(i);
      ASSERT_TRUE(db->InsertChat(c));
    }
    db->Commit();
    const uint64_t checkpoints = SqliteCheckpoints();
    // 4,000 commits of 4 messages of 3,000 bytes to chats spread over the
    // table (~10 pages each): ~40,000 pages, the WAL's most twice over.
    constexpr int kCommits = 4000;
    int64_t n = 0;
    uintmax_t wal_most = 0;
    int reuses = 0;
    int64_t pages = 0;
    // Checkpoints while the WAL, reused, is still short of the last 1,000
    // pages before its most (where each commit wakes the checkpointer).
    uint64_t early_at_reuse = 0;
    uint64_t early_after_reuse = 0;
    for (int commit = 0; commit < kCommits; ++commit) {
      db->Begin();
      for (int i = 0; i < 4; ++i, ++n) {
        Message m;
        m.chat_id = "c" + std::to_string(n % 64);
        m.seq = n / 64 + 1;
        m.id = "m" + std::to_string(n);
        m.from = "manager";
        m.sender_id = "m1";
        m.text = std::string(3000, static_cast<char>('a' + n % 26));
        m.created_at = n;
        db->InsertMessage(m);
        db->UpdateChatAfterMessage(m.chat_id, m.seq, m.created_at, false);
      }
      db->Commit();
      wal_most = std::max(wal_most, fs::file_size(wal));
      const int64_t now = db->WalPages();
      if (now < pages && ++reuses == 1) early_at_reuse = SqliteCheckpoints();
      if (reuses == 1 && now < kSqliteWalMaxPages - kSqliteCheckpointPages) {
        early_after_reuse = SqliteCheckpoints();
      }
      pages = now;
    }
    ASSERT_GE(reuses, 2) << "the WAL was not reused from its start twice";
    // One per 1,000 pages up to 15,000: ~14; fewer on a loaded machine,
    // where wake-ups during a slow copy merge into one. None without the
    // restart of the wake-up mark at a reuse.
    EXPECT_GE(early_after_reuse - early_at_reuse, 4U) << "no chunk copied after the WAL's reuse";
    const uint64_t done = SqliteCheckpoints() - checkpoints;
    // One per kSqliteCheckpointPages, one per commit for the last 1,000
    // pages before the WAL's most (~100 commits) each time it fills: a few
    // hundred at most. One per commit would be thousands.
    EXPECT_GE(done, 2U);
    EXPECT_LE(done, uint64_t{kCommits} / 6) << "checkpointed commit by commit";
    // A WAL frame is a 24-byte header and a page of 4,096 bytes, after the
    // file's 32-byte header. Past its most the WAL grows by the commits made
    // while the checkpointer's copy in progress ends (the writer's own
    // checkpoint yields to it): a few commits of ~10 pages, far under 1,000
    // pages even on a loaded machine. Never reused, it would grow to ~40,000.
    const uintmax_t bound =
        32 + uintmax_t{kSqliteWalMaxPages + kSqliteCheckpointPages} * (24 + 4096);
    EXPECT_LE(wal_most, bound) << "the WAL was never reused from its start";
    auto last = db->GetMessage("c" + std::to_string((n - 1) % 64), (n - 1) / 64 + 1);
    ASSERT_TRUE(last);
    EXPECT_EQ(last->text.size(), 3000U);
  }
  fs::remove_all(dir);
}

// The VFS tests' table t(k, v): a statement run, and its rows of 500 bytes.
int Exec(sqlite3* db, const char* sql) { return sqlite3_exec(db, sql, nullptr, nullptr, nullptr); }
int64_t Count(sqlite3* db) {
  sqlite3_stmt* st = nullptr;
  int64_t n = -1;
  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t WHERE length(v) = 500", -1, &st, nullptr) ==
          SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    n = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  return n;
}
// A new database with t, through the VFS that injects faults (none set),
// WAL, synchronous=FULL and no automatic checkpoint; nullptr if that fails.
sqlite3* CreateT(const std::string& file) {
  SetFaults(FaultSpec{});
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      VfsName(true)) != SQLITE_OK ||
      Exec(db,
           "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0;"
           "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);") != SQLITE_OK) {
    sqlite3_close(db);
    return nullptr;
  }
  return db;
}

// Only a connection that asked for it syncs its checkpoints in pieces. A
// piece's sync that fails fails the checkpoint that wrote it, and every sync
// of the database file after it until a restart: the kernel reports a failed
// writeback once, so a later sync could succeed over pages that are on no
// disk, and the WAL would be reused over them. The WAL keeps every frame, and
// the restart copies them all back.
TEST(SqliteVfs, AFailedPieceSyncFailsEveryCheckpointUntilARestartAndNothingIsLost) {
  char tmpl[] = "/tmp/onlined-vfs-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl, file = dir + "/t.db";
  // ~1 MB into the WAL, none of it in the database file yet.
  constexpr const char* kAdd =
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
      " INSERT INTO t(v) SELECT hex(randomblob(250)) FROM n;";
  sqlite3* db = CreateT(file);
  ASSERT_NE(db, nullptr);
  ASSERT_EQ(Exec(db, kAdd), SQLITE_OK);
  // Not asked: one sync at the checkpoint's end, no pieces.
  uint64_t pieces = WritebackSyncs();
  int log = 0, copied = 0;
  ASSERT_EQ(sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &copied),
            SQLITE_OK);
  EXPECT_EQ(copied, log);
  EXPECT_EQ(WritebackSyncs(), pieces) << "a connection that did not ask synced in pieces";

  ASSERT_TRUE(PaceCheckpoints(db, true));
  ASSERT_EQ(Exec(db, kAdd), SQLITE_OK);
  // The checkpoint's first sync is the WAL's, its second a piece's.
  pieces = WritebackSyncs();
  const int64_t injected = FaultsInjected();
  FaultSpec spec;
  spec.fail_sync = 2;
  SetFaults(spec);
  EXPECT_NE(sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &copied),
            SQLITE_OK);
  EXPECT_EQ(FaultsInjected(), injected + 1);
  EXPECT_GT(WritebackSyncs(), pieces) << "the failed sync was not a piece's";
  EXPECT_TRUE(DatabaseSyncFailed());
  // The fault was the second sync only; the next checkpoint fails all the same.
  EXPECT_NE(sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &copied),
            SQLITE_OK);
  EXPECT_EQ(FaultsInjected(), injected + 1);
  EXPECT_EQ(Count(db), 4000);
  // The last close's checkpoint fails too: the WAL stays, with every frame.
  sqlite3_close(db);
  ASSERT_TRUE(fs::exists(file + "-wal"));
  EXPECT_GT(fs::file_size(file + "-wal"), 1'000'000U);

  // A restart (SetFaults forgets the failure, as a new process would).
  SetFaults(FaultSpec{});
  ASSERT_EQ(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE, VfsName(false)), SQLITE_OK);
  EXPECT_EQ(Count(db), 4000);
  ASSERT_EQ(sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_TRUNCATE, &log, &copied),
            SQLITE_OK);
  EXPECT_EQ(copied, log);
  ASSERT_EQ(sqlite3_close(db), SQLITE_OK);
  EXPECT_FALSE(fs::exists(file + "-wal"));
  // From the database file alone.
  ASSERT_EQ(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, VfsName(false)), SQLITE_OK);
  EXPECT_EQ(Count(db), 4000);
  sqlite3_close(db);
  fs::remove_all(dir);
}

// A commit's WAL frames are one write, and on disk when the commit returns:
// a copy of the files taken then (what a crash would leave, the page cache
// aside) holds every committed row, and so does another connection.
TEST(SqliteVfs, ACommitsWalFramesAreOneWriteAndInTheFileWhenItReturns) {
  char tmpl[] = "/tmp/onlined-vfs-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl, file = dir + "/t.db", copy = dir + "/copy.db";
  auto count_copy = [&] {
    fs::remove(copy + "-wal");
    fs::remove(copy + "-shm");
    fs::copy_file(file, copy, fs::copy_options::overwrite_existing);
    fs::copy_file(file + "-wal", copy + "-wal", fs::copy_options::overwrite_existing);
    sqlite3* c = nullptr;
    int64_t n = -2;
    if (sqlite3_open_v2(copy.c_str(), &c, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK)
      n = Count(c);
    sqlite3_close(c);
    return n;
  };
  sqlite3 *db = CreateT(file), *other = nullptr;
  ASSERT_NE(db, nullptr);
  ASSERT_EQ(sqlite3_open_v2(file.c_str(), &other, SQLITE_OPEN_READONLY, VfsName(false)), SQLITE_OK);

  // Not asked: nothing held.
  WalWriteCounts before = WalWrites();
  ASSERT_EQ(Exec(db, "INSERT INTO t(v) SELECT hex(randomblob(250)) FROM (SELECT 1 UNION SELECT 2)"),
            SQLITE_OK);
  EXPECT_EQ(WalWrites().appends, before.appends);
  EXPECT_EQ(WalWrites().writes, before.writes);

  // Refused where a commit does not sync the WAL.
  ASSERT_EQ(Exec(db, "PRAGMA synchronous=NORMAL"), SQLITE_OK);
  EXPECT_FALSE(CoalesceWalWrites(db, true));
  ASSERT_EQ(Exec(db, "PRAGMA synchronous=FULL"), SQLITE_OK);
  ASSERT_TRUE(CoalesceWalWrites(db, true));
  int64_t rows = 2;
  before = WalWrites();
  constexpr int kCommits = 40;
  for (int i = 0; i < kCommits; ++i) {
    // 20 rows of 500 bytes, scattered over t: keys times a number the prime
    // 4294967291 does not divide, modulo that prime (no two alike).
    const std::string sql =
        "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20)"
        " INSERT INTO t(k, v) SELECT ((n.i + " +
        std::to_string(20 * i) +
        ") * 2654435761) % 4294967291, hex(randomblob(250)) FROM n; COMMIT;";
    ASSERT_EQ(Exec(db, sql.c_str()), SQLITE_OK);
    rows += 20;
    EXPECT_EQ(Count(other), rows) << "commit " << i;
    if (i % 8 == 0) {
      EXPECT_EQ(count_copy(), rows) << "commit " << i;
    }
  }
  const WalWriteCounts after = WalWrites();
  // 20 scattered rows: up to 20-odd pages, two calls each, and a write or
  // three (64 KiB each) where each call was a write. Every commit's bytes
  // were written by its sync, none left for the barrier that publishes it.
  const uint64_t appends = after.appends - before.appends, writes = after.writes - before.writes;
  EXPECT_GE(appends, 2u * 10 * kCommits);
  EXPECT_LE(writes, 4u * kCommits);
  EXPECT_GE(appends, 10 * writes) << appends << " calls, " << writes << " writes";
  EXPECT_EQ(after.at_barrier, before.at_barrier);

  // A transaction much larger than the buffer (~2 MB): written as it fills.
  before = WalWrites();
  ASSERT_EQ(Exec(db,
                 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000)"
                 " INSERT INTO t(v) SELECT hex(randomblob(250)) FROM n;"),
            SQLITE_OK);
  rows += 4000;
  EXPECT_GE(WalWrites().writes - before.writes, 2'000'000 / kWalBuffer);
  EXPECT_EQ(Count(other), rows);
  EXPECT_EQ(count_copy(), rows);

  // A write that fails (an injected fault) fails its commit; nothing of it
  // is read, and the next commit goes on.
  FaultSpec spec;
  spec.fail_write = 3;
  SetFaults(spec);
  EXPECT_NE(
      Exec(db,
           "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20)"
           " INSERT INTO t(v) SELECT hex(randomblob(250)) FROM n; COMMIT;"),
      SQLITE_OK);
  Exec(db, "ROLLBACK");
  SetFaults(FaultSpec{});
  EXPECT_EQ(Count(other), rows);
  ASSERT_EQ(Exec(db, "INSERT INTO t(v) VALUES (hex(randomblob(250)))"), SQLITE_OK);
  rows += 1;
  EXPECT_EQ(Count(other), rows);
  EXPECT_EQ(count_copy(), rows);

  // Asked to stop: one write per call again.
  ASSERT_TRUE(CoalesceWalWrites(db, false));
  before = WalWrites();
  ASSERT_EQ(Exec(db, "INSERT INTO t(v) VALUES (hex(randomblob(250)))"), SQLITE_OK);
  EXPECT_EQ(WalWrites().appends, before.appends);
  sqlite3_close(other);
  ASSERT_EQ(sqlite3_close(db), SQLITE_OK);
  ASSERT_EQ(sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  EXPECT_EQ(Count(db), rows + 1);
  sqlite3_close(db);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace onlined::store
