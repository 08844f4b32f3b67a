// The SQLite engine's own machinery (store/sqlite/sqlite_db.cc): the
// checkpointer that copies the WAL back into the database file while the
// writer goes on.
#include "store/sqlite/sqlite_db.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

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

}  // namespace
}  // namespace onlined::store
