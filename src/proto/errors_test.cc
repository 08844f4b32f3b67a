// The error table: one row per code, in enum order, and documented.
#include "proto/errors.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace onlined::proto {
namespace {

TEST(Errors, OneRowPerErrorInEnumOrder) {
  std::set<std::string_view> codes;
  size_t i = 0;
  for (const ErrorInfo& row : AllErrors()) {
    EXPECT_EQ(static_cast<size_t>(row.error), i++) << row.code;
    EXPECT_TRUE(codes.insert(row.code).second) << row.code << " twice";
    EXPECT_EQ(FromCode(row.code), row.error);
  }
  EXPECT_EQ(FromCode("no_such_code"), Error::kOther);
}

TEST(Errors, DocsListEveryCodeWithItsStatus) {
  std::ifstream f(std::string(ONLINED_SOURCE_DIR) + "/docs/protocol.md");
  ASSERT_TRUE(f) << "docs/protocol.md";
  std::stringstream ss;
  ss << f.rdbuf();
  std::string doc = ss.str();
  size_t section = doc.find("## Error codes");
  ASSERT_NE(section, std::string::npos);
  doc = doc.substr(section);
  for (const ErrorInfo& row : AllErrors()) {
    std::string cell = "| `" + std::string(row.code) + "` | " +
                       (row.http_status ? std::to_string(row.http_status) : std::string("—")) +
                       " |";
    EXPECT_NE(doc.find(cell), std::string::npos) << "docs/protocol.md lacks the row: " << cell;
  }
}

}  // namespace
}  // namespace onlined::proto
