#include "auth/token.h"

#include <gtest/gtest.h>

namespace onlined::auth {
namespace {

const std::string kAcme = "acme-secret-0123456789";
const std::string kOther = "other-secret-0123456789";

SecretLookup Secrets() {
  return [](std::string_view ch) -> const std::string* {
    if (ch == "acme") return &kAcme;
    if (ch == "other") return &kOther;
    return nullptr;
  };
}

TEST(Token, MintThenVerify) {
  std::string t = Mint({"acme", "u1", Role::kManager, 2000}, kAcme);
  Claims c;
  TokenError e;
  ASSERT_TRUE(Verify(t, Secrets(), 1000, c, e)) << e.message;
  EXPECT_EQ(c.channel, "acme");
  EXPECT_EQ(c.subject, "u1");
  EXPECT_EQ(c.role, Role::kManager);
  EXPECT_EQ(c.exp, 2000);
}

TEST(Token, Expired) {
  std::string t = Mint({"acme", "u1", Role::kUser, 1000}, kAcme);
  Claims c;
  TokenError e;
  EXPECT_FALSE(Verify(t, Secrets(), 1000, c, e));
  EXPECT_EQ(e.code, "token_expired");
}

TEST(Token, SignedWithAnotherChannelsSecret) {
  // Claims channel acme but signed with other's secret: refused.
  std::string t = Mint({"acme", "u1", Role::kManager, 2000}, kOther);
  Claims c;
  TokenError e;
  EXPECT_FALSE(Verify(t, Secrets(), 1000, c, e));
  EXPECT_EQ(e.code, "bad_token");
}

TEST(Token, UnknownChannelAndGarbage) {
  Claims c;
  TokenError e;
  EXPECT_FALSE(Verify(Mint({"nope", "u1", Role::kUser, 2000}, kAcme), Secrets(), 1000, c, e));
  EXPECT_EQ(e.code, "unknown_channel");
  EXPECT_FALSE(Verify("not.a.jwt", Secrets(), 1000, c, e));
  EXPECT_EQ(e.code, "bad_token");
  EXPECT_FALSE(Verify("", Secrets(), 1000, c, e));
}

TEST(Token, TamperedPayload) {
  std::string t = Mint({"acme", "u1", Role::kUser, 2000}, kAcme);
  std::string manager = Mint({"acme", "u1", Role::kManager, 2000}, kAcme);
  // Header and signature of the user token, payload of the manager token.
  size_t a = t.find('.'), b = t.rfind('.');
  size_t ma = manager.find('.'), mb = manager.rfind('.');
  std::string forged = t.substr(0, a) + manager.substr(ma, mb - ma) + t.substr(b);
  Claims c;
  TokenError e;
  EXPECT_FALSE(Verify(forged, Secrets(), 1000, c, e));
}

TEST(Token, AlgNoneIsRefused) {
  // {"alg":"none","typ":"JWT"} . {"ch":"acme","sub":"x","role":"manager","exp":9999999999} .
  std::string t =
      "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
      "eyJjaCI6ImFjbWUiLCJzdWIiOiJ4Iiwicm9sZSI6Im1hbmFnZXIiLCJleHAiOjk5OTk5OTk5OTl9.";
  Claims c;
  TokenError e;
  EXPECT_FALSE(Verify(t, Secrets(), 1000, c, e));
}

}  // namespace
}  // namespace onlined::auth
