// Schema versions on both engines (TEST_POSTGRES_DIR selects PostgreSQL):
// a newer schema than this build knows is refused, and writers starting
// together migrate once.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include <atomic>
#include <thread>
#include <vector>

#include "store/postgres/postgres_db.h"
#include "store/testing/test_engine.h"

namespace onlined::store {
namespace {

// Runs `sql` on the engine's database outside onlined (as an operator or a
// newer version would).
void Raw(const testing::TestEngine& e, const std::string& sql) {
  if (e.postgres()) {
    PGconn* c = PQconnectdb(e.url().c_str());
    ASSERT_EQ(PQstatus(c), CONNECTION_OK) << PQerrorMessage(c);
    PGresult* r = PQexec(c, sql.c_str());
    EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << PQresultErrorMessage(r);
    PQclear(r);
    PQfinish(c);
  } else {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((e.dir() + "/onlined.db").c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
}

TEST(StoreSchema, ANewerSchemaThanThisBuildKnowsIsRefused) {
  testing::TestEngine engine;
  engine.Open(true);  // migrates to this build's version
  Raw(engine, engine.postgres() ? "INSERT INTO onlined_schema(version) VALUES (999)"
                                : "PRAGMA user_version = 999");
  try {
    engine.Open(true);
    FAIL() << "opened a database with a newer schema";
  } catch (const DbError& e) {
    EXPECT_NE(std::string(e.what()).find("newer than this onlined knows"), std::string::npos)
        << e.what();
  }
}

TEST(StoreSchema, AMigratedStoreOpensAgainUnchanged) {
  testing::TestEngine engine;
  {
    auto db = engine.Open(true);
    Chat c;
    c.chat_id = "c1";
    c.channel = "acme";
    c.user_id = "ann";
    EXPECT_TRUE(db->InsertChat(c));
  }
  auto again = engine.Open(true);
  EXPECT_TRUE(again->FindChatOfUser("acme", "ann"));
}

// A chat of "acme" with a waiting notification of its first `seq` message.
Notification WaitingOf(Db& db, const std::string& chat_id, const std::string& user_id,
                       int64_t seq) {
  Chat c;
  c.chat_id = chat_id;
  c.channel = "acme";
  c.user_id = user_id;
  c.created_at = c.updated_at = 1;
  if (!db.FindChatOfUser("acme", user_id)) {
    EXPECT_TRUE(db.InsertChat(c));
  }
  Notification n;
  n.channel = "acme";
  n.user_id = user_id;
  n.chat_id = chat_id;
  n.first_seq = n.last_seq = seq;
  n.state = NotifyState::kScheduled;
  n.due_at = 1000;
  n.created_at = n.updated_at = 10;
  return n;
}

// A SQLite file put back to version 3 (the columns version 4 adds dropped).
void BackToVersion3(const testing::TestEngine& engine) {
  Raw(engine,
      "ALTER TABLE chats DROP COLUMN open_notification;"
      " ALTER TABLE chats DROP COLUMN open_last_seq;"
      " ALTER TABLE chats DROP COLUMN open_updated_at; PRAGMA user_version=3;");
}

// A manager's message to `chat_id` at `now`, which schedules an SMS.
AppendInput ManagerSend(const std::string& chat_id, int64_t now) {
  AppendInput in;
  in.channel = "acme";
  in.chat_id = chat_id;
  in.from = "manager";
  in.sender_id = "bob";
  in.text = "hello";
  in.message_id = "m" + std::to_string(now);
  in.now = now;
  in.sms_due_at = 2000;
  return in;
}

// SQLite version 4 keeps a chat's waiting notification's joins in the chat's
// row: a version 3 file's waiting notification, whose row has its joins,
// goes on taking sends after the migration.
TEST(StoreSchema, AVersion3FilesWaitingNotificationKeepsTakingSends) {
  testing::TestEngine engine;
  if (engine.postgres()) GTEST_SKIP() << "a SQLite migration";
  int64_t id = 0;
  {
    auto db = engine.Open(true);
    Notification n = WaitingOf(*db, "c1", "ann", 1);
    Message m;
    m.chat_id = "c1";
    m.id = "m1";
    m.from = "manager";
    m.sender_id = "bob";
    m.text = "one";
    for (int64_t seq = 1; seq <= 2; ++seq) {
      m.seq = seq;
      m.created_at = 10 * seq;
      db->InsertMessage(m);
      db->UpdateChatAfterMessage("c1", seq, m.created_at, false);
    }
    id = db->InsertNotification(n);
  }
  // As version 3 left it: the join in the notification's row, none in the chat's.
  Raw(engine, "UPDATE notifications SET last_seq=2, updated_at=20");
  BackToVersion3(engine);
  auto db = engine.Open(true);
  auto n = db->GetNotification(id);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->last_seq, 2);
  EXPECT_EQ(n->updated_at, 20);
  EXPECT_EQ(db->Append(ManagerSend("c1", 30)).notification_id, id);
  n = db->GetNotification(id);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->last_seq, 3);
  EXPECT_EQ(n->updated_at, 30);
  // A newer waiting one (inserted as a test or a tool would): the older
  // keeps what it took, in its own row now, and the newer takes the sends.
  Notification newer = *n;
  newer.first_seq = newer.last_seq = 4;
  newer.created_at = newer.updated_at = 35;
  const int64_t newer_id = db->InsertNotification(newer);
  EXPECT_EQ(db->Append(ManagerSend("c1", 40)).notification_id, newer_id);
  EXPECT_EQ(db->Append(ManagerSend("c1", 50)).notification_id, newer_id);
  n = db->GetNotification(id);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->last_seq, 3);
  EXPECT_EQ(n->updated_at, 30);
  n = db->GetNotification(newer_id);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->last_seq, 5);
  EXPECT_EQ(n->updated_at, 50);
  // Changed by hand (cancelled in the file): the next send starts a new one,
  // and the cancelled one keeps its joins and the edit's later time.
  Raw(engine, "UPDATE notifications SET state='cancelled', updated_at=99 WHERE id=" +
                  std::to_string(newer_id));
  const int64_t third = db->Append(ManagerSend("c1", 60)).notification_id;
  EXPECT_NE(third, newer_id);
  EXPECT_NE(third, id);
  n = db->GetNotification(newer_id);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->last_seq, 5);
  EXPECT_EQ(n->updated_at, 99);
}

// The migration names a chat's newest notification only if it waits: an older
// one waiting again behind a newer one being sent takes no sends.
TEST(StoreSchema, AVersion3FilesOlderWaitingNotificationTakesNoSends) {
  testing::TestEngine engine;
  if (engine.postgres()) GTEST_SKIP() << "a SQLite migration";
  int64_t older = 0, newer = 0;
  {
    auto db = engine.Open(true);
    older = db->InsertNotification(WaitingOf(*db, "c2", "eve", 1));
    Notification n = WaitingOf(*db, "c2", "eve", 2);
    n.state = NotifyState::kSending;
    newer = db->InsertNotification(n);
  }
  BackToVersion3(engine);
  auto db = engine.Open(true);
  const int64_t got = db->Append(ManagerSend("c2", 30)).notification_id;
  EXPECT_NE(got, older);
  EXPECT_NE(got, newer);
  auto n = db->GetNotification(older);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->last_seq, 1);
  n = db->GetNotification(newer);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->last_seq, 2);
}

// Over a file of many chats the migration names a notification only where the
// chat's newest waits: no chat takes another's, and a chat whose newest is done
// (or that has none) starts a new one with its next send.
TEST(StoreSchema, AVersion3FileOfManyChatsNamesOnlyEachChatsWaitingNewest) {
  testing::TestEngine engine;
  if (engine.postgres()) GTEST_SKIP() << "a SQLite migration";
  int64_t waiting_a = 0, waiting_b = 0, sent = 0, cancelled = 0;
  {
    auto db = engine.Open(true);
    // Each chat's messages up to its notification's last (or `seq`).
    auto of = [&](const std::string& chat, const std::string& user, int64_t seq) {
      Notification n = WaitingOf(*db, chat, user, seq);
      db->UpdateChatAfterMessage(chat, seq, 10, false);
      return n;
    };
    waiting_a = db->InsertNotification(of("ca", "ann", 1));
    Notification done = of("cb", "bea", 1);
    done.state = NotifyState::kSent;
    sent = db->InsertNotification(done);
    waiting_b = db->InsertNotification(of("cc", "cid", 7));
    Notification off = of("cd", "dee", 3);
    off.state = NotifyState::kCancelled;
    cancelled = db->InsertNotification(off);
    of("ce", "eli", 1);  // a chat with no notification
  }
  BackToVersion3(engine);
  auto db = engine.Open(true);
  EXPECT_EQ(db->Append(ManagerSend("ca", 30)).notification_id, waiting_a);
  EXPECT_EQ(db->Append(ManagerSend("cc", 31)).notification_id, waiting_b);
  const int64_t old_ids[] = {waiting_a, waiting_b, sent, cancelled};
  int64_t now = 40;
  for (const char* chat : {"cb", "cd", "ce"}) {
    const AppendResult r = db->Append(ManagerSend(chat, now++));
    EXPECT_EQ(r.status, AppendStatus::kCreated) << chat;
    const int64_t got = r.notification_id;
    EXPECT_NE(got, 0) << chat;
    for (int64_t old : old_ids) EXPECT_NE(got, old) << chat;
  }
  auto a = db->GetNotification(waiting_a);
  auto b = db->GetNotification(waiting_b);
  auto s = db->GetNotification(sent);
  auto c = db->GetNotification(cancelled);
  ASSERT_TRUE(a && b && s && c);
  EXPECT_EQ(a->last_seq, 2);
  EXPECT_EQ(a->updated_at, 30);
  EXPECT_EQ(b->last_seq, 8);
  EXPECT_EQ(b->updated_at, 31);
  EXPECT_EQ(s->last_seq, 1);
  EXPECT_EQ(c->last_seq, 3);
}

// PostgreSQL: nodes starting at once do not race (advisory lock).
TEST(StoreSchema, WritersOpeningTogetherMigrateOnce) {
  testing::TestEngine engine;
  if (!engine.postgres()) GTEST_SKIP() << "one writer per SQLite file";
  constexpr int kN = 4;
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < kN; ++i) {
    ts.emplace_back([&] {
      try {
        engine.Open(true);
        ++ok;
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), kN);
  PGconn* c = PQconnectdb(engine.url().c_str());
  PGresult* r = PQexec(c, "SELECT count(*), max(version) FROM onlined_schema");
  ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
  EXPECT_EQ(std::stoi(PQgetvalue(r, 0, 0)), PostgresSchemaVersion());
  EXPECT_EQ(std::stoi(PQgetvalue(r, 0, 1)), PostgresSchemaVersion());
  PQclear(r);
  PQfinish(c);
}

}  // namespace
}  // namespace onlined::store
