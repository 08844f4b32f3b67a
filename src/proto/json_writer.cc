#include "proto/json_writer.h"

#include <cstring>

namespace onlined::proto {

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 if it is not valid.
size_t Utf8SeqLen(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  }
  if (n == 2 && c < 0xC2) return 0;                       // overlong
  if (n == 3 && c == 0xE0 && b(i + 1) < 0xA0) return 0;   // overlong
  if (n == 3 && c == 0xED && b(i + 1) >= 0xA0) return 0;  // surrogate
  if (n == 4 && c == 0xF0 && b(i + 1) < 0x90) return 0;   // overlong
  if (n == 4 && (c > 0xF4 || (c == 0xF4 && b(i + 1) >= 0x90))) return 0;
  return n;
}

}  // namespace

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (size_t i = 0; i < s.size();) {
    // A run of characters that need no escape goes out in one append.
    size_t j = i;
    while (j < s.size()) {
      unsigned char p = static_cast<unsigned char>(s[j]);
      if (p < 0x20 || p >= 0x80 || p == '"' || p == '\\') break;
      ++j;
    }
    if (j > i) {
      out.append(s.data() + i, j - i);
      i = j;
      continue;
    }
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t n = Utf8SeqLen(s, i);
      if (n == 0) {
        out += "\xEF\xBF\xBD";
        ++i;
      } else {
        out.append(s.data() + i, n);
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xF]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out.push_back('"');
}

bool IsPlainJsonString(std::string_view s) {
  for (char c : s) {
    if (!IsPlainJsonChar(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

namespace {

constexpr char kPairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

char* Put2(char* p, uint32_t v) {  // v < 100, two digits
  std::memcpy(p, kPairs + 2 * v, 2);
  return p + 2;
}
char* Put4(char* p, uint32_t v) {  // v < 10^4, four digits
  return Put2(Put2(p, v / 100), v % 100);
}
char* Put8(char* p, uint32_t v) {  // v < 10^8, eight digits
  return Put4(Put4(p, v / 10000), v % 10000);
}
char* PutUpTo2(char* p, uint32_t v) {  // v < 100, no leading zero
  if (v >= 10) return Put2(p, v);
  *p = static_cast<char>('0' + v);
  return p + 1;
}
char* PutUpTo4(char* p, uint32_t v) {  // v < 10^4, no leading zero
  if (v < 100) return PutUpTo2(p, v);
  return Put2(PutUpTo2(p, v / 100), v % 100);
}
char* PutUpTo8(char* p, uint32_t v) {  // v < 10^8, no leading zero
  if (v < 10000) return PutUpTo4(p, v);
  return Put4(PutUpTo4(p, v / 10000), v % 10000);
}

}  // namespace

char* WriteInt(char* p, int64_t v) {
  uint64_t u = static_cast<uint64_t>(v);
  if (v < 0) {
    *p++ = '-';
    u = 0 - u;  // also right for INT64_MIN
  }
  constexpr uint64_t k8 = 100000000;
  if (u < k8) return PutUpTo8(p, static_cast<uint32_t>(u));
  if (u < k8 * k8) {
    p = PutUpTo8(p, static_cast<uint32_t>(u / k8));
    return Put8(p, static_cast<uint32_t>(u % k8));
  }
  // 17 to 19 digits: u / 10^16 <= 922.
  const uint64_t rest = u % (k8 * k8);
  p = PutUpTo4(p, static_cast<uint32_t>(u / (k8 * k8)));
  p = Put8(p, static_cast<uint32_t>(rest / k8));
  return Put8(p, static_cast<uint32_t>(rest % k8));
}

void AppendInt(std::string& out, int64_t v) {
  char buf[kMaxIntChars];
  out.append(buf, WriteInt(buf, v));
}

}  // namespace onlined::proto
