#include "api/http_api.h"

#include <algorithm>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cassert>
#include <cstring>
#include <memory>

#include "base/clock.h"
#include "proto/frames.h"
#include "proto/ids.h"
#include "proto/json_writer.h"

namespace onlined::api {

namespace json = boost::json;

net::Response JsonResponse(int status, std::string body) {
  net::Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

net::Response ErrorResponse(Context& ctx, size_t loop, Error e, std::string_view message) {
  ctx.CountRefusal(loop, e);
  net::Response r;
  r.status = HttpStatus(e);
  r.body = proto::EncodeHttpError(Code(e), message);
  return r;
}

namespace {

// Compares without an early exit, so the time taken tells nothing of where
// a guessed token first differs.
bool SameSecret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

}  // namespace

void MetricsHttp::Handle(net::Request&& req, net::Responder respond) {
  std::string_view path = req.Path();
  if (!req.IsGet()) {
    net::Response r =
        JsonResponse(HttpStatus(Error::kMethodNotAllowed),
                     proto::EncodeHttpError(Code(Error::kMethodNotAllowed), "use GET"));
    r.headers.emplace_back("Allow", "GET, HEAD");
    return respond(std::move(r));
  }
  if (path == "/metrics") return api_.Metrics(std::move(respond));
  if (path == "/healthz") return respond(JsonResponse(200, R"({"status":"ok"})"));
  respond(JsonResponse(HttpStatus(Error::kNotFound),
                       proto::EncodeHttpError(Code(Error::kNotFound),
                                              "this listener serves /metrics and /healthz")));
}

bool AuthorizeDesk(Context& ctx, const net::Request& req, auth::Claims& claims,
                   const ChannelEntry*& entry, std::shared_ptr<const ChannelTable>& table,
                   net::Response& err) {
  std::string_view h = req.Header("authorization");
  if (h.size() < 8 || h.substr(0, 7) != "Bearer ") {
    err = ErrorResponse(ctx, req.loop, Error::kUnauthorized, "missing Bearer token");
    err.headers.emplace_back("WWW-Authenticate", "Bearer");
    return false;
  }
  auth::TokenError te;
  if (!ctx.Authenticate(h.substr(7), table, claims, entry, te)) {
    err = ErrorResponse(ctx, req.loop, te.code.empty() ? Error::kUnknownChannel : FromCode(te.code),
                        te.message);
    err.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
    return false;
  }
  if (claims.role == auth::Role::kUser) {
    err = ErrorResponse(ctx, req.loop, Error::kForbidden,
                        "this call needs a manager or server token");
    return false;
  }
  return true;
}

void HttpApi::Handle(net::Request&& req, net::Responder respond) {
  std::string_view path = req.Path();
  const std::string& m = req.method;
  auto only = [&](std::string_view method) {
    const bool get = method == "GET";
    if (get ? req.IsGet() : m == method) return true;
    net::Response r =
        ErrorResponse(ctx_, req.loop, Error::kMethodNotAllowed, "use " + std::string(method));
    r.headers.emplace_back("Allow", get ? std::string("GET, HEAD") : std::string(method));
    respond(std::move(r));
    return false;
  };
  if (path == "/healthz") {
    if (only("GET")) respond(JsonResponse(200, R"({"status":"ok"})"));
    return;
  }
  if (path == "/readyz") {
    if (!only("GET")) return;
    if (ctx_.ready.load() && !ctx_.store.reachable()) {
      // Presence still works; writes do not: a balancer should send new
      // clients elsewhere while another node has a working store.
      respond(ErrorResponse(ctx_, req.loop, Error::kStoreUnavailable,
                            "the store cannot be reached; presence is served, writes fail"));
    } else if (ctx_.ready.load()) {
      // Ready even without NATS: the node serves its own users (an outage of
      // NATS must not take every node out of the balancer at once). Ready
      // too with checkpoints stopped: every write still lands in the WAL,
      // but the node wants a restart (docs/protocol.md).
      std::string body = R"({"status":"ready")";
      if (const char* standing = ctx_.presence.Standing()) {
        body += std::string(R"(,"cluster":")") + standing + '"';
      }
      if (ctx_.store.checkpoints_stopped()) body += R"(,"store":"checkpoints_stopped")";
      respond(JsonResponse(200, body + "}"));
    } else {
      respond(
          ErrorResponse(ctx_, req.loop, Error::kOverloaded, "not ready (starting or draining)"));
    }
    return;
  }
  if (path == "/metrics") {
    // It names every channel: on the public listener only with the metrics
    // token (metrics_listen serves it apart, on a private address).
    if (!only("GET")) return;
    const std::string& want = ctx_.settings()->metrics_token;
    if (want.empty()) {
      return respond(ErrorResponse(ctx_, req.loop, Error::kNotFound,
                                   "metrics are served on metrics_listen (or set metrics_token)"));
    }
    std::string_view h = req.Header("authorization");
    if (h.size() < 8 || h.substr(0, 7) != "Bearer " || !SameSecret(h.substr(7), want)) {
      net::Response r =
          ErrorResponse(ctx_, req.loop, Error::kUnauthorized, "/metrics needs the metrics token");
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return respond(std::move(r));
    }
    Metrics(std::move(respond));
    return;
  }
  if (path == "/v1/connect") {
    net::Response r = ErrorResponse(ctx_, req.loop, Error::kNotWebSocket,
                                    "GET /v1/connect must be a WebSocket upgrade");
    r.headers.emplace_back("Upgrade", "websocket");
    respond(std::move(r));
    return;
  }
  if (path == "/v1/presence/query") {
    if (only("POST")) PresenceQuery(std::move(req), std::move(respond));
    return;
  }
  if (path == "/v1/presence/online") {
    if (only("GET")) OnlineCount(std::move(req), std::move(respond));
    return;
  }
  if (chat_.Handle(req, respond)) return;
  if (web_ != nullptr && req.IsGet()) {
    if (auto r = web_->Get(path, ctx_.settings()->frame_ancestors, req.Header("host")))
      return respond(std::move(*r));
  }
  respond(ErrorResponse(ctx_, req.loop, Error::kNotFound, "no such endpoint"));
}

namespace {

// {"users":{"<id>":{<presence fields>,"sessions":<n>},...}}. Each entry is
// written on the stack and appended to the answer, whose memory is reserved
// up front and written once: an entry fits in its id escaped (6 bytes a byte
// at most; 1 when `ids_plain`: the scanned body admits only ids that need no
// escape) and kEntryMax. (Zeroing an answer-sized buffer first was 2 % of a
// query's CPU, and writing into a scratch buffer to copy it out cost as much.)
std::string QueryAnswer(const std::vector<presence::UserInfo>& found,
                        const std::vector<std::string>& ids, bool ids_plain) {
  constexpr size_t kEntryMax = proto::kPresenceFieldsMax + 32;
  size_t room = 16;
  for (size_t i = 0; i < found.size(); ++i) room += ids[i].size() * (ids_plain ? 1 : 6) + kEntryMax;
  std::string out;
  out.reserve(room);
  out.append(R"({"users":{)");
  char entry[6 * proto::kMaxIdBytes + 2 + kEntryMax];  // quotes included
  std::string escaped;
  for (size_t i = 0; i < found.size(); ++i) {
    assert(ids[i].size() <= proto::kMaxIdBytes);
    char* p = entry;
    auto put = [&p](std::string_view s) {
      std::memcpy(p, s.data(), s.size());
      p += s.size();
    };
    if (i) *p++ = ',';
    const presence::UserInfo& u = found[i];
    if (ids_plain || proto::IsPlainJsonString(ids[i])) {
      *p++ = '"';
      put(ids[i]);
      *p++ = '"';
    } else {
      escaped.clear();
      proto::AppendJsonString(escaped, ids[i]);
      put(escaped);
    }
    *p++ = ':';
    *p++ = '{';
    p = proto::WritePresenceFields(p, u.online, u.last_seen, u.idle);
    std::memcpy(p, R"(,"sessions":)", 12);
    p = proto::WriteInt(p + 12, u.sessions);
    *p++ = '}';
    out.append(entry, p);
  }
  out.append("}}");
  return out;
}

}  // namespace

void HttpApi::PresenceQuery(net::Request&& req, net::Responder respond) {
  const int64_t start_us = std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  auth::Claims claims;
  const ChannelEntry* entry = nullptr;
  std::shared_ptr<const ChannelTable> table;
  net::Response err;
  if (!AuthorizeDesk(ctx_, req, claims, entry, table, err)) return respond(std::move(err));

  // The body as clients send it is scanned in place; anything else goes to
  // the full JSON parser, which decides and words the error. Either way
  // `views` ends up naming the ids, checked below.
  std::vector<std::string_view> views;
  // The parsed body lives only in this function: its memory comes from the
  // stack (and one block beyond for big queries), freed all at once.
  unsigned char arena[16 * 1024];
  json::monotonic_resource mr(arena, sizeof arena);
  json::value body;
  // Room for as many ids as a body of ids of 2 bytes or more can hold (up to
  // one past the limit, so that a body over it is still told so), so that
  // the scan does not grow the list step by step.
  views.reserve(std::min<size_t>(req.body.size() / 5 + 1, kMaxQueryIds + 1));
  const bool scanned = proto::ScanUserIds(req.body, views);
  if (!scanned) {
    boost::system::error_code ec;
    body = json::parse(req.body, ec, &mr);
    if (ec)
      return respond(ErrorResponse(ctx_, req.loop, Error::kBadJson, "body is not valid JSON"));
    const json::object* o = body.if_object();
    const json::value* ids_v = o ? o->if_contains("user_ids") : nullptr;
    const json::array* ids_a = ids_v ? ids_v->if_array() : nullptr;
    if (ids_a == nullptr) {
      return respond(
          ErrorResponse(ctx_, req.loop, Error::kBadRequest, "body must be {\"user_ids\":[...]}"));
    }
    views.reserve(ids_a->size());
    for (const json::value& v : *ids_a) {
      const json::string* s = v.if_string();
      views.push_back(s != nullptr ? std::string_view(*s) : std::string_view());  // "" is refused
    }
  }
  if (views.size() > kMaxQueryIds) {
    return respond(
        ErrorResponse(ctx_, req.loop, Error::kTooManyIds,
                      "at most 1000 user_ids per query, got " + std::to_string(views.size())));
  }
  std::vector<std::string> ids;
  ids.reserve(views.size());
  for (std::string_view v : views) {
    if (v.empty() || v.size() > proto::kMaxIdBytes) {
      return respond(ErrorResponse(ctx_, req.loop, Error::kBadRequest,
                                   "user_ids must be non-empty strings of at most 128 bytes"));
    }
    ids.emplace_back(v);
  }
  const size_t loop = req.loop;
  ctx_.metrics.Add(loop, ctx_.m_query_ids, static_cast<int64_t>(ids.size()));
  ctx_.presence.Query(
      entry->idx, std::move(ids),
      [this, loop, start_us, scanned, respond = std::move(respond)](
          const std::vector<presence::UserInfo>& found, const std::vector<std::string>& ids) {
        std::string out = QueryAnswer(found, ids, scanned);
        int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count();
        ctx_.metrics.Observe(loop, ctx_.m_query_latency, (now_us - start_us) / 1e6);
        respond(JsonResponse(200, std::move(out)));
      });
}

void HttpApi::OnlineCount(net::Request&& req, net::Responder respond) {
  auth::Claims claims;
  const ChannelEntry* entry = nullptr;
  std::shared_ptr<const ChannelTable> table;
  net::Response err;
  if (!AuthorizeDesk(ctx_, req, claims, entry, table, err)) return respond(std::move(err));
  presence::ChannelIdx idx = entry->idx;
  ctx_.presence.OnlineCounts([idx, respond = std::move(respond)](std::vector<int64_t> counts) {
    std::string out = R"({"online":)";
    proto::AppendInt(out, idx < counts.size() ? counts[idx] : 0);
    out += '}';
    net::Response r;
    r.body = std::move(out);
    respond(std::move(r));
  });
}

void HttpApi::Metrics(net::Responder respond) {
  ctx_.presence.OnlineCounts([this, respond = std::move(respond)](std::vector<int64_t> counts) {
    std::string out = ctx_.metrics.Render();
    out +=
        "# HELP onlined_online_users Users online now, per channel.\n# TYPE onlined_online_users "
        "gauge\n";
    auto table = ctx_.channels.Get();
    const auto& names = table->names();
    for (size_t i = 0; i < names.size(); ++i) {
      out += "onlined_online_users{channel=";
      proto::AppendJsonString(out, names[i]);
      out += "} ";
      proto::AppendInt(out, i < counts.size() ? counts[i] : 0);
      out += '\n';
    }
    net::Response r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = std::move(out);
    respond(std::move(r));
  });
}

}  // namespace onlined::api
