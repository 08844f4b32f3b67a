#pragma once
// WsReader: the server side of RFC 6455 framing, read direction. Pure: no
// socket, no Asio, no allocation while a connection is idle. WsConn feeds it
// what read() returned; the fuzz target (fuzz/ws_reader_fuzz.cc) feeds it the
// same way, split at arbitrary points.
//
// Every length from the peer is checked before any arithmetic on it: a
// 64-bit length with its top bit set is refused (5.2), a data frame whose
// length would take the message past the limit is refused before a byte of
// its payload is kept (1009), and "is the frame complete" compares what is
// buffered against what is still missing, never a sum that could wrap.
// What is held between reads is at most one frame: header (14 bytes) plus a
// payload no larger than the limit.
//
// Text messages are UTF-8 checked as their fragments arrive (8.1): invalid
// bytes fail at once, with 1007, also when a sequence is split across
// fragments. Close frames are checked (5.5.1, 7.4): a 1-byte body, a code
// that may not be sent, or a reason that is not UTF-8 fail with 1002.
//
// Not thread-safe; owned by one connection on its loop.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "net/utf8.h"

namespace onlined::net {

class WsReader {
 public:
  // What a complete frame or message means to the connection. Each call
  // returns false to stop reading (the connection is ending): Feed then
  // returns at once and the rest of the input is dropped.
  class Sink {
   public:
    // A complete text (valid UTF-8) or binary message.
    virtual bool OnMessage(bool text, std::string_view payload) = 0;
    virtual bool OnPing(std::string_view payload) = 0;
    virtual bool OnPong() = 0;
    // A valid close frame: `code` 1005 when it carried none.
    virtual bool OnClose(uint16_t code, std::string_view reason) = 0;

   protected:
    ~Sink() = default;
  };

  explicit WsReader(size_t max_message) : max_message_(max_message) {}

  // Parses [p, p+n) after what earlier calls left incomplete, calling `sink`
  // for each complete frame. Unmasks in place (p is scratch). Returns false
  // on a protocol error: error_code() and error_reason() say which, and the
  // reader refuses all further input. Returns true otherwise (also when the
  // sink stopped it).
  bool Feed(char* p, size_t n, Sink& sink);

  bool failed() const { return error_code_ != 0; }
  // The close code for the failure: 1002 protocol, 1007 bad UTF-8, 1009 too big.
  uint16_t error_code() const { return error_code_; }
  std::string_view error_reason() const { return error_reason_; }

  // Bytes held between calls (an incomplete frame and a fragmented message).
  size_t buffered() const { return pending_.size() + message_.size(); }
  // Frees what is held (the connection ended).
  void Clear();

  void set_max_message(size_t n) { max_message_ = n; }

 private:
  enum class Step { kNeedMore, kFrame, kStop, kError };
  // Parses one frame at the start of [p, p+n). On kFrame sets *used.
  Step One(char* p, size_t n, size_t* used, Sink& sink);
  Step Fail(uint16_t code, const char* why);
  Step Frame(bool fin, uint8_t opcode, std::string_view payload, Sink& sink);

  size_t max_message_;
  std::string pending_;  // an incomplete frame
  std::string message_;  // a fragmented message being assembled
  uint8_t message_op_ = 0;
  Utf8Validator utf8_;  // of message_ so far
  uint16_t error_code_ = 0;
  const char* error_reason_ = "";
};

// True if `key` is a valid Sec-WebSocket-Key: base64 of exactly 16 bytes
// (RFC 6455 4.1, item 7).
bool ValidWebSocketKey(std::string_view key);

// True if a peer may send close code `code` (RFC 6455 7.4.1 and the IANA
// registry): 1000-1003, 1007-1014, 3000-4999.
bool ValidCloseCode(uint16_t code);

}  // namespace onlined::net
