// WsReader: RFC 6455 framing, read side, without a socket.
#include "net/ws_reader.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace onlined::net {
namespace {

// A client frame: masked, with the shortest length encoding unless `len64`.
std::string Frame(uint8_t first, std::string_view payload, bool len64 = false,
                  std::optional<uint64_t> claimed = std::nullopt) {
  std::string f;
  f.push_back(static_cast<char>(first));
  uint64_t n = claimed.value_or(payload.size());
  if (n < 126 && !len64) {
    f.push_back(static_cast<char>(0x80 | n));
  } else if (n < 65536 && !len64) {
    f.push_back(static_cast<char>(0x80 | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n));
  } else {
    f.push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>(n >> (8 * i)));
  }
  const char mask[4] = {0x12, 0x34, 0x56, 0x78};
  f.append(mask, 4);
  for (size_t i = 0; i < payload.size(); ++i)
    f.push_back(static_cast<char>(payload[i] ^ mask[i & 3]));
  return f;
}

struct Recorder : WsReader::Sink {
  std::vector<std::string> events;
  bool OnMessage(bool text, std::string_view p) override {
    events.push_back((text ? "text:" : "binary:") + std::string(p));
    return true;
  }
  bool OnPing(std::string_view p) override {
    events.push_back("ping:" + std::string(p));
    return true;
  }
  bool OnPong() override {
    events.push_back("pong");
    return true;
  }
  bool OnClose(uint16_t code, std::string_view reason) override {
    events.push_back("close:" + std::to_string(code) + ":" + std::string(reason));
    return true;
  }
};

// Feeds `bytes` in pieces of `step` (0: all at once). Returns the error code (0: none).
uint16_t FeedAll(WsReader& r, Recorder& rec, std::string bytes, size_t step = 0) {
  if (step == 0) step = bytes.size() ? bytes.size() : 1;
  for (size_t i = 0; i < bytes.size(); i += step) {
    size_t n = std::min(step, bytes.size() - i);
    if (!r.Feed(bytes.data() + i, n, rec)) return r.error_code();
  }
  return 0;
}

TEST(WsReader, WrappingContinuationLengthIsRefusedNotTrusted) {
  // The pre-auth crash: a 10-byte fragment, then a continuation whose 64-bit
  // length is 2^64 - 10 and no payload (len + message size wrapped to 0).
  WsReader r(64 * 1024);
  Recorder rec;
  std::string bytes = Frame(0x01, "0123456789") + Frame(0x80, "", true, ~uint64_t{0} - 9);
  EXPECT_EQ(FeedAll(r, rec, bytes), 1002);  // top bit set (5.2)
  EXPECT_TRUE(rec.events.empty());
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(WsReader, HugeLengthWithoutTopBitIsTooBig) {
  WsReader r(64 * 1024);
  Recorder rec;
  std::string bytes = Frame(0x01, "0123456789") + Frame(0x80, "", true, (uint64_t{1} << 63) - 1);
  EXPECT_EQ(FeedAll(r, rec, bytes), 1009);
  WsReader r2(64 * 1024);
  EXPECT_EQ(FeedAll(r2, rec, Frame(0x81, "", true, uint64_t{64} * 1024 + 1)), 1009);
  // Refused from the header alone: no payload needed, none kept.
  EXPECT_EQ(r2.buffered(), 0u);
}

TEST(WsReader, MessageLimitCountsFragmentsTogether) {
  WsReader r(100);
  Recorder rec;
  std::string a(60, 'a');
  EXPECT_EQ(FeedAll(r, rec, Frame(0x01, a) + Frame(0x80, a)), 1009);
  WsReader ok(120);
  Recorder rec2;
  EXPECT_EQ(FeedAll(ok, rec2, Frame(0x01, a) + Frame(0x80, a)), 0);
  ASSERT_EQ(rec2.events.size(), 1u);
  EXPECT_EQ(rec2.events[0], "text:" + a + a);
}

TEST(WsReader, SameEventsWhateverTheSplit) {
  std::string bytes = Frame(0x81, "hello") + Frame(0x01, "fra") + Frame(0x89, "p") +
                      Frame(0x00, "gme") + Frame(0x80, "nted") +
                      Frame(0x82, std::string(300, 'b')) + Frame(0x8A, "") +
                      Frame(0x81, std::string(70000, 'x')) +
                      Frame(0x88,
                            "\x03\xe8"
                            "bye");
  Recorder whole;
  WsReader r0(128 * 1024);
  ASSERT_EQ(FeedAll(r0, whole, bytes), 0);
  ASSERT_EQ(whole.events.size(), 7u);
  EXPECT_EQ(whole.events[1], "ping:p");  // control frames may interleave (5.4)
  EXPECT_EQ(whole.events[2], "text:fragmented");
  EXPECT_EQ(whole.events[6], "close:1000:bye");
  for (size_t step : {1, 2, 3, 7, 13, 127, 4096}) {
    Recorder rec;
    WsReader r(128 * 1024);
    ASSERT_EQ(FeedAll(r, rec, bytes, step), 0) << step;
    EXPECT_EQ(rec.events, whole.events) << step;
    EXPECT_EQ(r.buffered(), 0u);
  }
}

TEST(WsReader, HoldsAtMostOneFrame) {
  WsReader r(1000);
  Recorder rec;
  std::string f = Frame(0x81, std::string(1000, 'x'));
  ASSERT_EQ(FeedAll(r, rec, f.substr(0, f.size() - 1)), 0);
  EXPECT_LE(r.buffered(), 14u + 1000u);
  ASSERT_EQ(FeedAll(r, rec, f.substr(f.size() - 1)), 0);
  EXPECT_EQ(rec.events.size(), 1u);
  EXPECT_EQ(r.buffered(), 0u);
}

// A large frame that arrives in small reads costs time linear in its size:
// each read is appended to what is held, not copied with it into a new
// buffer (4 MiB in 64-byte reads copied ~128 GiB that way: minutes).
TEST(WsReader, AFrameInManySmallReadsIsNotCopiedPerRead) {
  const size_t size = 4u << 20;
  WsReader r(size);
  Recorder rec;
  std::string f = Frame(0x82, std::string(size, 'y'));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(FeedAll(r, rec, f, 64), 0);
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_EQ(rec.events.size(), 1u);
  EXPECT_EQ(rec.events[0].size(), std::string("binary:").size() + size);
  EXPECT_EQ(r.buffered(), 0u);
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST(WsReader, FramingErrors) {
  struct Case {
    const char* what;
    std::string bytes;
  } cases[] = {
      {"RSV1 (5.2)", Frame(0xC1, "x")},
      {"RSV2", Frame(0xA1, "x")},
      {"RSV3", Frame(0x91, "x")},
      {"opcode 3 (5.2)", Frame(0x83, "x")},
      {"opcode 7", Frame(0x87, "x")},
      {"opcode 0xB", Frame(0x8B, "x")},
      {"opcode 0xF", Frame(0x8F, "x")},
      {"fragmented ping (5.5)", Frame(0x09, "x")},
      {"ping over 125 bytes (5.5)", Frame(0x89, std::string(126, 'p'))},
      {"continuation first (5.4)", Frame(0x80, "x")},
      {"text inside a fragmented message (5.4)", Frame(0x01, "a") + Frame(0x81, "b")},
      {"unmasked (5.1)", std::string("\x81\x01x", 3)},
  };
  for (const Case& c : cases) {
    WsReader r(1024);
    Recorder rec;
    EXPECT_EQ(FeedAll(r, rec, c.bytes), 1002) << c.what;
    std::string more = Frame(0x81, "after");
    EXPECT_FALSE(r.Feed(more.data(), more.size(), rec))
        << c.what << ": refuses input after an error";
  }
}

TEST(WsReader, TextMustBeUtf8) {
  struct Case {
    const char* what;
    std::string bytes;
    uint16_t want;
  } cases[] = {
      {"valid 4-byte char", Frame(0x81, "\xf0\x9f\x98\x80"), 0},
      {"char split across fragments", Frame(0x01, "\xf0\x9f") + Frame(0x80, "\x98\x80"), 0},
      {"lone continuation", Frame(0x81, "\x80"), 1007},
      {"overlong '/'", Frame(0x81, "\xc0\xaf"), 1007},
      {"overlong 3-byte", Frame(0x81, "\xe0\x80\xaf"), 1007},
      {"surrogate", Frame(0x81, "\xed\xa0\x80"), 1007},
      {"above U+10FFFF", Frame(0x81, "\xf4\x90\x80\x80"), 1007},
      {"0xFF", Frame(0x81, "a\xff"), 1007},
      {"truncated at the end", Frame(0x81, "\xe2\x82"), 1007},
      {"truncated at the last fragment", Frame(0x01, "ok") + Frame(0x80, "\xe2\x82"), 1007},
      {"binary is not checked", Frame(0x82, "\xff\xfe"), 0},
  };
  for (const Case& c : cases) {
    WsReader r(1024);
    Recorder rec;
    EXPECT_EQ(FeedAll(r, rec, c.bytes), c.want) << c.what;
  }
}

TEST(WsReader, InvalidUtf8FailsAtTheFragmentNotAtTheEnd) {
  // 6.4 of the Autobahn suite: fail fast, before the message is complete.
  WsReader r(1024);
  Recorder rec;
  std::string first = Frame(0x01, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5");
  std::string bad = Frame(0x00, "\xf4\x90\x80\x80");
  ASSERT_TRUE(r.Feed(first.data(), first.size(), rec));
  EXPECT_FALSE(r.Feed(bad.data(), bad.size(), rec));
  EXPECT_EQ(r.error_code(), 1007);
  // And at a fragment border: the lead byte ends one fragment, a bad
  // continuation starts the next.
  WsReader r2(1024);
  EXPECT_EQ(FeedAll(r2, rec, Frame(0x01, "a\xf4") + Frame(0x00, "\x90\x80\x80")), 1007);
}

TEST(WsReader, CloseFrames) {
  struct Case {
    std::string payload;
    uint16_t want;  // 0: accepted
  } cases[] = {
      {"", 0},
      {"\x03\xe8", 0},    // 1000
      {"\x03\xf3", 0},    // 1011
      {"\x03\xf5", 0},    // 1013 (try again later)
      {"\x0b\xb8", 0},    // 3000
      {"\x13\x87", 0},    // 4999
      {"\x03\xe8ok", 0},  // reason
      {"\x03", 1002},     // 1-byte body
      {std::string("\x00\x00", 2), 1002},
      {"\x03\xe7", 1002},      // 999
      {"\x03\xec", 1002},      // 1004
      {"\x03\xed", 1002},      // 1005
      {"\x03\xee", 1002},      // 1006
      {"\x03\xf7", 1002},      // 1015
      {"\x03\xf8", 1002},      // 1016
      {"\x07\xd0", 1002},      // 2000
      {"\x0b\xb7", 1002},      // 2999
      {"\x13\x88", 1002},      // 5000
      {"\xff\xff", 1002},      // 65535
      {"\x03\xe8\xff", 1002},  // reason not UTF-8
  };
  for (const Case& c : cases) {
    WsReader r(1024);
    Recorder rec;
    EXPECT_EQ(FeedAll(r, rec, Frame(0x88, c.payload)), c.want)
        << ::testing::PrintToString(c.payload);
    if (c.want == 0) {
      EXPECT_EQ(rec.events.size(), 1u);
    }
  }
}

TEST(WsReader, StopsWhenTheSinkSaysSo) {
  struct Stopper : Recorder {
    bool OnMessage(bool text, std::string_view p) override {
      Recorder::OnMessage(text, p);
      return false;
    }
  } rec;
  WsReader r(1024);
  std::string bytes = Frame(0x81, "one") + Frame(0x81, "two");
  EXPECT_TRUE(r.Feed(bytes.data(), bytes.size(), rec));
  EXPECT_EQ(rec.events.size(), 1u);
}

TEST(WebSocketKey, SixteenBytesOfBase64) {
  EXPECT_TRUE(ValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQ=="));  // RFC 6455 1.3
  EXPECT_FALSE(ValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQ="));
  EXPECT_FALSE(ValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQ==="));
  EXPECT_FALSE(ValidWebSocketKey("dGhlIHNhbXBsZSBub25jZ!=="));
  EXPECT_FALSE(ValidWebSocketKey("dGhlIHNhbXBsZSBub25jZQAA"));  // 18 bytes, no padding
  EXPECT_FALSE(ValidWebSocketKey("dGhlIHNhbXBsZSBub25jZR=="));  // stray bits in the last digit
  EXPECT_FALSE(ValidWebSocketKey("                        "));
}

TEST(Utf8, Pieces) {
  Utf8Validator v;
  EXPECT_TRUE(v.Feed("\xe2"));
  EXPECT_FALSE(v.complete());
  EXPECT_TRUE(v.Feed("\x82"));
  EXPECT_TRUE(v.Feed("\xac"));  // U+20AC
  EXPECT_TRUE(v.complete());
  EXPECT_FALSE(v.Feed("\xc1\x81"));
  EXPECT_FALSE(v.Feed("a"));  // sticks
  EXPECT_TRUE(IsUtf8("plain ascii that is longer than eight bytes"));
  EXPECT_FALSE(IsUtf8("plain ascii that is longer than eight \x80 bytes"));
}

}  // namespace
}  // namespace onlined::net
