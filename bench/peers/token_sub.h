#pragma once
// The `sub` claim of a token, as the bench's peers read it: base64url of the
// middle part, then JSON. No signature check (the peers measure the transport
// and the presence map; onlined verifies every token). Shared by the Beast and
// libwebsockets peers.
#include <boost/json.hpp>
#include <cstdint>
#include <string>
#include <string_view>

namespace bench_peers {

inline std::string SubOf(std::string_view token) {
  size_t a = token.find('.');
  size_t b = token.find('.', a + 1);
  if (a == std::string_view::npos || b == std::string_view::npos) return {};
  std::string_view mid = token.substr(a + 1, b - a - 1);
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : mid) {
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '-'             ? 62
            : c == '_'             ? 63
                                   : -1;
    if (v < 0) return {};
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(out, ec);
  if (ec || !v.is_object()) return {};
  const boost::json::value* sub = v.as_object().if_contains("sub");
  return sub != nullptr && sub->is_string() ? std::string(sub->as_string()) : std::string();
}

}  // namespace bench_peers
