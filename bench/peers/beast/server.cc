// A presence server on Boost.Beast, written as a competent user of Beast would
// write it: the shape of Beast's own chat example (an http_session that reads
// requests and upgrades to a websocket_session; a per-core shared_state that
// holds the sessions' presence), websocket::stream over tcp_stream with the
// suggested server timeouts, permessage-deflate off, a bounded write queue.
// One io_context per core, each with its own acceptor on the port
// (SO_REUSEPORT), so a connection stays on the core that accepted it.
//
// It speaks what bench/loadgen drives: GET /v1/connect (WebSocket) with
// {"type":"hello","token":...} -> {"type":"welcome",...}, {"type":"ping"} ->
// {"type":"pong"}; POST /v1/presence/query {"user_ids":[...]} ->
// {"users":{id:{online,sessions,last_seen}}}. Like the Node peers it reads the
// token's `sub` without checking the signature (the bench measures the
// transport and the presence map, not HMAC).
//
//   beast-peer THREADS   prints "onlined: listening on http://127.0.0.1:PORT"
#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "../token_sub.h"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {

int64_t NowMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

using bench_peers::SubOf;

struct Presence {
  int sessions = 0;
  int64_t last_seen = 0;
};

// What one core holds: its sessions' users. Touched only by its thread.
struct SharedState {
  std::unordered_map<std::string, Presence> users;
};

class Core;
std::vector<Core*> g_cores;

class Core {
 public:
  SharedState state;  // before ioc: handlers destroyed with ioc still touch it
  asio::io_context ioc{1};
};

class WebsocketSession : public std::enable_shared_from_this<WebsocketSession> {
 public:
  WebsocketSession(tcp::socket&& s, SharedState& state) : ws_(std::move(s)), state_(state) {}

  ~WebsocketSession() {
    if (user_.empty()) return;
    auto it = state_.users.find(user_);
    if (it != state_.users.end()) {  // kept offline, with its last_seen (as the other peers do)
      it->second.last_seen = NowMs();
      --it->second.sessions;
    }
  }

  // `raw`: the upgrade request as received and any frames behind it.
  void Run(asio::const_buffer raw) {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.read_message_max(64 * 1024);  // the cap the other systems have
    ws_.async_accept(raw, [self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->Read();
    });
  }

 private:
  void Read() {
    ws_.async_read(buf_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return;
      self->OnMessage();
    });
  }

  void OnMessage() {
    std::string_view text(static_cast<const char*>(buf_.data().data()), buf_.size());
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    buf_.consume(buf_.size());
    if (ec || !v.is_object()) return Read();
    const json::value* type = v.as_object().if_contains("type");
    if (type == nullptr || !type->is_string()) return Read();
    if (type->as_string() == "ping" && !user_.empty()) {
      state_.users[user_].last_seen = NowMs();
      Send(R"({"type":"pong"})");
    } else if (type->as_string() == "hello" && user_.empty()) {
      const json::value* token = v.as_object().if_contains("token");
      user_ = token != nullptr && token->is_string() ? SubOf(token->as_string()) : "";
      if (user_.empty()) {
        ws_.async_close(websocket::close_code::policy_error,
                        [self = shared_from_this()](beast::error_code) {});
        return;
      }
      Presence& p = state_.users[user_];
      ++p.sessions;
      p.last_seen = NowMs();
      Send(R"({"type":"welcome","heartbeat_s":25})");
    }
    Read();
  }

  // A bounded write queue: a peer that does not read is cut, not buffered.
  // Every frame this server sends is a constant: the queue holds views of them.
  void Send(std::string_view msg) {
    if (queue_.size() >= kMaxQueue) {
      beast::get_lowest_layer(ws_).close();
      return;
    }
    queue_.push_back(msg);
    if (queue_.size() == 1) Write();
  }

  void Write() {
    ws_.text(true);
    ws_.async_write(asio::buffer(queue_.front().data(), queue_.front().size()),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      if (ec) return;
                      self->queue_.pop_front();
                      if (!self->queue_.empty()) self->Write();
                    });
  }

  static constexpr size_t kMaxQueue = 64;
  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buf_;
  SharedState& state_;
  std::string user_;
  std::deque<std::string_view> queue_;
};

// The answer to a query: each core looks its users up on its own thread.
void Query(Core& here, std::vector<std::string> ids, std::function<void(std::string)> done) {
  struct Gather {
    std::vector<std::string> ids;
    std::vector<Presence> found;
    size_t pending;
    std::function<void(std::string)> done;
    Core* home;
  };
  auto g = std::make_shared<Gather>();
  g->found.resize(ids.size());
  g->ids = std::move(ids);
  g->pending = g_cores.size();
  g->done = std::move(done);
  g->home = &here;
  for (Core* c : g_cores) {
    asio::post(c->ioc, [g, c] {
      std::vector<Presence> mine(g->ids.size());
      for (size_t i = 0; i < g->ids.size(); ++i) {
        auto it = c->state.users.find(g->ids[i]);
        if (it != c->state.users.end()) mine[i] = it->second;
      }
      asio::post(g->home->ioc, [g, mine = std::move(mine)] {
        for (size_t i = 0; i < mine.size(); ++i) {
          g->found[i].sessions += mine[i].sessions;
          g->found[i].last_seen = std::max(g->found[i].last_seen, mine[i].last_seen);
        }
        if (--g->pending != 0) return;
        json::object users;
        for (size_t i = 0; i < g->ids.size(); ++i) {
          json::object u;
          u["online"] = g->found[i].sessions > 0;
          u["sessions"] = g->found[i].sessions;
          if (g->found[i].last_seen > 0) {
            u["last_seen"] = g->found[i].last_seen;
          } else {
            u["last_seen"] = nullptr;
          }
          users[g->ids[i]] = std::move(u);
        }
        json::object out;
        out["users"] = std::move(users);
        g->done(json::serialize(out));
      });
    });
  }
}

// Reads requests off the socket by hand into `in_` and feeds Beast's parser,
// so that the bytes a client sent right behind an upgrade request (the
// loader pipelines its hello with it, as ws and Socket.IO accept) reach the
// websocket stream: async_accept(buffers) takes the raw request and what
// followed it. http::async_read would have kept them in its own buffer.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket&& s, Core& core) : stream_(std::move(s)), core_(core) {}
  void Run() {
    NewRequest();
    Read();
  }

 private:
  static constexpr size_t kMaxRequest = 1 << 20;

  void NewRequest() {
    parser_.emplace();
    parser_->header_limit(8192);
    parser_->body_limit(kMaxRequest);
  }

  void Read() {
    stream_.expires_after(std::chrono::seconds(30));
    stream_.async_read_some(asio::buffer(chunk_),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) return;
                              self->in_.append(self->chunk_.data(), n);
                              self->Parse();
                            });
  }

  void Parse() {
    while (!parser_->is_done()) {
      if (used_ == in_.size()) return Read();  // put() wants more without saying so mid-body
      beast::error_code ec;
      size_t n = parser_->put(asio::buffer(in_.data() + used_, in_.size() - used_), ec);
      used_ += n;
      if (ec == http::error::need_more) {
        if (in_.size() > kMaxRequest + 8192) return;  // close
        return Read();
      }
      if (ec) return;  // a malformed request: close
    }
    http::request<http::string_body> req = parser_->release();
    if (websocket::is_upgrade(req) && req.target() == "/v1/connect") {
      stream_.expires_never();
      auto ws = std::make_shared<WebsocketSession>(stream_.release_socket(), core_.state);
      ws->Run(asio::buffer(in_));  // the request and whatever came after it
      return;
    }
    in_.erase(0, used_);
    used_ = 0;
    if (websocket::is_upgrade(req)) return Reply(http::status::not_found, req);
    if (req.method() != http::verb::post || req.target() != "/v1/presence/query")
      return Reply(http::status::not_found, req);
    boost::system::error_code ec;
    json::value body = json::parse(req.body(), ec);
    const json::value* ids =
        !ec && body.is_object() ? body.as_object().if_contains("user_ids") : nullptr;
    if (ids == nullptr || !ids->is_array()) return Reply(http::status::bad_request, req);
    std::vector<std::string> list;
    for (const auto& id : ids->as_array())
      if (id.is_string()) list.emplace_back(id.as_string());
    bool keep = req.keep_alive();
    unsigned version = req.version();
    Query(core_, std::move(list), [self = shared_from_this(), keep, version](std::string out) {
      auto res = std::make_shared<http::response<http::string_body>>(http::status::ok, version);
      res->set(http::field::content_type, "application/json");
      res->keep_alive(keep);
      res->body() = std::move(out);
      res->prepare_payload();
      self->Write(res);
    });
  }

  void Reply(http::status st, const http::request<http::string_body>& req) {
    auto res = std::make_shared<http::response<http::string_body>>(st, req.version());
    res->keep_alive(req.keep_alive());
    res->prepare_payload();
    Write(res);
  }

  void Write(std::shared_ptr<http::response<http::string_body>> res) {
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, size_t) {
                        if (ec || !res->keep_alive()) {
                          self->stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
                          return;
                        }
                        self->NewRequest();
                        self->Parse();  // a pipelined request may be here already
                      });
  }

  beast::tcp_stream stream_;
  Core& core_;
  std::array<char, 4096> chunk_;
  std::string in_;
  size_t used_ = 0;
  std::optional<http::request_parser<http::string_body>> parser_;
};

void Accept(tcp::acceptor& acc, Core& core) {
  acc.async_accept(core.ioc, [&acc, &core](beast::error_code ec, tcp::socket s) {
    if (!ec) {
      s.set_option(tcp::no_delay(true));
      std::make_shared<HttpSession>(std::move(s), core)->Run();
    }
    Accept(acc, core);
  });
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::max(1, std::atoi(argv[1])) : 1;
  std::vector<std::unique_ptr<Core>> cores;
  for (int i = 0; i < threads; ++i) cores.push_back(std::make_unique<Core>());
  for (auto& c : cores) g_cores.push_back(c.get());
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  uint16_t port = 0;
  for (auto& c : cores) {
    auto acc = std::make_unique<tcp::acceptor>(c->ioc);
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    acc->open(ep.protocol());
    acc->set_option(asio::socket_base::reuse_address(true));
    int one = 1;
    ::setsockopt(acc->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    acc->bind(ep);
    acc->listen(4096);
    port = acc->local_endpoint().port();
    Accept(*acc, *c);
    acceptors.push_back(std::move(acc));
  }
  std::printf("onlined: listening on http://127.0.0.1:%u\n", port);
  std::fflush(stdout);
  asio::signal_set stop(cores[0]->ioc, SIGTERM, SIGINT);
  stop.async_wait([&cores](beast::error_code, int) {
    for (auto& c : cores) c->ioc.stop();
  });
  std::vector<std::thread> ts;
  for (size_t i = 1; i < cores.size(); ++i)
    ts.emplace_back([c = cores[i].get()] {
      auto guard = asio::make_work_guard(c->ioc);
      c->ioc.run();
    });
  {
    auto guard = asio::make_work_guard(cores[0]->ioc);
    cores[0]->ioc.run();
  }
  for (auto& c : cores) c->ioc.stop();
  for (auto& t : ts) t.join();
  // Sessions of one core may sit in another's queues (a query's gather):
  // tearing the cores down one by one would free what the next still uses.
  std::fflush(stdout);
  std::_Exit(0);
}
