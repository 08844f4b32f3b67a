#include "store/testing/test_engine.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "store/postgres/postgres_db.h"
#include "store/sqlite/sqlite_db.h"

namespace onlined::store::testing {

bool PostgresRequested() {
  const char* e = std::getenv("TEST_POSTGRES_DIR");
  return e != nullptr && *e != '\0';
}

std::string NewPostgresDatabase() {
  const char* dir = std::getenv("TEST_POSTGRES_DIR");
  if (dir == nullptr) throw std::runtime_error("no test PostgreSQL: TEST_POSTGRES_DIR is not set");
  std::ifstream f(std::string(dir) + "/url");
  std::string base;
  if (!(f >> base)) {
    throw std::runtime_error(std::string("no test PostgreSQL in ") + dir +
                             " (scripts/test-postgres.sh start DIR)");
  }
  static std::atomic<int> counter{0};
  const std::string name =
      "t_" + std::to_string(getpid()) + "_" + std::to_string(counter.fetch_add(1));
  PGconn* c = PQconnectdb((base + "/postgres").c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("test PostgreSQL: " + msg);
  }
  PGresult* r = PQexec(c, ("CREATE DATABASE " + name).c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  std::string msg = PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(c);
  if (!ok) throw std::runtime_error("test PostgreSQL: CREATE DATABASE: " + msg);
  return base + "/" + name;
}

TestEngine::TestEngine() {
  if (PostgresRequested()) {
    url_ = NewPostgresDatabase();
  } else {
    char tmpl[] = "/tmp/onlined-store-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
}

TestEngine::~TestEngine() {
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::unique_ptr<Db> TestEngine::Open(bool writer) const {
  if (postgres()) return OpenPostgres(url_, writer);
  return OpenSqlite(dir_, writer);
}

}  // namespace onlined::store::testing
