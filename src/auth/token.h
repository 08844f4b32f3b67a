#pragma once
// Tokens of contract v1: JWT HS256 signed with the channel's secret, claims
// `ch` (channel id), `sub` (user or manager id), `role`, `exp` (seconds);
// `iat` and `nbf` (seconds) are checked when present (RFC 8725: a token not
// yet valid, or issued in the future, beyond a leeway is refused).
// The channel is read from the token and its secret then checks the
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
};

// Why a token was refused: `code` is the contract's error code.
struct TokenError {
  std::string_view
      code;  // "bad_token" | "token_expired" | "unknown_channel" | "token_not_yet_valid"
  std::string message;
};

// Returns the secret of a channel id, or nullptr if there is no such channel.
using SecretLookup = std::function<const std::string*(std::string_view channel)>;

// Verifies `token` at time `now_s`, allowing `leeway_s` of clock skew on
// nbf and iat (not on exp: a token is expired at its exp). On failure
// returns false and fills `err`.
// `iat` (if given) gets the token's iat, 0 if it has none.
bool Verify(std::string_view token, const SecretLookup& secrets, int64_t now_s, Claims& out,
            TokenError& err, int64_t leeway_s = 30, int64_t* iat = nullptr);

// Signs claims with `secret`, with `iat` if it is not 0. Throws
// std::runtime_error if signing fails.
std::string Mint(const Claims& claims, std::string_view secret, int64_t iat = 0);

}  // namespace onlined::auth
