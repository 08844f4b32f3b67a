// libFuzzer target: the HTTP request path up to the upgrade, as HttpSession
// runs it: Beast's request parser with the server's limits fed in reads, the
// conversion to the application's Request, the upgrade checks, the answer's
// head. (net/ tests
// may see net/'s internal header.)
#include <cstdint>
#include <cstdlib>
#include <string>

#include "net/server_impl.h"
#include "net/ws_reader.h"

namespace http = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t read_size = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  size_t pos = 0;
  std::string buf;  // read but not yet consumed, as the session's flat_buffer
  for (int requests = 0; requests < 8; ++requests) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(64 * 1024);
    parser.header_limit(16 * 1024);
    boost::beast::error_code ec;
    while (!parser.is_done()) {
      if (!buf.empty()) {
        size_t used = parser.put(boost::asio::buffer(buf), ec);
        buf.erase(0, used);
        if (ec == http::error::need_more) {
          ec = {};
        } else if (ec) {
          return 0;  // refused: 400/413 and close
        }
        if (parser.is_done()) break;
        if (used > 0) continue;
      }
      if (pos >= input.size()) {
        parser.put_eof(ec);
        if (ec || !parser.is_done()) return 0;
        break;
      }
      size_t n = std::min(read_size, input.size() - pos);
      buf.append(input.data() + pos, n);
      pos += n;
    }
    if (!parser.is_done()) return 0;
    http::request<http::string_body> req = parser.release();
    const bool upgrade = boost::beast::websocket::is_upgrade(req);
    onlined::net::Request app = onlined::net::ToAppRequest(req, "1.2.3.4:5", 0, !upgrade);
    (void)app.Path();
    (void)app.Query();
    (void)app.Header("authorization");
    if (upgrade) {
      std::string_view key = req[http::field::sec_websocket_key];
      if (onlined::net::ValidWebSocketKey(key) && key.size() != 24) abort();
      return 0;  // the socket is handed over
    }
    // The answer, with what the client sent in it, must read back as one
    // response with that body: nothing a client sends splits it.
    onlined::net::Response r;
    r.body = app.target;
    r.headers.emplace_back(std::string(app.Header("x-name")), std::string(app.Header("x-value")));
    std::string bytes = onlined::net::ResponseHead(r, req.version(), req.keep_alive()) + r.body;
    http::response_parser<http::string_body> rp;
    rp.eager(true);
    rp.put(boost::asio::buffer(bytes), ec);
    if (ec || !rp.is_done() || rp.get().body() != r.body || rp.get().result_int() != 200) abort();
    if (!req.keep_alive()) return 0;
  }
  return 0;
}
