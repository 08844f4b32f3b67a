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
