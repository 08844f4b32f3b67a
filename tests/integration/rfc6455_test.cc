// RFC 6455 at the byte level, against the real binary, in the manner of the
// Autobahn test suite: each case names the section it checks. A case sends
// raw bytes after the upgrade and reads what the server answers until it
// closes; the server must still serve others afterwards.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "net/batch_io.h"

namespace onlined::testing {
namespace {

class Rfc6455 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new ServerProcess("", "max_frame_bytes = 65536\n"); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  // Upgrades, sends `bytes`, and returns the frames the server sent.
  static std::vector<ServerFrame> Exchange(const std::string& bytes, Ms timeout = 800ms) {
    return ParseServerFrames(RawExchange(server_->port(), UpgradeRequest() + bytes, timeout));
  }

  // The close code the server sent (0: no close frame).
  static int CloseCode(const std::vector<ServerFrame>& frames) {
    for (const ServerFrame& f : frames) {
      if (f.opcode == 0x8) return f.close_code();
    }
    return 0;
  }

  static bool HasText(const std::vector<ServerFrame>& frames, const std::string& needle) {
    for (const ServerFrame& f : frames) {
      if (f.opcode == 0x1 && f.payload.find(needle) != std::string::npos) return true;
    }
    return false;
  }

  void TearDown() override {
    // Whatever a case sent, the server still answers.
    EXPECT_EQ(Http(server_->port(), "GET", "/healthz").status, 200);
  }

  static std::string Ping() { return MaskedFrame(0x81, R"({"type":"ping"})"); }

  static ServerProcess* server_;
};
ServerProcess* Rfc6455::server_ = nullptr;

// 64-bit length of 2^64 - 10 after a 10-byte fragment: len + message size
// wrapped to 0 and passed the size check; the unmask ran over 2^64 bytes.
std::string WrappingContinuation() {
  std::string bytes = MaskedFrame(0x01, "0123456789");  // text, FIN = 0
  bytes += std::string("\x80\xff", 2);                  // continuation, FIN, masked, 64-bit length
  uint64_t len = ~uint64_t{0} - 9;
  for (int i = 7; i >= 0; --i) bytes.push_back(static_cast<char>(len >> (8 * i)));
  bytes += std::string("\x01\x02\x03\x04", 4);  // the mask; no payload
  return bytes;
}

TEST_F(Rfc6455, Sec5_2_WrappingLengthBeforeHelloIsAProtocolErrorNotACrash) {
  auto frames = Exchange(WrappingContinuation());
  EXPECT_EQ(CloseCode(frames), 1002);
  int pid = server_->pid();
  EXPECT_EQ(kill(pid, 0), 0) << "the server died";
}

TEST_F(Rfc6455, Sec5_2_LengthWithTheTopBitClearButHugeIsTooBig) {
  std::string bytes = MaskedFrame(0x01, "0123456789") + std::string("\x80\xff", 2);
  uint64_t len = (uint64_t{1} << 63) - 1;
  for (int i = 7; i >= 0; --i) bytes.push_back(static_cast<char>(len >> (8 * i)));
  bytes += std::string("\x01\x02\x03\x04", 4);
  EXPECT_EQ(CloseCode(Exchange(bytes)), 1009);
}

TEST_F(Rfc6455, Sec5_2_ReservedBitsAndOpcodes) {
  for (uint8_t first : {0xC1, 0xA1, 0x91, 0x83, 0x87, 0x8B, 0x8F}) {
    EXPECT_EQ(CloseCode(Exchange(MaskedFrame(first, "x"), 300ms)), 1002) << std::hex << int(first);
  }
}

TEST_F(Rfc6455, Sec5_1_UnmaskedFrame) {
  EXPECT_EQ(CloseCode(Exchange(MaskedFrame(0x81, R"({"type":"ping"})", false))), 1002);
}

TEST_F(Rfc6455, Sec5_4_FragmentsWithInterleavedPings) {
  std::string hello = R"({"type":"hello","token":")" + MintToken("user", "frag") + "\"}";
  std::string bytes = MaskedFrame(0x01, hello.substr(0, 5)) + MaskedFrame(0x89, "a") +
                      MaskedFrame(0x00, hello.substr(5, 5)) + MaskedFrame(0x89, "b") +
                      MaskedFrame(0x80, hello.substr(10));
  auto frames = Exchange(bytes);
  EXPECT_TRUE(HasText(frames, "\"welcome\""));
  std::vector<std::string> pongs;
  for (const auto& f : frames) {
    if (f.opcode == 0xA) pongs.push_back(f.payload);
  }
  EXPECT_EQ(pongs, (std::vector<std::string>{"a", "b"}));  // in order, payload echoed (5.5.3)
}

TEST_F(Rfc6455, Sec5_4_ContinuationWithoutAMessage) {
  EXPECT_EQ(CloseCode(Exchange(MaskedFrame(0x80, "x"))), 1002);
}

TEST_F(Rfc6455, Sec5_4_NewMessageInsideAFragmentedOne) {
  EXPECT_EQ(CloseCode(Exchange(MaskedFrame(0x01, "ab") + MaskedFrame(0x81, "cd"))), 1002);
}

TEST_F(Rfc6455, Sec5_5_ControlFramesAreShortAndWhole) {
  EXPECT_EQ(CloseCode(Exchange(MaskedFrame(0x89, std::string(126, 'p')))), 1002);
  EXPECT_EQ(CloseCode(Exchange(MaskedFrame(0x09, "p"))), 1002);  // fragmented ping
  EXPECT_EQ(CloseCode(Exchange(MaskedFrame(0x88, "\x03\xe8" + std::string(124, 'r')))), 1002);
}

TEST_F(Rfc6455, Sec8_1_InvalidUtf8InATextMessage) {
  EXPECT_EQ(CloseCode(Exchange(MaskedFrame(0x81, "{\"type\":\"ping\",\"x\":\"\xc0\xaf\"}"))), 1007);
  EXPECT_EQ(CloseCode(Exchange(MaskedFrame(0x81, "\xed\xa0\x80"))), 1007);      // a surrogate
  EXPECT_EQ(CloseCode(Exchange(MaskedFrame(0x81, "\xf4\x90\x80\x80"))), 1007);  // above U+10FFFF
}

TEST_F(Rfc6455, Sec8_1_InvalidUtf8SplitAtAFragmentBorder) {
  // The lead byte ends one fragment, a wrong continuation starts the next.
  EXPECT_EQ(CloseCode(Exchange(MaskedFrame(0x01, "{\"x\":\"\xf4") +
                               MaskedFrame(0x80, "\x90\x80\x80\"}"))),
            1007);
  // Truncated at the last fragment.
  EXPECT_EQ(CloseCode(Exchange(MaskedFrame(0x01, "ab") + MaskedFrame(0x80, "\xe2\x82"))), 1007);
}

TEST_F(Rfc6455, Sec8_1_ValidUtf8SplitAcrossFragmentsIsOne) {
  std::string hello = R"({"type":"hello","token":")" + MintToken("user", "utf") + R"(","x":"€"})";
  size_t euro = hello.find("\xe2\x82\xac");
  ASSERT_NE(euro, std::string::npos);
  // Split inside the 3-byte character.
  auto frames = Exchange(MaskedFrame(0x01, hello.substr(0, euro + 1)) +
                         MaskedFrame(0x80, hello.substr(euro + 1)));
  EXPECT_TRUE(HasText(frames, "\"welcome\""));
  EXPECT_EQ(CloseCode(frames), 0);
}

TEST_F(Rfc6455, Sec5_5_1_CloseIsEchoedWithItsCode) {
  for (int code : {1000, 1001, 1003, 1011, 1013, 3000, 4999}) {
    std::string body;
    body.push_back(static_cast<char>(code >> 8));
    body.push_back(static_cast<char>(code & 0xff));
    body += "bye";
    EXPECT_EQ(CloseCode(Exchange(MaskedFrame(0x88, body), 300ms)), code);
  }
  EXPECT_EQ(CloseCode(Exchange(MaskedFrame(0x88, ""))), 1000);  // no code: answered 1000
}

TEST_F(Rfc6455, Sec7_4_CloseWithACodeThatMayNotBeSent) {
  for (int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535}) {
    std::string body;
    body.push_back(static_cast<char>(code >> 8));
    body.push_back(static_cast<char>(code & 0xff));
    EXPECT_EQ(CloseCode(Exchange(MaskedFrame(0x88, body), 300ms)), 1002)
        << code << " must not be echoed";
  }
}

TEST_F(Rfc6455, Sec5_5_1_CloseWithAOneByteBodyOrABadReason) {
  EXPECT_EQ(CloseCode(Exchange(MaskedFrame(0x88, "\x03"))), 1002);
  EXPECT_EQ(CloseCode(Exchange(MaskedFrame(0x88, "\x03\xe8\xff\xfe"))), 1002);
}

TEST_F(Rfc6455, Sec10_4_MessageOverTheLimit) {
  // One frame over max_frame_bytes, and fragments that add up past it.
  EXPECT_EQ(CloseCode(Exchange(MaskedFrame(0x81, std::string(65537, 'x')), 1500ms)), 1009);
  std::string half(40000, 'y');
  EXPECT_EQ(CloseCode(Exchange(MaskedFrame(0x01, half) + MaskedFrame(0x80, half), 1500ms)), 1009);
}

TEST_F(Rfc6455, Sec4_1_KeyMustBeSixteenBytesOfBase64) {
  for (const char* key : {"short", "dGhlIHNhbXBsZSBub25jZQ=", "!!!!!!!!!!!!!!!!!!!!!!==",
                          "dGhlIHNhbXBsZSBub25jZQAA"}) {
    std::string req = UpgradeRequest();
    size_t at = req.find("dGhlIHNhbXBsZSBub25jZQ==");
    req.replace(at, 24, key);
    std::string out = RawExchange(server_->port(), req, 500ms);
    EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << key << ": " << out;
  }
}

TEST_F(Rfc6455, Sec5_6_BinaryIsRefusedByTheContractNotByTheProtocol) {
  WsClient c;
  ASSERT_TRUE(c.Connect(server_->port()));
  ASSERT_TRUE(c.Hello(MintToken("user", "bin")));
  c.SendBinary(std::string("\xff\x00", 2));
  auto err = c.WaitFor("error");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->at("code").as_string(), "bad_frame");
  c.Send(R"({"type":"ping"})");
  EXPECT_TRUE(c.WaitFor("pong"));  // the connection stays
}

// Whether the server batches here: it asks the same (net/batch_io.h), so
// a kernel without io_uring, or without its recv and sendmsg, says no.
bool KernelHasIoUring() { return net::BatchIo::Create(4) != nullptr; }

// The setting io_uring (default 1) batches the sockets' reads and writes
// when a wakeup finds more than one ready; ctest runs this suite once more
// with ONLINED_IO_URING=0 (the "epoll/" tests), where every read and write is
// a system call of its own. Either way the bytes are the same: each
// connection gets the answers to its own frames, in order; a frame larger
// than a batched read's 128-byte piece is read on by the connection itself,
// and a small one after it in the same read is not lost.
TEST_F(Rfc6455, ReadsAndWritesGoInIoUringBatchesUnlessTurnedOff) {
  const std::string kReads = R"(onlined_ws_io_batched_total{op="read"})";
  const std::string kWrites = R"(onlined_ws_io_batched_total{op="write"})";
  const int64_t reads_before = MetricValue(server_->port(), kReads);
  const int64_t writes_before = MetricValue(server_->port(), kWrites);
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 10; ++i) {
    clients.push_back(std::make_unique<WsClient>());
    ASSERT_TRUE(clients.back()->Connect(server_->port()));
    ASSERT_TRUE(clients.back()->Hello(MintToken("user", "batched-" + std::to_string(i))));
  }
  // Sent while the server is stopped: its next wakeup finds all ten sockets
  // ready (ten reads in one batch, the answers written in the next). Each
  // client's frame names it; every other one is longer than a piece.
  server_->Signal(SIGSTOP);
  ASSERT_TRUE(Eventually(2s, [] {
    std::ifstream stat("/proc/" + std::to_string(server_->pid()) + "/stat");
    std::string pid, comm, state;
    stat >> pid >> comm >> state;
    return state == "T";
  }));
  for (size_t i = 0; i < clients.size(); ++i) {
    const std::string pad(i % 2 == 1 ? 1000 : 8, 'p');
    clients[i]->Send(R"({"type":"zz)" + std::to_string(i) + R"(","pad":")" + pad + R"("})");
    clients[i]->Send(R"({"type":"ping"})");
  }
  std::this_thread::sleep_for(50ms);
  server_->Signal(SIGCONT);
  for (size_t i = 0; i < clients.size(); ++i) {
    SCOPED_TRACE("client " + std::to_string(i));
    auto err = clients[i]->Next();
    ASSERT_TRUE(err);
    const std::string want = "'zz" + std::to_string(i) + "'";
    EXPECT_NE(err->find(want), std::string::npos) << *err;
    auto pong = clients[i]->Next();
    ASSERT_TRUE(pong);
    EXPECT_NE(pong->find(R"("pong")"), std::string::npos) << *pong;
  }
  WsClient& c = *clients.front();
  c.SendBinary(std::string(1000, 'b'));  // refused (bad_frame), read whole
  c.Send(R"({"type":"ping"})");
  auto err = c.WaitFor("error");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->at("code").as_string(), "bad_frame");
  EXPECT_TRUE(c.WaitFor("pong"));
  const int64_t reads = MetricValue(server_->port(), kReads) - reads_before;
  const int64_t writes = MetricValue(server_->port(), kWrites) - writes_before;
  const char* setting = std::getenv("ONLINED_IO_URING");
  if (setting != nullptr && std::strcmp(setting, "0") == 0) {
    EXPECT_EQ(reads, 0);
    EXPECT_EQ(writes, 0);
  } else if (KernelHasIoUring()) {
    // The ten sockets' first reads, but for a connection alone on its loop
    // (the test server runs two): one ready socket is read directly.
    EXPECT_GE(reads, 9);
    EXPECT_GE(writes, 2);  // a batch holds two connections at least
  }
  // The ring's health, for operators: none made again, and no loop gave
  // io_uring up (with the setting off, none was wanted).
  EXPECT_EQ(MetricValue(server_->port(), "onlined_ws_io_uring_renewals_total"), 0);
  const int64_t off = MetricValue(server_->port(), "onlined_ws_io_uring_off_loops");
  if (setting == nullptr || std::strcmp(setting, "0") != 0) {
    EXPECT_EQ(off, KernelHasIoUring() ? 0 : 2);  // the test server runs two loops
  } else {
    EXPECT_EQ(off, 0);
  }
}

}  // namespace
}  // namespace onlined::testing
