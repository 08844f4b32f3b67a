#include "api/chat_api.h"

#include <spdlog/spdlog.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <charconv>

#include "api/http_api.h"
#include "base/clock.h"
#include "chat/codec.h"
#include "chat/messages.h"
#include "net/utf8.h"
#include "notify/webhook.h"
#include "notify/webhook_rules.h"
#include "proto/frames.h"
#include "proto/ids.h"
#include "proto/json_writer.h"

namespace onlined::api {

namespace json = boost::json;

namespace {

// A query parameter's value, percent-decoded (%XX a byte, as the desk's
// encodeURIComponent writes it; '+' stays a plus, as it always was here:
// "bob+tag@x.com" unencoded is that id), into `out` ("" when absent). False
// if that value is malformed (a % without two hex digits); the other
// parameters are not looked at.
bool QueryParam(std::string_view query, std::string_view key, std::string& out) {
  out.clear();
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view kv = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const size_t eq = kv.find('=');
    if (kv.substr(0, eq) != key) continue;
    return eq == std::string_view::npos ||
           notify::PercentDecode(kv.substr(eq + 1), out, /*plus_is_space=*/false);
  }
  return true;
}

// Well-formed UTF-8 without control characters (C0, DEL): what an id or an
// Idempotency-Key may hold. A NUL would also end the string
// early where a C string carries it (the PostgreSQL engine's parameters),
// and a byte that is not UTF-8 fails PostgreSQL's whole pipelined batch.
bool CleanText(std::string_view s) { return !proto::HasControlChar(s) && net::IsUtf8(s); }

bool ParseInt(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// E.164: '+', a first digit 1-9, 7 to 15 digits in all.
bool ValidPhone(std::string_view s) {
  if (s.size() < 8 || s.size() > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9') return false;
  for (char c : s.substr(1)) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// An id (a user's, a chat's), decoded: 1 to 128 bytes of CleanText. A
// token's `sub` may hold any such id ("bob@example.com", "Jo Ng"), and the
// desk names it in a URL percent-encoded.
bool ValidId(std::string_view s) { return proto::IsId(s) && net::IsUtf8(s); }

// A path segment percent-decoded ('+' stays '+') into `out`; false if
// malformed or not an id.
bool IdFromPath(std::string_view seg, std::string& out) {
  return notify::PercentDecode(seg, out, /*plus_is_space=*/false) && ValidId(out);
}

// Cursor: "<updated_at>.<chat_id>" of the last chat of the previous page.
std::string EncodeCursor(const store::Chat& c) {
  return std::to_string(c.updated_at) + "." + c.chat_id;
}
bool DecodeCursor(const std::string& s, std::pair<int64_t, std::string>& out) {
  size_t dot = s.find('.');
  if (dot == std::string::npos || !ParseInt(s.substr(0, dot), out.first)) return false;
  out.second = s.substr(dot + 1);
  return ValidId(out.second);
}

// Sends the store's answer back on the request's loop.
template <class T, class Fn>
std::function<void(store::Outcome<T>)> OnLoop(Context& ctx, size_t loop, Fn fn) {
  return [&ctx, loop, fn = std::move(fn)](store::Outcome<T> o) mutable {
    ctx.loops.Post(loop, [fn = std::move(fn), o = std::move(o)]() mutable { fn(std::move(o)); });
  };
}

template <class T>
net::Response StoreError(Context& ctx, size_t loop, const store::Outcome<T>& o) {
  if (o.failure == store::Failure::kEngine) spdlog::error("store: {}", o.error);
  const char* why = o.overloaded() ? "the store is busy; retry later"
                    : o.failure == store::Failure::kUnavailable
                        ? "the store cannot be reached; nothing was stored; retry later"
                        : "the store failed this request; retry later";
  net::Response r = ErrorResponse(ctx, loop, StoreErrorOf(o.overloaded()), why);
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

}  // namespace

bool ChatApi::Handle(net::Request& req, net::Responder& respond) {
  std::string_view path = req.Path();
  if (path == "/v1/sms/inbound" || path == "/v1/sms/status") {
    if (req.method != "POST") {
      respond(ErrorResponse(ctx_, req.loop, Error::kMethodNotAllowed, "use POST"));
    } else if (path == "/v1/sms/inbound") {
      SmsInbound(req, std::move(respond));
    } else {
      SmsStatus(req, std::move(respond));
    }
    return true;
  }
  bool chats = path == "/v1/user-chats" || path.rfind("/v1/user-chats/", 0) == 0;
  bool users = path.rfind("/v1/users/", 0) == 0;
  bool notes = path == "/v1/notifications";
  bool revoke = path == "/v1/revocations";
  if (!chats && !users && !notes && !revoke) return false;

  auth::Claims claims;
  const ChannelEntry* entry = nullptr;
  std::shared_ptr<const ChannelTable> table;
  net::Response err;
  if (!AuthorizeDesk(ctx_, req, claims, entry, table, err)) {
    respond(std::move(err));
    return true;
  }
  const std::string& m = req.method;
  auto bad_method = [&](const char* allow) {
    net::Response r =
        ErrorResponse(ctx_, req.loop, Error::kMethodNotAllowed, std::string("use ") + allow);
    r.headers.emplace_back("Allow", allow);
    respond(std::move(r));
  };
  if (revoke) {
    if (m == "POST") return Revoke(req, respond, claims, *entry), true;
    return bad_method("POST"), true;
  }
  if (path == "/v1/user-chats") {
    if (m == "POST") return OpenChat(req, respond, claims, *entry), true;
    if (req.IsGet()) return ListChats(req, respond, *entry), true;
    return bad_method("GET, HEAD, POST"), true;
  }
  if (chats) {
    // /v1/user-chats/{chat_id}/messages
    std::string_view rest = path.substr(std::string_view("/v1/user-chats/").size());
    size_t slash = rest.find('/');
    std::string chat_id;
    if (slash == std::string_view::npos || rest.substr(slash) != "/messages" ||
        !IdFromPath(rest.substr(0, slash), chat_id)) {
      respond(ErrorResponse(ctx_, req.loop, Error::kNotFound, "no such endpoint"));
      return true;
    }
    if (m == "POST") return PostMessage(req, respond, claims, *entry, chat_id), true;
    if (req.IsGet()) return ListMessages(req, respond, *entry, chat_id), true;
    return bad_method("GET, HEAD, POST"), true;
  }
  if (users) {
    std::string user_id;
    if (!IdFromPath(path.substr(std::string_view("/v1/users/").size()), user_id)) {
      respond(ErrorResponse(ctx_, req.loop, Error::kBadRequest, "bad user id"));
      return true;
    }
    if (m != "PUT") return bad_method("PUT"), true;
    return PutUser(req, respond, *entry, user_id), true;
  }
  if (!req.IsGet()) return bad_method("GET, HEAD"), true;
  ListNotifications(req, respond, *entry);
  return true;
}

void ChatApi::OpenChat(net::Request& req, const net::Responder& respond, const auth::Claims&,
                       const ChannelEntry& e) {
  boost::system::error_code ec;
  json::value body = json::parse(req.body, ec);
  const json::object* o = !ec ? body.if_object() : nullptr;
  const json::value* u = o ? o->if_contains("user_id") : nullptr;
  if (u == nullptr || !u->is_string() || !ValidId(std::string_view(u->as_string()))) {
    return respond(
        ErrorResponse(ctx_, req.loop, Error::kBadRequest, "body must be {\"user_id\":\"...\"}"));
  }
  std::string channel = e.settings.id, user(u->as_string());
  ctx_.store.Write<std::pair<store::Chat, bool>>(
      [channel, user](store::Db& db) {
        bool created = false;
        store::Chat c = chat::OpenChat(db, channel, user, base::WallMs(), created);
        return std::make_pair(c, created);
      },
      OnLoop<std::pair<store::Chat, bool>>(
          ctx_, req.loop, [this, loop = req.loop, respond](auto o) {
            if (!o.ok()) return respond(StoreError(ctx_, loop, o));
            std::string out = R"({"chat_id":)";
            proto::AppendJsonString(out, o.value->first.chat_id);
            out += o.value->second ? R"(,"created":true})" : R"(,"created":false})";
            respond(JsonResponse(201, std::move(out)));
          }));
}

void ChatApi::ListChats(net::Request& req, const net::Responder& respond, const ChannelEntry& e) {
  int64_t limit = 50;
  std::string lim, cursor;
  if (!QueryParam(req.Query(), "limit", lim) || !QueryParam(req.Query(), "cursor", cursor))
    return respond(ErrorResponse(ctx_, req.loop, Error::kBadRequest, "malformed query string"));
  if (!lim.empty() && (!ParseInt(lim, limit) || limit < 1 || limit > 200)) {
    return respond(ErrorResponse(ctx_, req.loop, Error::kBadRequest, "limit must be 1..200"));
  }
  std::optional<std::pair<int64_t, std::string>> before;
  if (!cursor.empty()) {
    std::pair<int64_t, std::string> c;
    if (!DecodeCursor(cursor, c))
      return respond(ErrorResponse(ctx_, req.loop, Error::kBadCursor, "bad paging cursor"));
    before = c;
  }
  std::string channel = e.settings.id;
  presence::ChannelIdx idx = e.idx;
  const size_t loop = req.loop;
  const int64_t start_us = std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  ctx_.store.Read<store::ChatPage>(
      [channel, before, limit](store::Db& db) {
        store::ChatPage p;
        p.chats = db.ListChats(channel, before, static_cast<int>(limit + 1));
        if (p.chats.size() > static_cast<size_t>(limit)) {
          p.chats.pop_back();
          p.next_cursor = EncodeCursor(p.chats.back());
        }
        return p;
      },
      OnLoop<store::ChatPage>(
          ctx_, loop, [this, loop, idx, respond, start_us](store::Outcome<store::ChatPage> o) {
            if (!o.ok()) return respond(StoreError(ctx_, loop, o));
            auto page = std::make_shared<store::ChatPage>(std::move(*o.value));
            std::vector<std::string> ids;
            for (const auto& c : page->chats) ids.push_back(c.user_id);
            // Online status from memory, never from the store.
            ctx_.presence.Query(
                idx, std::move(ids),
                [this, loop, page, respond, start_us](const std::vector<presence::UserInfo>& pres,
                                                      const std::vector<std::string>&) {
                  std::string out = R"({"user_chats":[)";
                  for (size_t i = 0; i < page->chats.size(); ++i) {
                    const store::Chat& c = page->chats[i];
                    if (i) out += ',';
                    out += R"({"chat_id":)";
                    proto::AppendJsonString(out, c.chat_id);
                    out += R"(,"user":{"id":)";
                    proto::AppendJsonString(out, c.user_id);
                    out += R"(,"name":)";
                    proto::AppendJsonString(out, c.user_name.empty() ? c.user_id : c.user_name);
                    out += ',';
                    proto::AppendPresenceFields(out, pres[i].online, pres[i].last_seen,
                                                pres[i].idle);
                    out += R"(},"last_message":)";
                    if (c.last_message) {
                      chat::AppendMessageJson(out, *c.last_message);
                    } else {
                      out += "null";
                    }
                    out += R"(,"unread":)";
                    proto::AppendInt(out, c.unread);
                    out += R"(,"last_seq":)";
                    proto::AppendInt(out, c.last_seq);
                    out += R"(,"user_ack_seq":)";
                    proto::AppendInt(out, c.user_ack_seq);
                    out += R"(,"user_read_seq":)";
                    proto::AppendInt(out, c.user_read_seq);
                    out += R"(,"updated_at":)";
                    proto::AppendInt(out, c.updated_at);
                    out += '}';
                  }
                  out += R"(],"next_cursor":)";
                  if (page->next_cursor.empty()) {
                    out += "null";
                  } else {
                    proto::AppendJsonString(out, page->next_cursor);
                  }
                  out += '}';
                  int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                       std::chrono::steady_clock::now().time_since_epoch())
                                       .count();
                  ctx_.metrics.Observe(loop, ctx_.m_chats_latency, (now_us - start_us) / 1e6);
                  respond(JsonResponse(200, std::move(out)));
                });
          }));
}

void ChatApi::Revoke(net::Request& req, const net::Responder& respond, const auth::Claims& c,
                     const ChannelEntry& e) {
  if (c.role != auth::Role::kServer) {
    return respond(ErrorResponse(ctx_, req.loop, Error::kForbidden,
                                 "revocations need a server token of the channel"));
  }
  boost::system::error_code ec;
  json::value body = json::parse(req.body, ec);
  const json::object* o = !ec ? body.if_object() : nullptr;
  const json::value* user = o ? o->if_contains("user_id") : nullptr;
  const json::value* manager = o ? o->if_contains("manager_id") : nullptr;
  const json::value* id = user != nullptr ? user : manager;
  if (id == nullptr || (user != nullptr && manager != nullptr) || !id->is_string() ||
      !ValidId(std::string(id->as_string()))) {
    return respond(ErrorResponse(ctx_, req.loop, Error::kBadRequest,
                                 "body must be {\"user_id\":\"...\"} or {\"manager_id\":\"...\"}"));
  }
  const config::Channel& cs = e.settings;
  const auth::Role role = user != nullptr ? auth::Role::kUser : auth::Role::kManager;
  const int64_t now_ms = base::WallMs();
  store::Revocation r;
  r.channel = cs.id;
  r.role = std::string(auth::RoleName(role));
  r.subject = std::string(id->as_string());
  r.revoked_at = now_ms / 1000;
  // Kept while a token issued before it can still be valid: the longest
  // lifetime the channel allows the role, plus the leeway; for good if the
  // channel sets no bound.
  const int64_t max_s = role == auth::Role::kUser ? cs.max_user_token_s : cs.max_manager_token_s;
  r.expires_at = max_s > 0 ? (r.revoked_at + max_s + ctx_.settings()->token_leeway_s) * 1000 : 0;
  ctx_.store.Write<bool>(
      [r, now_ms](store::Db& db) {
        db.PutRevocation(r, now_ms);
        return true;
      },
      [this, r, loop = req.loop, respond](const store::Outcome<bool>& out) {
        if (!out.ok()) return respond(StoreError(ctx_, loop, out));
        // Durable first, then in force here at once; other nodes read it
        // from the shared store within revocation_poll_ms.
        ctx_.revocations.Add(r);
        ctx_.RecheckSessions({false, r.channel, r.role, r.subject});
        json::object a;
        a["channel"] = r.channel;
        a["role"] = r.role;
        a["subject"] = r.subject;
        a["revoked_at"] = r.revoked_at * 1000;
        if (r.expires_at > 0)
          a["expires_at"] = r.expires_at;
        else
          a["expires_at"] = nullptr;
        respond(JsonResponse(201, json::serialize(a)));
      });
}

void ChatApi::PostMessage(net::Request& req, const net::Responder& respond, const auth::Claims& c,
                          const ChannelEntry& e, const std::string& chat_id) {
  // The node's send rate (max_sends_per_s): past it the cheapest answer, before the body is looked
  // at.
  if (!ctx_.sends.Take(base::SteadyMs())) {
    net::Response r = ErrorResponse(ctx_, req.loop, Error::kOverloaded,
                                    "too many sends on this node; retry later");
    r.headers.emplace_back("Retry-After",
                           std::to_string((ctx_.settings()->retry_after_ms + 999) / 1000));
    return respond(std::move(r));
  }
  // A manager's own pace on this node (manager_send_burst,
  // manager_sends_per_s); server tokens (the company's backend) are not
  // paced per subject.
  if (c.role == auth::Role::kManager) {
    std::string who = e.settings.id;
    who.push_back('\0');
    who += c.subject;
    if (int64_t wait = ctx_.manager_sends.Take(who, e.settings.manager_sends_per_s,
                                               static_cast<double>(e.settings.manager_send_burst),
                                               base::SteadyMs())) {
      ctx_.metrics.Add(req.loop, ctx_.m_limited_manager_send);
      net::Response r = ErrorResponse(ctx_, req.loop, Error::kRateLimited,
                                      "this manager sends faster than the channel allows");
      r.headers.emplace_back("Retry-After", std::to_string((wait + 999) / 1000));
      return respond(std::move(r));
    }
  }
  boost::system::error_code ec;
  json::value body = json::parse(req.body, ec);
  const json::object* o = !ec ? body.if_object() : nullptr;
  const json::value* t = o ? o->if_contains("text") : nullptr;
  if (t == nullptr || !t->is_string()) {
    return respond(
        ErrorResponse(ctx_, req.loop, Error::kBadRequest, "body must be {\"text\":\"...\"}"));
  }
  std::string text(t->as_string());
  auto s = ctx_.settings();
  if (text.empty())
    return respond(ErrorResponse(ctx_, req.loop, Error::kEmptyText, "text is empty"));
  if (text.find('\0') != std::string::npos)
    return respond(
        ErrorResponse(ctx_, req.loop, Error::kBadRequest, "text must not contain U+0000"));
  if (static_cast<int64_t>(text.size()) > s->max_text_bytes) {
    return respond(ErrorResponse(ctx_, req.loop, Error::kTextTooLong,
                                 "text is over " + std::to_string(s->max_text_bytes) + " bytes"));
  }
  std::string key(req.Header("idempotency-key"));
  if (key.size() > 200 || !CleanText(key)) {
    return respond(ErrorResponse(
        ctx_, req.loop, Error::kBadRequest,
        "Idempotency-Key must be at most 200 bytes of UTF-8 without control characters"));
  }
  // Each sender's keys are its own: two managers who both use key "1" send
  // two messages.
  std::string scope = (c.role == auth::Role::kServer ? "server:" : "manager:") + c.subject;
  chat::SendInput in = chat::ManagerSendInput(
      e.settings.id, chat_id, c.subject, scope, std::move(text), key, base::WallMs(),
      int64_t{e.settings.sms_delay_s} * 1000, int64_t{e.settings.ack_timeout_s} * 1000);
  ctx_.messenger.Send(
      in, e.idx, req.loop, [this, loop = req.loop, respond](store::Outcome<chat::SendResult> o) {
        if (!o.ok()) return respond(StoreError(ctx_, loop, o));
        const chat::SendResult& r = *o.value;
        if (r.status == chat::SendStatus::kNoChat) {
          return respond(
              ErrorResponse(ctx_, loop, Error::kUnknownChat, "no such chat in this channel"));
        }
        if (r.status == chat::SendStatus::kConflict) {
          return respond(ErrorResponse(ctx_, loop, Error::kIdempotencyConflict,
                                       "this Idempotency-Key was used for a different message"));
        }
        std::string out = R"({"id":)";
        proto::AppendJsonString(out, r.message.id);
        out += R"(,"chat_id":)";
        proto::AppendJsonString(out, r.message.chat_id);
        out += R"(,"seq":)";
        proto::AppendInt(out, r.message.seq);
        out += R"(,"created_at":)";
        proto::AppendInt(out, r.message.created_at);
        out += '}';
        respond(JsonResponse(201, std::move(out)));
      });
}

void ChatApi::ListMessages(net::Request& req, const net::Responder& respond, const ChannelEntry& e,
                           const std::string& chat_id) {
  int64_t after = 0, limit = 100;
  std::string a, l;
  if (!QueryParam(req.Query(), "after_seq", a) || !QueryParam(req.Query(), "limit", l))
    return respond(ErrorResponse(ctx_, req.loop, Error::kBadRequest, "malformed query string"));
  if ((!a.empty() && (!ParseInt(a, after) || after < 0)) ||
      (!l.empty() && (!ParseInt(l, limit) || limit < 1 || limit > 1000))) {
    return respond(
        ErrorResponse(ctx_, req.loop, Error::kBadRequest, "after_seq >= 0, limit 1..1000"));
  }
  std::string channel = e.settings.id;
  ctx_.store.Read<std::optional<std::vector<store::Message>>>(
      [channel, chat_id, after,
       limit](store::Db& db) -> std::optional<std::vector<store::Message>> {
        if (!db.GetChat(channel, chat_id)) return std::nullopt;
        return db.ListMessages(chat_id, after, static_cast<int>(limit));
      },
      OnLoop<std::optional<std::vector<store::Message>>>(
          ctx_, req.loop, [this, loop = req.loop, respond](auto o) {
            if (!o.ok()) return respond(StoreError(ctx_, loop, o));
            if (!*o.value)
              return respond(
                  ErrorResponse(ctx_, loop, Error::kUnknownChat, "no such chat in this channel"));
            std::string out = R"({"messages":[)";
            bool first = true;
            for (const auto& m : **o.value) {
              if (!first) out += ',';
              first = false;
              chat::AppendMessageJson(out, m);
            }
            out += "]}";
            respond(JsonResponse(200, std::move(out)));
          }));
}

void ChatApi::PutUser(net::Request& req, const net::Responder& respond, const ChannelEntry& e,
                      const std::string& user_id) {
  boost::system::error_code ec;
  json::value body = json::parse(req.body, ec);
  const json::object* o = !ec ? body.if_object() : nullptr;
  if (o == nullptr)
    return respond(ErrorResponse(ctx_, req.loop, Error::kBadJson, "body must be a JSON object"));
  store::UserProfile u;
  u.channel = e.settings.id;
  u.user_id = user_id;
  if (const json::value* v = o->if_contains("name")) {
    if (!v->is_string() || v->as_string().size() > 200 ||
        std::string_view(v->as_string()).find('\0') != std::string_view::npos) {
      return respond(ErrorResponse(ctx_, req.loop, Error::kBadRequest,
                                   "name must be a string of at most 200 bytes, without U+0000"));
    }
    u.name = std::string(v->as_string());
  }
  if (const json::value* v = o->if_contains("phone"); v && !v->is_null()) {
    if (!v->is_string() || !ValidPhone(std::string_view(v->as_string()))) {
      return respond(ErrorResponse(ctx_, req.loop, Error::kBadPhone,
                                   "phone must be E.164, e.g. +15551234567"));
    }
    u.phone = std::string(v->as_string());
  }
  if (const json::value* v = o->if_contains("sms_opt_in")) {
    if (!v->is_bool())
      return respond(
          ErrorResponse(ctx_, req.loop, Error::kBadRequest, "sms_opt_in must be true or false"));
    u.sms_opt_in = v->as_bool();
  }
  u.updated_at = base::WallMs();
  ctx_.store.Write<store::UserProfile>(
      [u](store::Db& db) {
        db.PutUser(u);
        return u;
      },
      OnLoop<store::UserProfile>(
          ctx_, req.loop, [this, loop = req.loop, respond](store::Outcome<store::UserProfile> o) {
            if (!o.ok()) return respond(StoreError(ctx_, loop, o));
            std::string out = R"({"user_id":)";
            proto::AppendJsonString(out, o.value->user_id);
            out += R"(,"name":)";
            proto::AppendJsonString(out, o.value->name);
            out += R"(,"phone":)";
            if (o.value->phone.empty()) {
              out += "null";
            } else {
              proto::AppendJsonString(out, o.value->phone);
            }
            out += o.value->sms_opt_in ? R"(,"sms_opt_in":true})" : R"(,"sms_opt_in":false})";
            respond(JsonResponse(200, std::move(out)));
          }));
}

void ChatApi::ListNotifications(net::Request& req, const net::Responder& respond,
                                const ChannelEntry& e) {
  std::string user;
  if (!QueryParam(req.Query(), "user_id", user) || !ValidId(user))
    return respond(ErrorResponse(ctx_, req.loop, Error::kBadRequest, "user_id is required"));
  std::string channel = e.settings.id;
  ctx_.store.Read<std::vector<store::Notification>>(
      [channel, user](store::Db& db) { return db.NotificationsOfUser(channel, user, 100); },
      OnLoop<std::vector<store::Notification>>(ctx_, req.loop,
                                               [this, loop = req.loop, respond](auto o) {
                                                 if (!o.ok())
                                                   return respond(StoreError(ctx_, loop, o));
                                                 std::string out = R"({"notifications":[)";
                                                 for (size_t i = 0; i < o.value->size(); ++i) {
                                                   if (i) out += ',';
                                                   chat::AppendNotificationJson(out, (*o.value)[i]);
                                                 }
                                                 out += "]}";
                                                 respond(JsonResponse(200, std::move(out)));
                                               }));
}

bool ChatApi::CheckSignature(const net::Request& req, const notify::Form& form,
                             net::Responder& respond) {
  auto s = ctx_.settings();
  std::string url =
      s->sms_public_url.empty() ? "http://" + std::string(req.Header("host")) : s->sms_public_url;
  url += req.target;
  if (s->sms_auth_token.empty() ||
      !notify::CheckTwilioSignature(s->sms_auth_token, url, form,
                                    req.Header("x-twilio-signature"))) {
    respond(
        ErrorResponse(ctx_, req.loop, Error::kBadSignature, "X-Twilio-Signature does not verify"));
    return false;
  }
  return true;
}

void ChatApi::SmsInbound(net::Request& req, net::Responder respond) {
  notify::Form form;
  if (!notify::ParseForm(req.body, form))
    return respond(ErrorResponse(ctx_, req.loop, Error::kBadRequest, "bad form body"));
  if (!CheckSignature(req, form, respond)) return;
  std::string from = notify::FormValue(form, "From");
  std::optional<bool> opt = notify::OptInKeyword(notify::FormValue(form, "Body"));
  auto twiml = [](net::Responder& r) {
    net::Response x;
    x.content_type = "text/xml";
    x.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";
    r(std::move(x));
  };
  // The provider's id makes each inbound message count once: a signed
  // request has no time in it, so a replayed STOP (or START) would
  // otherwise undo what the user said since.
  std::string sid = notify::FormValue(form, "MessageSid");
  if (sid.empty()) sid = notify::FormValue(form, "SmsSid");
  if (sid.empty())
    return respond(ErrorResponse(ctx_, req.loop, Error::kBadRequest, "MessageSid is required"));
  if (!opt || from.empty()) return twiml(respond);
  bool opt_in = *opt;
  ctx_.store.Write<int>(
      [from, opt_in, sid](store::Db& db) {
        return notify::ApplyInboundSms(db, sid, from, opt_in, base::WallMs());
      },
      OnLoop<int>(ctx_, req.loop,
                  [this, loop = req.loop, respond, twiml, from, opt_in,
                   sid](store::Outcome<int> o) mutable {
                    if (!o.ok()) return respond(StoreError(ctx_, loop, o));
                    if (*o.value < 0) {
                      spdlog::warn("sms inbound {}: already applied, ignored (replay)", sid);
                    } else {
                      spdlog::info("sms inbound from {}: opt-{} ({} user(s))", from,
                                   opt_in ? "in" : "out", *o.value);
                    }
                    twiml(respond);
                  }));
}

void ChatApi::SmsStatus(net::Request& req, net::Responder respond) {
  notify::Form form;
  if (!notify::ParseForm(req.body, form))
    return respond(ErrorResponse(ctx_, req.loop, Error::kBadRequest, "bad form body"));
  if (!CheckSignature(req, form, respond)) return;
  std::string sid = notify::FormValue(form, "MessageSid"),
              status = notify::FormValue(form, "MessageStatus");
  std::string code = notify::FormValue(form, "ErrorCode");
  if (sid.empty() || notify::StatusRank(status) == 0) {
    return respond(ErrorResponse(ctx_, req.loop, Error::kBadRequest,
                                 "MessageSid and a known MessageStatus are required"));
  }
  ctx_.store.Write<bool>(
      [sid, status, code](store::Db& db) {
        return notify::ApplyStatusCallback(db, sid, status, code, base::WallMs());
      },
      OnLoop<bool>(ctx_, req.loop, [this, loop = req.loop, respond](store::Outcome<bool> o) {
        if (!o.ok()) return respond(StoreError(ctx_, loop, o));
        if (!*o.value)
          return respond(ErrorResponse(ctx_, loop, Error::kUnknownSid,
                                       "no notification with this MessageSid"));
        respond(JsonResponse(200, R"({"status":"ok"})"));
      }));
}

}  // namespace onlined::api
