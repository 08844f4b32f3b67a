#include "proto/frames.h"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cstring>

#include "proto/ids.h"
#include "proto/json_writer.h"

namespace onlined::proto {

namespace json = boost::json;

const std::string_view kPongFrame = R"({"type":"pong"})";

namespace {

bool Fail(FrameError& err, std::string_view code, std::string message) {
  err.code = code;
  err.message = std::move(message);
  return false;
}

// Reads a required non-empty string field of at most `max` bytes, without
// U+0000.
bool GetString(const json::object& o, std::string_view key, size_t max, std::string& out,
               FrameError& err, bool required = true) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) {
    if (!required) return true;
    return Fail(err, "bad_frame", "missing field '" + std::string(key) + "'");
  }
  const json::string* s = v->if_string();
  if (s == nullptr)
    return Fail(err, "bad_frame", "field '" + std::string(key) + "' must be a string");
  if (s->size() > max)
    return Fail(err, "bad_frame", "field '" + std::string(key) + "' is too long");
  if (required && s->empty())
    return Fail(err, "bad_frame", "field '" + std::string(key) + "' is empty");
  // A NUL would end the string early where a C string carries it (the
  // PostgreSQL engine's parameters): "a\u0000b" stored as "a".
  if (std::string_view(s->data(), s->size()).find('\0') != std::string_view::npos)
    return Fail(err, "bad_frame", "field '" + std::string(key) + "' must not contain U+0000");
  out.assign(s->data(), s->size());
  return true;
}

// Reads a non-negative integer field (JSON numbers without fraction).
bool GetSeq(const json::value* v, std::string_view key, int64_t& out, FrameError& err) {
  if (v == nullptr) return Fail(err, "bad_frame", "missing field '" + std::string(key) + "'");
  if (v->is_int64() && v->get_int64() >= 0) {
    out = v->get_int64();
    return true;
  }
  if (v->is_uint64() && v->get_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    out = static_cast<int64_t>(v->get_uint64());
    return true;
  }
  return Fail(err, "bad_frame", "field '" + std::string(key) + "' must be a non-negative integer");
}

constexpr size_t kMaxTokenBytes = 4096;
constexpr size_t kMaxResumeChats = 1000;

}  // namespace

bool ParseClientFrame(std::string_view text, ClientFrame& out, FrameError& err) {
  if (IsCanonicalPing(text)) {
    out.type = FrameType::kPing;
    return true;
  }
  // Small frames parse into a stack buffer; larger ones spill to the heap.
  unsigned char buf[4096];
  json::monotonic_resource mr(buf, sizeof buf);
  json::parse_options opts;
  opts.max_depth = 8;
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec, &mr, opts);
  if (ec) return Fail(err, "bad_json", "frame is not valid JSON: " + ec.message());
  const json::object* o = v.if_object();
  if (o == nullptr) return Fail(err, "bad_frame", "frame must be a JSON object");
  const json::value* t = o->if_contains("type");
  if (t == nullptr || !t->is_string()) return Fail(err, "bad_frame", "missing field 'type'");
  std::string_view type(t->get_string().data(), t->get_string().size());

  if (type == "ping") {
    out.type = FrameType::kPing;
    return true;
  }
  if (type == "hello") {
    out.type = FrameType::kHello;
    if (!GetString(*o, "token", kMaxTokenBytes, out.token, err)) return false;
    out.resume.clear();
    if (const json::value* r = o->if_contains("resume"); r != nullptr && !r->is_null()) {
      const json::object* ro = r->if_object();
      if (ro == nullptr) return Fail(err, "bad_frame", "field 'resume' must be an object");
      if (ro->size() > kMaxResumeChats)
        return Fail(err, "bad_frame", "field 'resume' has too many chats");
      for (const auto& kv : *ro) {
        if (kv.key().empty() || kv.key().size() > kMaxIdBytes ||
            std::string_view(kv.key().data(), kv.key().size()).find('\0') !=
                std::string_view::npos) {
          return Fail(err, "bad_frame", "field 'resume' has a bad chat id");
        }
        int64_t seq = 0;
        if (!GetSeq(&kv.value(), "resume." + std::string(kv.key()), seq, err)) return false;
        out.resume.emplace_back(std::string(kv.key()), seq);
      }
    }
    out.presence_after.reset();
    if (const json::value* p = o->if_contains("presence_after"); p != nullptr && !p->is_null()) {
      int64_t after = 0;
      if (!GetSeq(p, "presence_after", after, err)) return false;
      out.presence_after = after;
    }
    return true;
  }
  if (type == "refresh") {
    out.type = FrameType::kRefresh;
    return GetString(*o, "token", kMaxTokenBytes, out.token, err);
  }
  if (type == "ack" || type == "read") {
    out.type = type == "ack" ? FrameType::kAck : FrameType::kRead;
    if (!GetString(*o, "chat_id", kMaxIdBytes, out.chat_id, err)) return false;
    return GetSeq(o->if_contains("seq"), "seq", out.seq, err);
  }
  if (type == "send") {
    out.type = FrameType::kSend;
    out.chat_id.clear();
    if (!GetString(*o, "chat_id", kMaxIdBytes, out.chat_id, err, /*required=*/false)) return false;
    if (!GetString(*o, "client_msg_id", kMaxIdBytes, out.client_msg_id, err)) return false;
    // The text limit is the server's (config); the frame limit bounds it here.
    return GetString(*o, "text", text.size(), out.text, err);
  }
  if (type == "state") {
    out.type = FrameType::kState;
    std::string state;
    if (!GetString(*o, "state", 16, state, err)) return false;
    if (state != "active" && state != "idle") {
      return Fail(err, "bad_frame", "field 'state' must be \"active\" or \"idle\"");
    }
    out.idle = state == "idle";
    return true;
  }
  std::string shown(type.substr(0, 32));
  return Fail(err, "unknown_type", "unknown frame type '" + shown + "'");
}

std::string EncodeWelcome(std::string_view session_id, int heartbeat_s,
                          int64_t heartbeat_timeout_ms, std::optional<uint64_t> event_seq,
                          std::optional<int64_t> expires_at_ms) {
  std::string s = R"({"type":"welcome","session_id":)";
  AppendJsonString(s, session_id);
  s += R"(,"heartbeat_s":)";
  AppendInt(s, heartbeat_s);
  s += R"(,"heartbeat_timeout_ms":)";
  AppendInt(s, heartbeat_timeout_ms);
  if (event_seq) {
    s += R"(,"event_seq":)";
    AppendInt(s, static_cast<int64_t>(*event_seq));
  }
  if (expires_at_ms) {
    s += R"(,"expires_at":)";
    AppendInt(s, *expires_at_ms);
  }
  s += '}';
  return s;
}

std::string EncodeRefreshed(int64_t expires_at_ms) {
  std::string s = R"({"type":"refreshed","expires_at":)";
  AppendInt(s, expires_at_ms);
  s += '}';
  return s;
}

std::string EncodeError(std::string_view code, std::string_view message,
                        std::optional<int64_t> retry_after_ms) {
  std::string s = R"({"type":"error","code":)";
  AppendJsonString(s, code);
  s += R"(,"message":)";
  AppendJsonString(s, message);
  if (retry_after_ms) {
    s += R"(,"retry_after_ms":)";
    AppendInt(s, *retry_after_ms);
  }
  s += '}';
  return s;
}

namespace {

// ScanUserIds without its promise about `ids`: on false they may hold the
// ids met before the scan gave up.
bool ScanUserIdsInto(std::string_view body, std::vector<std::string_view>& ids) {
  size_t i = 0;
  const size_t n = body.size();
  auto ws = [&] {
    while (i < n && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r')) ++i;
  };
  auto lit = [&](std::string_view t) {
    if (body.substr(i, t.size()) != t) return false;
    i += t.size();
    return true;
  };
  auto ch = [&](char c) {  // one byte: no call to compare
    if (i >= n || body[i] != c) return false;
    ++i;
    return true;
  };
  ws();
  if (!ch('{')) return false;
  ws();
  if (!lit(R"("user_ids")")) return false;
  ws();
  if (!ch(':')) return false;
  ws();
  if (!ch('[')) return false;
  ws();
  if (i < n && body[i] == ']') {
    ++i;
  } else {
    for (;;) {
      if (!ch('"')) return false;
      const size_t start = i;
      while (i < n && IsPlainJsonChar(static_cast<unsigned char>(body[i]))) ++i;
      if (!ch('"')) return false;  // the end, an escape or a byte to validate
      ids.push_back(body.substr(start, i - 1 - start));
      ws();
      if (i < n && body[i] == ']') {
        ++i;
        break;
      }
      if (!ch(',')) return false;
      ws();
    }
  }
  ws();
  if (!ch('}')) return false;
  ws();
  return i == n;
}

}  // namespace

bool ScanUserIds(std::string_view body, std::vector<std::string_view>& ids) {
  ids.clear();
  if (ScanUserIdsInto(body, ids)) return true;
  // The full parse decides alone: the ids before an escape, or before a key
  // the parse keeps instead, are not the body's.
  ids.clear();
  return false;
}

char* WritePresenceFields(char* p, bool online, int64_t last_seen, bool idle) {
  // Each literal is put on its own, so that every copy has a constant size
  // and compiles to a few moves instead of a call to memcpy.
  auto put = [&p]<size_t N>(const char(&s)[N]) {
    std::memcpy(p, s, N - 1);
    p += N - 1;
  };
  if (online) {
    put(R"("online":true,"last_seen":)");
  } else {
    put(R"("online":false,"last_seen":)");
  }
  if (last_seen > 0) {
    p = WriteInt(p, last_seen);
  } else {
    put("null");
  }
  if (online) {
    if (idle) {
      put(R"(,"state":"idle")");
    } else {
      put(R"(,"state":"active")");
    }
  }
  return p;
}

void AppendPresenceFields(std::string& out, bool online, int64_t last_seen, bool idle) {
  char buf[kPresenceFieldsMax];
  out.append(buf, WritePresenceFields(buf, online, last_seen, idle));
}

std::string EncodePresence(std::string_view user_id, bool online, int64_t last_seen, bool idle,
                           uint64_t event_seq) {
  std::string s = R"({"type":"presence","user_id":)";
  AppendJsonString(s, user_id);
  s += ',';
  AppendPresenceFields(s, online, last_seen, idle);
  s += R"(,"event_seq":)";
  AppendInt(s, static_cast<int64_t>(event_seq));
  s += '}';
  return s;
}

std::string EncodePresenceReset(uint64_t event_seq) {
  std::string s = R"({"type":"presence_reset","event_seq":)";
  AppendInt(s, static_cast<int64_t>(event_seq));
  s += '}';
  return s;
}

std::string EncodeHttpError(std::string_view code, std::string_view message) {
  std::string s = R"({"error":{"code":)";
  AppendJsonString(s, code);
  s += R"(,"message":)";
  AppendJsonString(s, message);
  s += "}}";
  return s;
}

}  // namespace onlined::proto
