#pragma once
// The engine a test runs against (tests only). SQLite in a fresh temporary
// directory by default; PostgreSQL when TEST_POSTGRES_DIR names the
// directory of a test server (scripts/test-postgres.sh; ctest starts one as
// the fixture `postgres`), each TestEngine in a fresh database there.
// The same tests run on both engines: ctest registers them twice.
#include <memory>
#include <string>

#include "store/db.h"

namespace onlined::store::testing {

// True when the tests should use PostgreSQL (TEST_POSTGRES_DIR is set).
bool PostgresRequested();

// The URL of a new, empty database on the test server (throws if there is
// none: TEST_POSTGRES_DIR unset or the server not started).
std::string NewPostgresDatabase();

// A fresh store: a temporary directory or a new database, removed (the
// directory) when it goes.
class TestEngine {
 public:
  TestEngine();
  ~TestEngine();
  TestEngine(const TestEngine&) = delete;
  TestEngine& operator=(const TestEngine&) = delete;

  std::unique_ptr<Db> Open(bool writer) const;
  bool postgres() const { return !url_.empty(); }
  const std::string& url() const { return url_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_, url_;
};

}  // namespace onlined::store::testing
