// The SQLite engine's own machinery (store/sqlite/sqlite_db.cc): the
// checkpointer that copies the WAL back into the database file while the
// writer goes on.
#include "store/sqlite/sqlite_db.h"

#include <gtest/gtest.h>
#include <stdlib.h>

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

}  // namespace
}  // namespace onlined::store
