// The WebSocket layer at the byte level: what a browser or a library might
// send that a high-level client cannot produce on demand.
#include <gtest/gtest.h>

#include "harness.h"

namespace onlined::testing {
namespace {

std::string Hello(const std::string& user) {
  return R"({"type":"hello","token":")" + MintToken("user", user) + "\"}";
}

TEST(Protocol, HandshakeAnswersTheKey) {
  ServerProcess s;
  std::string out = RawExchange(s.port(), UpgradeRequest(), 300ms);
  EXPECT_EQ(out.rfind("HTTP/1.1 101", 0), 0u) << out;
  // RFC 6455 section 1.3's example key and its accept value.
  EXPECT_NE(out.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), std::string::npos) << out;
}

TEST(Protocol, HelloPipelinedBehindTheUpgradeIsNotLost) {
  ServerProcess s;
  std::string out = RawExchange(s.port(), UpgradeRequest() + MaskedFrame(0x81, Hello("pipelined")), 800ms);
  EXPECT_NE(out.find("\"welcome\""), std::string::npos) << out;
}

TEST(Protocol, FragmentedMessageIsAssembled) {
  ServerProcess s;
  std::string hello = Hello("frag");
  std::string bytes = UpgradeRequest() + MaskedFrame(0x01, hello.substr(0, 10)) +  // text, not fin
                      MaskedFrame(0x89, "hb") +                                     // a ping in between
                      MaskedFrame(0x80, hello.substr(10));                          // continuation, fin
  std::string out = RawExchange(s.port(), bytes, 800ms);
  EXPECT_NE(out.find("\"welcome\""), std::string::npos) << out;
  EXPECT_NE(out.find(std::string("\x8a\x02hb", 4)), std::string::npos) << "no pong for the ping";
}

TEST(Protocol, UnmaskedClientFrameIsAProtocolError) {
  ServerProcess s;
  std::string out = RawExchange(s.port(), UpgradeRequest() + MaskedFrame(0x81, Hello("x"), false), 800ms);
  // A close frame (0x88) carrying 1002 (0x03EA).
  EXPECT_NE(out.find("\x88"), std::string::npos) << "no close frame";
  EXPECT_NE(out.find("\x03\xea"), std::string::npos) << "no 1002 close";
  EXPECT_EQ(out.find("\"welcome\""), std::string::npos);
}

TEST(Protocol, EveryProtocolPingIsAnswered) {
  ServerProcess s;
  // A user whose library heartbeats with protocol-level pings, all queued
  // in one segment: each gets its pong.
  std::string bytes = UpgradeRequest() + MaskedFrame(0x81, Hello("pinger"));
  for (int i = 0; i < 6; ++i) bytes += MaskedFrame(0x89, "");
  std::string out = RawExchange(s.port(), bytes, 300ms);
  size_t pongs = 0;
  for (size_t p = out.find("\x8a"); p != std::string::npos; p = out.find("\x8a", p + 1)) ++pongs;
  EXPECT_GE(pongs, 6u);
}

TEST(Protocol, BadVersionIsRefused) {
  ServerProcess s;
  std::string req = UpgradeRequest();
  req.replace(req.find("Version: 13"), 11, "Version: 8");
  std::string out = RawExchange(s.port(), req, 500ms);
  EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << out;
}

}  // namespace
}  // namespace onlined::testing
