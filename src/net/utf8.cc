#include "net/utf8.h"

#include <cstring>

namespace onlined::net {

bool Utf8Validator::Feed(std::string_view s) {
  if (bad_) return false;
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (need_ == 0) {
      // ASCII runs, 8 bytes at a time.
      while (i + 8 <= n) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ULL) break;
        i += 8;
      }
      if (i >= n) break;
      uint8_t b = p[i++];
      if (b < 0x80) continue;
      lo_ = 0x80;
      hi_ = 0xBF;
      if (b >= 0xC2 && b <= 0xDF) {
        need_ = 1;
      } else if (b >= 0xE0 && b <= 0xEF) {
        need_ = 2;
        if (b == 0xE0) lo_ = 0xA0;  // no overlong 3-byte forms
        if (b == 0xED) hi_ = 0x9F;  // no surrogates
      } else if (b >= 0xF0 && b <= 0xF4) {
        need_ = 3;
        if (b == 0xF0) lo_ = 0x90;  // no overlong 4-byte forms
        if (b == 0xF4) hi_ = 0x8F;  // nothing above U+10FFFF
      } else {
        bad_ = true;  // 0x80-0xC1 (continuation or overlong lead), 0xF5-0xFF
        return false;
      }
      continue;
    }
    uint8_t b = p[i++];
    if (b < lo_ || b > hi_) {
      bad_ = true;
      return false;
    }
    lo_ = 0x80;
    hi_ = 0xBF;
    --need_;
  }
  return true;
}

}  // namespace onlined::net
