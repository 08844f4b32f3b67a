// The WebSocket layer at the byte level: what a browser or a library might
// send that a high-level client cannot produce on demand.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <thread>

#include "harness.h"

namespace onlined::testing {
namespace {

std::string Hello(const std::string& user) {
  return R"({"type":"hello","token":")" + MintToken("user", user) + "\"}";
}

// A raw client socket with a tiny receive buffer: the test decides when it reads.
class StallingClient {
 public:
  explicit StallingClient(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    int small = 4096;
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    timeval tv{0, 200000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~StallingClient() { ::close(fd_); }
  bool ok() const { return ok_; }
  void Write(const std::string& bytes) {
    ASSERT_EQ(::send(fd_, bytes.data(), bytes.size(), 0), ssize_t(bytes.size()));
  }
  // Reads until `want` text messages have been parsed or `timeout` passes;
  // returns the text messages (the 101 response is skipped).
  std::vector<std::string> Read(size_t want, Ms timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[65536];
    while (texts_.size() < want && std::chrono::steady_clock::now() < deadline) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) break;
      if (n > 0) in_.append(buf, static_cast<size_t>(n));
      Parse();
    }
    return texts_;
  }

 private:
  void Parse() {
    if (!upgraded_) {
      size_t end = in_.find("\r\n\r\n");
      if (end == std::string::npos) return;
      in_.erase(0, end + 4);
      upgraded_ = true;
    }
    for (;;) {
      if (in_.size() < 2) return;
      auto* b = reinterpret_cast<const uint8_t*>(in_.data());
      uint64_t len = b[1] & 0x7f;
      size_t hdr = 2;
      if (len == 126) {
        if (in_.size() < 4) return;
        len = (uint64_t{b[2]} << 8) | b[3];
        hdr = 4;
      } else if (len == 127) {
        if (in_.size() < 10) return;
        len = 0;
        for (int i = 0; i < 8; ++i) len = (len << 8) | b[2 + i];
        hdr = 10;
      }
      if (in_.size() < hdr + len) return;
      if ((b[0] & 0x0f) == 0x1) texts_.push_back(in_.substr(hdr, static_cast<size_t>(len)));
      in_.erase(0, hdr + static_cast<size_t>(len));
    }
  }

  int fd_;
  bool ok_ = false;
  bool upgraded_ = false;
  std::string in_;
  std::vector<std::string> texts_;
};

TEST(Protocol, AStalledReaderGetsEverythingInOrderOnceItReads) {
  // Far more than the socket buffers hold: the server's writes hit a full
  // socket, queue, and resume when the reader drains it.
  constexpr int kMessages = 200;
  const std::string filler(20000, 'x');
  ServerProcess s("", "max_text_bytes = 30000\n", "manager_sends_per_s = 0\n");
  StallingClient c(s.port());
  ASSERT_TRUE(c.ok());
  c.Write(UpgradeRequest() + MaskedFrame(0x81, Hello("stall")));
  auto first = c.Read(1, 3000ms);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_NE(first[0].find("\"welcome\""), std::string::npos) << first[0];
  std::string manager = MintToken("manager", "m1");
  HttpResult chat = Http(s.port(), "POST", "/v1/user-chats", R"({"user_id":"stall"})", manager);
  ASSERT_EQ(chat.status, 201) << chat.body;
  std::string chat_id(chat.Json().at("chat_id").as_string());
  for (int i = 0; i < kMessages; ++i) {
    std::string body = R"({"text":"m)" + std::to_string(i) + "-" + filler + "\"}";
    HttpResult r = Http(s.port(), "POST", "/v1/user-chats/" + chat_id + "/messages", body, manager);
    ASSERT_EQ(r.status, 201) << r.body;
    if (i % 5 == 0)
      c.Write(MaskedFrame(0x81, R"({"type":"ping"})"));  // still alive, still not reading
  }
  std::vector<std::string> texts = c.Read(1 + kMessages + kMessages / 5, 15000ms);
  int next = 0;
  int64_t last_seq = 0;
  for (const std::string& t : texts) {
    boost::json::value v = boost::json::parse(t);
    if (v.at("type").as_string() != "message") continue;
    std::string want = "m" + std::to_string(next) + "-";
    ASSERT_EQ(std::string(v.at("text").as_string()).substr(0, want.size()), want);
    int64_t seq = v.at("seq").to_number<int64_t>();
    ASSERT_GT(seq, last_seq);
    last_seq = seq;
    ++next;
  }
  EXPECT_EQ(next, kMessages) << "messages lost behind a full socket";
}

TEST(Protocol, HandshakeAnswersTheKey) {
  ServerProcess s;
  std::string out = RawExchange(s.port(), UpgradeRequest(), 300ms);
  EXPECT_EQ(out.rfind("HTTP/1.1 101", 0), 0u) << out;
  // RFC 6455 section 1.3's example key and its accept value.
  EXPECT_NE(out.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), std::string::npos)
      << out;
}

TEST(Protocol, HelloPipelinedBehindTheUpgradeIsNotLost) {
  ServerProcess s;
  std::string out =
      RawExchange(s.port(), UpgradeRequest() + MaskedFrame(0x81, Hello("pipelined")), 800ms);
  EXPECT_NE(out.find("\"welcome\""), std::string::npos) << out;
}

TEST(Protocol, FragmentedMessageIsAssembled) {
  ServerProcess s;
  std::string hello = Hello("frag");
  std::string bytes = UpgradeRequest() + MaskedFrame(0x01, hello.substr(0, 10)) +  // text, not fin
                      MaskedFrame(0x89, "hb") +             // a ping in between
                      MaskedFrame(0x80, hello.substr(10));  // continuation, fin
  std::string out = RawExchange(s.port(), bytes, 800ms);
  EXPECT_NE(out.find("\"welcome\""), std::string::npos) << out;
  EXPECT_NE(out.find(std::string("\x8a\x02hb", 4)), std::string::npos) << "no pong for the ping";
}

TEST(Protocol, UnmaskedClientFrameIsAProtocolError) {
  ServerProcess s;
  std::string out =
      RawExchange(s.port(), UpgradeRequest() + MaskedFrame(0x81, Hello("x"), false), 800ms);
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
