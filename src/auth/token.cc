#include "auth/token.h"

#include <jwt.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <stdexcept>

#include "proto/ids.h"

namespace onlined::auth {

namespace {

struct JwtFree {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtFree>;

bool Fail(TokenError& err, std::string_view code, std::string msg) {
  err.code = code;
  err.message = std::move(msg);
  return false;
}

constexpr long kMaxTimeS = 253'402'300'799;  // 9999-12-31T23:59:59Z

}  // namespace

std::string_view RoleName(Role r) {
  switch (r) {
    case Role::kUser:
      return "user";
    case Role::kManager:
      return "manager";
    case Role::kServer:
      return "server";
  }
  return "user";
}

bool ParseRole(std::string_view s, Role& out) {
  if (s == "user")
    out = Role::kUser;
  else if (s == "manager")
    out = Role::kManager;
  else if (s == "server")
    out = Role::kServer;
  else
    return false;
  return true;
}

uint64_t KeyFingerprint(std::string_view kid, std::string_view secret) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
  };
  mix(kid);
  mix(std::string_view("\0", 1));
  mix(secret);
  return h == 0 ? 1 : h;
}

bool Verify(std::string_view token, const KeyLookup& keys, int64_t now_s, Claims& out,
            TokenError& err, int64_t leeway_s) {
  if (token.empty() || token.size() > 4096)
    return Fail(err, "bad_token", "token is missing or too long");
  std::string tok(token);
  // First pass reads the claims without checking the signature, only to
  // learn the channel; nothing from it is trusted until the second pass.
  jwt_t* raw = nullptr;
  if (jwt_decode(&raw, tok.c_str(), nullptr, 0) != 0 || raw == nullptr) {
    return Fail(err, "bad_token", "token is not a well-formed JWT");
  }
  JwtPtr unverified(raw);
  const char* ch = jwt_get_grant(unverified.get(), "ch");
  if (ch == nullptr) return Fail(err, "bad_token", "token has no 'ch' claim");
  const char* kid = jwt_get_header(unverified.get(), "kid");
  KeyRef key = keys(ch, kid, err);
  if (key.secret == nullptr) {
    if (err.code.empty()) return Fail(err, "unknown_channel", "token names an unknown channel");
    return false;
  }
  const std::string* secret = key.secret;
  raw = nullptr;
  if (jwt_decode(&raw, tok.c_str(), reinterpret_cast<const unsigned char*>(secret->data()),
                 static_cast<int>(secret->size())) != 0 ||
      raw == nullptr) {
    return Fail(err, "bad_token", "token signature does not verify");
  }
  JwtPtr jwt(raw);
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256) return Fail(err, "bad_token", "token must be HS256");
  const char* sub = jwt_get_grant(jwt.get(), "sub");
  const char* role = jwt_get_grant(jwt.get(), "role");
  errno = 0;
  long exp = jwt_get_grant_int(jwt.get(), "exp");
  if (errno != 0 || exp <= 0) return Fail(err, "bad_token", "token has no numeric 'exp' claim");
  // Times are kept in milliseconds (exp * 1000): past year 9999 is no date.
  if (exp > kMaxTimeS) return Fail(err, "bad_token", "token 'exp' is past the year 9999");
  if (sub == nullptr || !proto::IsId(sub)) {
    return Fail(err, "bad_token", "token has no valid 'sub' claim");
  }
  if (role == nullptr || !ParseRole(role, out.role)) {
    return Fail(err, "bad_token", "token 'role' must be user, manager or server");
  }
  if (exp <= now_s) return Fail(err, "token_expired", "token has expired");
  // Optional times: absent is fine, present must be a number.
  auto optional_time = [&](const char* name, long& v) {
    errno = 0;
    v = jwt_get_grant_int(jwt.get(), name);
    if (errno == ENOENT) {
      v = 0;
      return true;
    }
    return errno == 0 && v > 0;
  };
  long nbf = 0, iat = 0;
  if (!optional_time("nbf", nbf)) return Fail(err, "bad_token", "token 'nbf' must be a number");
  if (!optional_time("iat", iat)) return Fail(err, "bad_token", "token 'iat' must be a number");
  if (nbf > now_s + leeway_s)
    return Fail(err, "token_not_yet_valid", "token is not valid yet (nbf)");
  if (iat > now_s + leeway_s) {
    return Fail(err, "token_not_yet_valid", "token was issued in the future (iat)");
  }
  out.channel = jwt_get_grant(jwt.get(), "ch");
  out.subject = sub;
  out.exp = exp;
  out.iat = iat;
  out.key = key.fingerprint;
  return true;
}

std::string Mint(const Claims& claims, std::string_view secret, std::string_view kid) {
  const int64_t iat = claims.iat;
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) throw std::runtime_error("token: jwt_new failed");
  JwtPtr jwt(raw);
  std::string role(RoleName(claims.role));
  if (jwt_add_grant(jwt.get(), "ch", claims.channel.c_str()) != 0 ||
      jwt_add_grant(jwt.get(), "sub", claims.subject.c_str()) != 0 ||
      jwt_add_grant(jwt.get(), "role", role.c_str()) != 0 ||
      jwt_add_grant_int(jwt.get(), "exp", static_cast<long>(claims.exp)) != 0 ||
      (iat != 0 && jwt_add_grant_int(jwt.get(), "iat", static_cast<long>(iat)) != 0) ||
      (!kid.empty() && jwt_add_header(jwt.get(), "kid", std::string(kid).c_str()) != 0) ||
      jwt_set_alg(jwt.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret.data()),
                  static_cast<int>(secret.size())) != 0) {
    throw std::runtime_error("token: cannot build the token");
  }
  char* s = jwt_encode_str(jwt.get());
  if (s == nullptr) throw std::runtime_error("token: cannot sign the token");
  std::string out(s);
  free(s);  // libjwt 1.10 allocates with malloc
  return out;
}

}  // namespace onlined::auth
