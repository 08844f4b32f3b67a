#pragma once
// Small helpers to write JSON text directly into a std::string: the server's
// frames are few and fixed in shape, so writing them by hand avoids building
// a DOM per frame. Strings are escaped per RFC 8259.
#include <cstdint>
#include <string>
#include <string_view>

namespace onlined::proto {

// Appends `s` as a quoted, escaped JSON string. Invalid UTF-8 bytes are
// replaced by U+FFFD so the output is always valid JSON.
void AppendJsonString(std::string& out, std::string_view s);
void AppendInt(std::string& out, int64_t v);
// Writes `v` in decimal at `p`, which has room for kMaxIntChars bytes, and
// returns the end. The same text as std::to_chars, in independent two-digit
// steps instead of one chain of divisions (a presence answer writes a
// 13-digit last_seen per user).
inline constexpr size_t kMaxIntChars = 20;
char* WriteInt(char* p, int64_t v);
// True when `c` needs no escape in a JSON string and no UTF-8 check:
// printable ASCII but '"' and '\\'.
inline bool IsPlainJsonChar(unsigned char c) {
  return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\';
}
// True when every byte of `s` is (it goes between quotes as it is).
bool IsPlainJsonString(std::string_view s);

}  // namespace onlined::proto
