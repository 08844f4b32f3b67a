#pragma once
// Tokens of contract v1: JWT HS256 signed with the channel's secret, claims
// `ch` (channel id), `sub` (user or manager id), `role`, `exp` (seconds);
// `iat` and `nbf` (seconds) are checked when present (RFC 8725: a token not
// yet valid, or issued in the future, beyond a leeway is refused).
// The channel is read from the token and its key (the one its `kid` header
// names, or the channel's key for tokens without one) then checks the
// signature, so a token can never name a channel it was not signed for.
// Thread-safe; allocation and a JSON parse per call (hello and HTTP auth
// only, never per heartbeat).
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace onlined::auth {

enum class Role { kUser, kManager, kServer };

std::string_view RoleName(Role r);
// Parses "user" | "manager" | "server"; false otherwise.
bool ParseRole(std::string_view s, Role& out);

struct Claims {
  std::string channel;
  std::string subject;
  Role role = Role::kUser;
  int64_t exp = 0;  // seconds since the epoch
  int64_t iat = 0;  // seconds since the epoch; 0 if the token has none
  // Which of the channel's keys signed it (the lookup's fingerprint, see
  // KeyLookup); 0 before verification.
  uint64_t key = 0;
};

// Why a token was refused: `code` is the contract's error code.
struct TokenError {
  std::string_view
      code;  // "bad_token" | "token_expired" | "unknown_channel" | "token_not_yet_valid" | ...
  std::string message;
};

// A channel's key as a lookup finds it: its secret and a fingerprint that
// names it (a session keeps the fingerprint, not the secret).
struct KeyRef {
  const std::string* secret = nullptr;
  uint64_t fingerprint = 0;
};

// Finds the key of `channel` that `kid` names (nullptr: the token has no
// kid). Returns a null secret with `err` filled when there is none: the
// channel is unknown, or has no such key.
using KeyLookup = std::function<KeyRef(std::string_view channel, const char* kid, TokenError& err)>;

// Verifies `token` at time `now_s`, allowing `leeway_s` of clock skew on
// nbf and iat (not on exp: a token is expired at its exp). On failure
// returns false and fills `err`.
bool Verify(std::string_view token, const KeyLookup& keys, int64_t now_s, Claims& out,
            TokenError& err, int64_t leeway_s = 30);

// Signs claims with `secret`, with `claims.iat` if it is not 0 and a `kid`
// header if `kid` is not empty. Throws std::runtime_error if signing fails.
std::string Mint(const Claims& claims, std::string_view secret, std::string_view kid = {});

// The fingerprint of a key: a 64-bit hash of its kid and secret, never 0.
uint64_t KeyFingerprint(std::string_view kid, std::string_view secret);

}  // namespace onlined::auth
