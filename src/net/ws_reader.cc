#include "net/ws_reader.h"

#include <cstring>

namespace onlined::net {

namespace {

constexpr uint8_t kOpCont = 0x0, kOpText = 0x1, kOpBinary = 0x2, kOpClose = 0x8, kOpPing = 0x9,
                  kOpPong = 0xA;

// Unmasks `n` bytes in place (5.3).
void Unmask(char* p, size_t n, const uint8_t mask[4]) {
  uint32_t m32;
  std::memcpy(&m32, mask, 4);
  uint64_t m64 = (static_cast<uint64_t>(m32) << 32) | m32;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    v ^= m64;
    std::memcpy(p + i, &v, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<char>(p[i] ^ mask[i & 3]);
}

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

bool ValidWebSocketKey(std::string_view key) {
  // 16 bytes are 22 base64 digits and "==" (the last digit carries 2 bits).
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  for (size_t i = 0; i < 22; ++i) {
    if (Base64Value(key[i]) < 0) return false;
  }
  return (Base64Value(key[21]) & 0x0f) == 0;
}

bool ValidCloseCode(uint16_t code) {
  if (code >= 3000 && code <= 4999) return true;  // registered and private use
  if (code < 1000 || code > 1014) return false;   // below, or 1015-2999 (1015: TLS, never sent)
  return code != 1004 && code != 1005 && code != 1006;  // reserved, never on the wire
}

void WsReader::Clear() {
  std::string().swap(pending_);
  std::string().swap(message_);
  message_op_ = 0;
  utf8_.Reset();
}

WsReader::Step WsReader::Fail(uint16_t code, const char* why) {
  error_code_ = code;
  error_reason_ = why;
  Clear();
  return Step::kError;
}

bool WsReader::Feed(char* p, size_t n, Sink& sink) {
  if (failed()) return false;
  // What an earlier call left is parsed from a local (a sink that ends the
  // connection may Clear() the reader), and goes back into pending_ with its
  // buffer: a large frame that arrives in many small reads is appended to,
  // never copied whole again per read (that was quadratic in its size).
  std::string joined;
  if (!pending_.empty()) {
    pending_.append(p, n);
    joined.swap(pending_);
    p = joined.data();
    n = joined.size();
  }
  size_t pos = 0;
  for (;;) {
    size_t used = 0;
    switch (One(p + pos, n - pos, &used, sink)) {
      case Step::kFrame:
        pos += used;
        continue;
      case Step::kNeedMore:
        if (pos < n) {
          if (joined.empty()) {
            pending_.assign(p + pos, n - pos);  // the start of an incomplete frame, once
          } else {
            joined.erase(0, pos);  // moves the rest only when frames ahead of it were done
            pending_.swap(joined);
          }
        }
        return true;
      case Step::kStop:
        return true;
      case Step::kError:
        return false;
    }
  }
}

WsReader::Step WsReader::One(char* p, size_t n, size_t* used, Sink& sink) {
  if (n < 2) return Step::kNeedMore;
  const auto* b = reinterpret_cast<const uint8_t*>(p);
  const bool fin = b[0] & 0x80;
  const uint8_t opcode = b[0] & 0x0f;
  if (b[0] & 0x70) return Fail(1002, "reserved bits set");  // no extension was negotiated
  if ((opcode >= 0x3 && opcode <= 0x7) || opcode >= 0xB) return Fail(1002, "reserved opcode");
  if (!(b[1] & 0x80)) return Fail(1002, "client frames must be masked");
  uint64_t len = b[1] & 0x7f;
  size_t hdr = 2;
  if (len == 126) {
    if (n < 4) return Step::kNeedMore;
    len = (uint64_t{b[2]} << 8) | b[3];
    hdr = 4;
  } else if (len == 127) {
    if (n < 10) return Step::kNeedMore;
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | b[2 + i];
    if (len >> 63) return Fail(1002, "64-bit length with the most significant bit set");
    hdr = 10;
  }
  const bool control = opcode & 0x8;
  if (control) {
    if (!fin) return Fail(1002, "fragmented control frame");
    if (len > 125) return Fail(1002, "control frame over 125 bytes");
  } else {
    if (opcode == kOpCont && message_op_ == 0) return Fail(1002, "continuation without a message");
    if (opcode != kOpCont && message_op_ != 0)
      return Fail(1002, "new message inside a fragmented one");
    // message_.size() <= max_message_ always holds: no wrap-around here.
    if (len > max_message_ - message_.size()) return Fail(1009, "message too big");
  }
  // Now len <= max(125, max_message_): it fits a size_t. Compare what is
  // missing, never hdr + 4 + len.
  const size_t body = static_cast<size_t>(len);
  if (n - hdr < 4 || n - hdr - 4 < body) return Step::kNeedMore;
  uint8_t mask[4];
  std::memcpy(mask, p + hdr, 4);
  char* payload = p + hdr + 4;
  Unmask(payload, body, mask);
  *used = hdr + 4 + body;
  return Frame(fin, opcode, std::string_view(payload, body), sink);
}

WsReader::Step WsReader::Frame(bool fin, uint8_t opcode, std::string_view payload, Sink& sink) {
  auto go = [](bool more) { return more ? Step::kFrame : Step::kStop; };
  switch (opcode) {
    case kOpText:
    case kOpBinary:
      if (fin) {
        if (opcode == kOpText && !IsUtf8(payload)) return Fail(1007, "text message is not UTF-8");
        return go(sink.OnMessage(opcode == kOpText, payload));
      }
      message_op_ = opcode;
      utf8_.Reset();
      if (opcode == kOpText && !utf8_.Feed(payload)) return Fail(1007, "text message is not UTF-8");
      message_.assign(payload);
      return Step::kFrame;
    case kOpCont: {
      if (message_op_ == kOpText && !utf8_.Feed(payload))
        return Fail(1007, "text message is not UTF-8");
      message_.append(payload);
      if (!fin) return Step::kFrame;
      if (message_op_ == kOpText && !utf8_.complete())
        return Fail(1007, "text message is not UTF-8");
      std::string m;
      m.swap(message_);  // the connection keeps no buffer between messages
      const bool text = message_op_ == kOpText;
      message_op_ = 0;
      return go(sink.OnMessage(text, m));
    }
    case kOpPing:
      return go(sink.OnPing(payload));
    case kOpPong:
      return go(sink.OnPong());
    case kOpClose: {
      if (payload.empty()) return go(sink.OnClose(1005, {}));
      if (payload.size() == 1) return Fail(1002, "close frame with a 1-byte body");
      const auto code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) |
                                              static_cast<uint8_t>(payload[1]));
      if (!ValidCloseCode(code)) return Fail(1002, "close code that may not be sent");
      std::string_view reason = payload.substr(2);
      if (!IsUtf8(reason)) return Fail(1002, "close reason is not UTF-8");
      return go(sink.OnClose(code, reason));
    }
    default:
      return Fail(1002, "reserved opcode");  // unreachable: One checked it
  }
}

}  // namespace onlined::net
