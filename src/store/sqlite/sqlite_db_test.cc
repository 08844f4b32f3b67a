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
// and the WAL is reused from its start instead of growing: its file never
// passes kSqliteWalMaxPages plus a commit.
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
    // 2,400 commits of 4 messages of 3,000 bytes to chats spread over the
    // table (~10 pages each): ~24,000 pages, past the WAL's most.
    constexpr int kCommits = 2400;
    int64_t n = 0;
    uintmax_t wal_most = 0;
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
    }
    const uint64_t done = SqliteCheckpoints() - checkpoints;
    // One per kSqliteCheckpointPages, one per commit for the last 1,000
    // pages before the WAL's most (~100 commits) each time it fills: a few
    // hundred at most. One per commit would be thousands.
    EXPECT_GE(done, 2U);
    EXPECT_LE(done, uint64_t{kCommits} / 6) << "checkpointed commit by commit";
    // A WAL frame is a 24-byte header and a page of 4,096 bytes, after the
    // file's 32-byte header; a commit here is under 64 pages.
    const uintmax_t bound = 32 + uintmax_t{kSqliteWalMaxPages + 64} * (24 + 4096);
    EXPECT_LE(wal_most, bound) << "the WAL was never reused from its start";
    auto last = db->GetMessage("c" + std::to_string((n - 1) % 64), (n - 1) / 64 + 1);
    ASSERT_TRUE(last);
    EXPECT_EQ(last->text.size(), 3000U);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace onlined::store
