// A presence server on libwebsockets (Debian's libwebsockets-dev, 4.1), as a
// competent user of it would write one: lws's own event loop, one protocol
// that serves both the HTTP query and the WebSocket (the first protocol gets
// connections that name none), per-session user data allocated by lws,
// writes only from LWS_CALLBACK_*_WRITEABLE with a bounded count of frames
// owed, presence in a hash map, on lws's libuv event loop (its own is poll()).
// Debian builds lws with LWS_MAX_SMP 1, so it serves from one thread (the
// bench's pinned mode gives every system one core anyway).
//
// The same frames as onlined and the other peers: hello/welcome, ping/pong,
// POST /v1/presence/query. Like them it reads the token's `sub` without
// checking the signature. JSON with Boost.JSON (a C++ team's choice; the
// Beast peer parses with the same).
//
//   lws-peer PORT   prints "onlined: listening on http://127.0.0.1:PORT"
#include <libwebsockets.h>
#include <signal.h>

#include <boost/json.hpp>
#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_map>

#include "../token_sub.h"

namespace json = boost::json;

namespace {

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

using bench_peers::SubOf;

struct Presence {
  int sessions = 0;
  int64_t last_seen = 0;
};
std::unordered_map<std::string, Presence> g_users;

// Per session, allocated (zeroed) by lws; what it owns is freed on close.
struct Pss {
  std::string* user;     // after hello
  std::string* partial;  // a message arriving in fragments
  std::string* body;     // an HTTP request's body, then its answer
  bool answer_ready;     // body holds the answer
  bool welcome_owed;
  int pongs_owed;
};
constexpr int kMaxOwed = 64;  // a peer that does not read is cut

void Free(Pss* p) {
  if (p == nullptr) return;  // a connection that never got its user data
  delete p->user;
  delete p->partial;
  delete p->body;
  p->user = p->partial = p->body = nullptr;
  p->answer_ready = false;
}

std::string Answer(const std::string& body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  const json::value* ids = !ec && v.is_object() ? v.as_object().if_contains("user_ids") : nullptr;
  if (ids == nullptr || !ids->is_array()) return {};
  json::object users;
  for (const auto& id : ids->as_array()) {
    if (!id.is_string()) continue;
    json::object u;
    auto it = g_users.find(std::string(id.as_string()));
    int sessions = it == g_users.end() ? 0 : it->second.sessions;
    u["online"] = sessions > 0;
    u["sessions"] = sessions;
    if (it != g_users.end()) {
      u["last_seen"] = it->second.last_seen;
    } else {
      u["last_seen"] = nullptr;
    }
    users[id.as_string()] = std::move(u);
  }
  json::object out;
  out["users"] = std::move(users);
  return json::serialize(out);
}

int WriteText(lws* wsi, std::string_view text) {
  unsigned char buf[LWS_PRE + 128];
  std::memcpy(buf + LWS_PRE, text.data(), text.size());
  return lws_write(wsi, buf + LWS_PRE, text.size(), LWS_WRITE_TEXT) < static_cast<int>(text.size())
             ? -1
             : 0;
}

// Returns -1 to close the connection (lws's idiom from a callback).
int OnMessage(lws* wsi, Pss* p, std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return 0;
  const json::value* type = v.as_object().if_contains("type");
  if (type == nullptr || !type->is_string()) return 0;
  if (type->as_string() == "ping" && p->user != nullptr) {
    g_users[*p->user].last_seen = NowMs();
    if (++p->pongs_owed > kMaxOwed) return -1;
    lws_callback_on_writable(wsi);
  } else if (type->as_string() == "hello" && p->user == nullptr) {
    const json::value* token = v.as_object().if_contains("token");
    std::string user = token != nullptr && token->is_string() ? SubOf(token->as_string()) : "";
    if (user.empty()) {
      lws_close_reason(wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION, nullptr, 0);
      return -1;
    }
    Presence& pr = g_users[user];
    ++pr.sessions;
    pr.last_seen = NowMs();
    p->user = new std::string(std::move(user));
    p->welcome_owed = true;
    lws_callback_on_writable(wsi);
  }
  return 0;
}

int Callback(lws* wsi, enum lws_callback_reasons reason, void* user, void* in, size_t len) {
  auto* p = static_cast<Pss*>(user);
  switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
      char uri[64];
      if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) < 0) return 1;
      return std::strcmp(uri, "/v1/connect") == 0 ? 0 : 1;
    }
    case LWS_CALLBACK_HTTP: {
      const char* uri = static_cast<const char*>(in);
      if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0 &&
          std::strcmp(uri, "/v1/presence/query") == 0) {
        p->body = new std::string();
        return 0;  // the body comes in LWS_CALLBACK_HTTP_BODY
      }
      if (lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, nullptr)) return -1;
      return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    case LWS_CALLBACK_HTTP_BODY:
      if (p->body == nullptr || p->body->size() + len > (1 << 20)) return -1;
      p->body->append(static_cast<const char*>(in), len);
      return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
      if (p->body == nullptr) return -1;
      *p->body = Answer(*p->body);
      p->answer_ready = true;
      lws_callback_on_writable(wsi);
      return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE: {
      if (p->body == nullptr || !p->answer_ready) return 0;
      const bool bad = p->body->empty();
      std::string out(LWS_PRE + 512 + p->body->size(), '\0');
      auto* start = reinterpret_cast<unsigned char*>(out.data() + LWS_PRE);
      unsigned char* q = start;
      unsigned char* end = reinterpret_cast<unsigned char*>(out.data() + out.size());
      if (lws_add_http_common_headers(wsi, bad ? HTTP_STATUS_BAD_REQUEST : HTTP_STATUS_OK,
                                      "application/json", p->body->size(), &q, end) ||
          lws_finalize_http_header(wsi, &q, end)) {
        return -1;
      }
      std::memcpy(q, p->body->data(), p->body->size());
      q += p->body->size();
      delete p->body;
      p->body = nullptr;
      p->answer_ready = false;
      if (lws_write(wsi, start, static_cast<size_t>(q - start), LWS_WRITE_HTTP_FINAL) < 0)
        return -1;
      return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    case LWS_CALLBACK_RECEIVE: {
      std::string_view chunk(static_cast<const char*>(in), len);
      const bool whole = lws_is_first_fragment(wsi) && lws_is_final_fragment(wsi) &&
                         lws_remaining_packet_payload(wsi) == 0;
      if (whole && p->partial == nullptr) return OnMessage(wsi, p, chunk);
      if (p->partial == nullptr) p->partial = new std::string();
      if (p->partial->size() + len > 65536) return -1;
      p->partial->append(chunk);
      if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
        std::string msg = std::move(*p->partial);
        delete p->partial;
        p->partial = nullptr;
        return OnMessage(wsi, p, msg);
      }
      return 0;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE:
      if (p->welcome_owed) {
        p->welcome_owed = false;
        if (WriteText(wsi, R"({"type":"welcome","heartbeat_s":25})") != 0) return -1;
      } else if (p->pongs_owed > 0) {
        --p->pongs_owed;
        if (WriteText(wsi, R"({"type":"pong"})") != 0) return -1;
      }
      if (p->welcome_owed || p->pongs_owed > 0) lws_callback_on_writable(wsi);
      return 0;
    case LWS_CALLBACK_CLOSED:
      if (p != nullptr && p->user != nullptr) {
        Presence& pr = g_users[*p->user];
        --pr.sessions;
        pr.last_seen = NowMs();
      }
      Free(p);
      return 0;
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:  // lws frees the user data next (upgrade, keep-alive)
      Free(p);
      return 0;
    default:
      return 0;
  }
}

lws_context* g_ctx = nullptr;

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: lws-peer PORT\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  lws_set_log_level(LLL_ERR, nullptr);
  static const lws_protocols protocols[] = {
      {"presence", Callback, sizeof(Pss), 4096, 0, nullptr, 0},
      {nullptr, nullptr, 0, 0, 0, nullptr, 0},
  };
  lws_context_creation_info info;
  std::memset(&info, 0, sizeof info);
  info.port = port;
  info.iface = "127.0.0.1";
  info.protocols = protocols;
  // lws's own loop is poll(): every wakeup walks all 19,000 descriptors. A
  // user holding that many connections picks one of its event libraries;
  // libuv (epoll), as in lws's minimal-http-server-eventlib example.
  info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_LIBUV;
  info.pcontext = &g_ctx;
  info.signal_cb = [](void*, int) { lws_context_destroy(g_ctx); };
  g_ctx = lws_create_context(&info);
  if (g_ctx == nullptr) {
    std::fprintf(stderr, "lws-peer: cannot create the context on port %d\n", port);
    return 1;
  }
  std::printf("onlined: listening on http://127.0.0.1:%d\n", port);
  std::fflush(stdout);
  while (!lws_service(g_ctx, 0)) {
  }
  lws_context_destroy(g_ctx);
  return 0;
}
