#include "auth/token.h"

#include <gtest/gtest.h>
#include <jwt.h>

#include <cstdlib>

namespace onlined::auth {
namespace {

const std::string kAcme = "acme-secret-0123456789";
const std::string kOther = "other-secret-0123456789";

// Channels with one key each, for tokens without kid.
KeyLookup Secrets() {
  return [](std::string_view ch, const char* kid, TokenError& err) -> KeyRef {
    if (kid != nullptr) {
      err = {"bad_token", "no such kid"};
      return {};
    }
    if (ch == "acme") return {&kAcme, 1};
    if (ch == "other") return {&kOther, 2};
    return {};
  };
}

// A token with an nbf claim (onlined does not mint one; other issuers do).
std::string MintWithNbf(const Claims& claims, long nbf, const std::string& secret) {
  jwt_t* j = nullptr;
  if (jwt_new(&j) != 0) return "";
  const std::string role(RoleName(claims.role));
  jwt_add_grant(j, "ch", claims.channel.c_str());
  jwt_add_grant(j, "sub", claims.subject.c_str());
  jwt_add_grant(j, "role", role.c_str());
  jwt_add_grant_int(j, "exp", static_cast<long>(claims.exp));
  jwt_add_grant_int(j, "nbf", nbf);
  jwt_set_alg(j, JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()),
              static_cast<int>(secret.size()));
  char* s = jwt_encode_str(j);
  std::string out = s != nullptr ? s : "";
  free(s);
  jwt_free(j);
  return out;
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

// Times are kept in milliseconds (exp * 1000): an exp past the year 9999
// would overflow them, and is refused.
TEST(Token, AnExpPastTheYear9999IsRefused) {
  Claims c;
  TokenError e;
  EXPECT_FALSE(Verify(Mint({"acme", "u1", Role::kServer, 10'000'000'000'000'000}, kAcme), Secrets(),
                      1000, c, e));
  EXPECT_EQ(e.code, "bad_token");
  EXPECT_TRUE(
      Verify(Mint({"acme", "u1", Role::kServer, 253'402'300'799}, kAcme), Secrets(), 1000, c, e));
}

// A subject the desk could not name in its calls (a control character) is
// refused; any other is fine.
TEST(Token, ASubjectWithAControlCharacterIsRefused) {
  Claims c;
  TokenError e;
  EXPECT_FALSE(Verify(Mint({"acme", "u\x01", Role::kUser, 2000}, kAcme), Secrets(), 1000, c, e));
  EXPECT_EQ(e.code, "bad_token");
  EXPECT_TRUE(
      Verify(Mint({"acme", "bob@x.com jr/é", Role::kUser, 2000}, kAcme), Secrets(), 1000, c, e));
  EXPECT_EQ(c.subject, "bob@x.com jr/é");
}

// RFC 8725: nbf and iat ahead of the clock beyond the leeway are refused;
// within it accepted; absent is fine.
TEST(Token, NotYetValidBeyondTheLeeway) {
  Claims c;
  TokenError e;
  std::string ahead = Mint({"acme", "u1", Role::kUser, 5000, 1031}, kAcme);  // 31 s ahead
  EXPECT_FALSE(Verify(ahead, Secrets(), 1000, c, e, 30));
  EXPECT_EQ(e.code, "token_not_yet_valid");
  std::string near = Mint({"acme", "u1", Role::kUser, 5000, 1029}, kAcme);
  EXPECT_TRUE(Verify(near, Secrets(), 1000, c, e, 30)) << e.message;
  EXPECT_EQ(c.iat, 1029);
  std::string none = Mint({"acme", "u1", Role::kUser, 5000}, kAcme);
  EXPECT_TRUE(Verify(none, Secrets(), 1000, c, e, 30)) << e.message;
  EXPECT_EQ(c.iat, 0);
}

TEST(Token, NbfIsHonoured) {
  // nbf an hour ahead of the clock.
  Claims c;
  TokenError e;
  std::string later = MintWithNbf({"acme", "u1", Role::kUser, 10000}, 4600, kAcme);
  EXPECT_FALSE(Verify(later, Secrets(), 1000, c, e, 30));
  EXPECT_EQ(e.code, "token_not_yet_valid");
  EXPECT_TRUE(Verify(later, Secrets(), 4590, c, e, 30)) << e.message;
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

// Rotation with overlap: a token names its key by kid; the lookup finds it
// among the channel's keys, and the claims carry which key it was.
TEST(Token, TheKidNamesTheKey) {
  const std::string k1 = "first-key-0123456789", k2 = "second-key-0123456789";
  KeyLookup keys = [&](std::string_view ch, const char* kid, TokenError& err) -> KeyRef {
    if (ch != "acme") return {};
    if (kid == nullptr) {
      err = {"bad_token", "token has no kid and this channel has several keys"};
      return {};
    }
    if (std::string_view(kid) == "k1") return {&k1, KeyFingerprint("k1", k1)};
    if (std::string_view(kid) == "k2") return {&k2, KeyFingerprint("k2", k2)};
    err = {"bad_token", "token's kid names no key of this channel"};
    return {};
  };
  Claims c;
  TokenError e;
  EXPECT_TRUE(Verify(Mint({"acme", "u1", Role::kUser, 2000}, k1, "k1"), keys, 1000, c, e));
  EXPECT_EQ(c.key, KeyFingerprint("k1", k1));
  EXPECT_TRUE(Verify(Mint({"acme", "u1", Role::kUser, 2000}, k2, "k2"), keys, 1000, c, e));
  EXPECT_EQ(c.key, KeyFingerprint("k2", k2));
  // Signed by k1 but claiming k2: the signature does not verify.
  EXPECT_FALSE(Verify(Mint({"acme", "u1", Role::kUser, 2000}, k1, "k2"), keys, 1000, c, e));
  EXPECT_EQ(e.code, "bad_token");
  e = {};
  EXPECT_FALSE(Verify(Mint({"acme", "u1", Role::kUser, 2000}, k1, "k9"), keys, 1000, c, e));
  EXPECT_EQ(e.code, "bad_token");
  EXPECT_NE(e.message.find("kid"), std::string::npos) << e.message;
  e = {};
  EXPECT_FALSE(Verify(Mint({"acme", "u1", Role::kUser, 2000}, k1), keys, 1000, c, e));
  EXPECT_EQ(e.code, "bad_token");
  EXPECT_NE(KeyFingerprint("k1", k1), KeyFingerprint("k2", k1));
  EXPECT_NE(KeyFingerprint("k1", k1), KeyFingerprint("k1", k2));
}

}  // namespace
}  // namespace onlined::auth
