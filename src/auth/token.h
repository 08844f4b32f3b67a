#pragma once
// Tokens of contract v1: JWT HS256 signed with the channel's secret, claims
// `ch` (channel id), `sub` (user or manager id), `role`, `exp` (seconds).
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
  std::string_view code;  // "bad_token" | "token_expired" | "unknown_channel"
  std::string message;
};

// Returns the secret of a channel id, or nullptr if there is no such channel.
using SecretLookup = std::function<const std::string*(std::string_view channel)>;

// Verifies `token` at time `now_s`. On failure returns false and fills `err`.
bool Verify(std::string_view token, const SecretLookup& secrets, int64_t now_s, Claims& out,
            TokenError& err);

// Signs claims with `secret`. Throws std::runtime_error if signing fails.
std::string Mint(const Claims& claims, std::string_view secret);

}  // namespace onlined::auth
