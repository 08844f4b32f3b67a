// The contract's rule for an id (a user's, a chat's, a client_msg_id, a
// token's `sub`): docs/protocol.md. Header-only: the token check, the frame
// parser and the HTTP API share it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>

namespace onlined::proto {

inline constexpr size_t kMaxIdBytes = 128;

// A control character (C0, DEL) in `s`.
inline bool HasControlChar(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// 1 to kMaxIdBytes bytes without a control character. Bytes that did not
// come through a JSON parser must also be checked for UTF-8 by the caller.
inline bool IsId(std::string_view s) {
  return !s.empty() && s.size() <= kMaxIdBytes && !HasControlChar(s);
}

}  // namespace onlined::proto
