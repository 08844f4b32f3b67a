// libFuzzer target: the WebSocket read path as a socket drives it. The
// input's first bytes choose the message limit and where the stream is cut
// into reads; the rest is what the peer sends after the upgrade. Every text
// message then goes to the session's frame codec, as WsConn hands it on.
//
// Checks beyond "no crash": the same bytes fed whole and fed in pieces give
// the same events and the same verdict; nothing held between reads exceeds
// one frame; a text message is valid UTF-8.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "net/utf8.h"
#include "net/ws_reader.h"
#include "proto/frames.h"

namespace {

using onlined::net::WsReader;

struct Events : WsReader::Sink {
  std::vector<std::string> log;
  bool OnMessage(bool text, std::string_view p) override {
    if (text) {
      if (!onlined::net::IsUtf8(p)) abort();
      onlined::proto::ClientFrame f;
      onlined::proto::FrameError err;
      if (!onlined::proto::ParseClientFrame(p, f, err) && err.code.empty()) abort();
    }
    log.push_back((text ? "t" : "b") + std::string(p));
    return true;
  }
  bool OnPing(std::string_view p) override {
    if (p.size() > 125) abort();
    log.push_back("p" + std::string(p));
    return true;
  }
  bool OnPong() override {
    log.push_back("o");
    return true;
  }
  bool OnClose(uint16_t code, std::string_view reason) override {
    if (code != 1005 && !onlined::net::ValidCloseCode(code)) abort();
    log.push_back("c" + std::to_string(code) + std::string(reason));
    return true;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const size_t max_message = 16 + (size_t{data[0]} << 4);  // 16 .. 4096
  const uint8_t cut_seed = data[1];
  const size_t cuts = data[2] % 16;
  std::string stream(reinterpret_cast<const char*>(data + 3), size - 3);

  Events whole;
  WsReader a(max_message);
  std::string copy = stream;
  bool ok_whole = a.Feed(copy.data(), copy.size(), whole);

  Events pieces;
  WsReader b(max_message);
  std::string copy2 = stream;
  size_t pos = 0;
  bool ok_pieces = true;
  uint32_t x = cut_seed * 2654435761u + 1;
  for (size_t i = 0; i <= cuts && ok_pieces && pos < copy2.size(); ++i) {
    x = x * 1103515245u + 12345u;
    size_t left = copy2.size() - pos;
    size_t n = i == cuts ? left : 1 + (x >> 8) % left;
    ok_pieces = b.Feed(copy2.data() + pos, n, pieces);
    // Held: at most one incomplete frame (a control frame may be 125 bytes
    // whatever the limit) and a fragmented message within the limit.
    if (b.buffered() > 14 + std::max<size_t>(125, max_message) + max_message) abort();
    pos += n;
  }
  if (ok_pieces && pos < copy2.size())
    ok_pieces = b.Feed(copy2.data() + pos, copy2.size() - pos, pieces);
  if (ok_whole != ok_pieces || whole.log != pieces.log) abort();
  if (!ok_whole && (a.error_code() != b.error_code())) abort();
  return 0;
}
