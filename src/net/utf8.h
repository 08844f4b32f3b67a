#pragma once
// Utf8Validator: checks that bytes are well-formed UTF-8 (Unicode 15, table
// 3-7: no overlong forms, no surrogates, nothing above U+10FFFF), fed in any
// number of pieces; a character may be split across pieces (a WebSocket
// message's fragments). Pure, no allocation; a value type.
#include <cstdint>
#include <string_view>

namespace onlined::net {

class Utf8Validator {
 public:
  // Checks the next bytes. Returns false at the first byte that cannot
  // continue well-formed UTF-8; once false, always false until Reset.
  bool Feed(std::string_view s);
  // True if nothing invalid was seen and the input ends on a character
  // boundary (no sequence left open).
  bool complete() const { return !bad_ && need_ == 0; }
  void Reset() { *this = Utf8Validator(); }

 private:
  uint8_t need_ = 0;   // continuation bytes still expected
  uint8_t lo_ = 0x80;  // bounds of the next continuation byte
  uint8_t hi_ = 0xBF;
  bool bad_ = false;
};

// True if `s` is one whole, well-formed UTF-8 string.
inline bool IsUtf8(std::string_view s) {
  Utf8Validator v;
  return v.Feed(s) && v.complete();
}

}  // namespace onlined::net
