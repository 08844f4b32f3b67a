#pragma once
// Codec for the WebSocket frames of contract v1 (docs/protocol.md).
// Parsing is strict about types and lenient about unknown extra fields (so
// clients may add to the contract). Encoding writes compact JSON.
// Pure functions, thread-safe, no I/O. Fuzzed by fuzz/frames_fuzz.cc.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace onlined::proto {

enum class FrameType { kHello, kPing, kAck, kRead, kSend, kState, kRefresh };

struct ClientFrame {
  FrameType type = FrameType::kPing;
  // hello, refresh
  std::string token;
  std::vector<std::pair<std::string, int64_t>> resume;  // chat_id -> last seq
  std::optional<int64_t> presence_after;
  // ack, read, send
  std::string chat_id;
  int64_t seq = 0;
  std::string client_msg_id;
  std::string text;
  // state
  bool idle = false;
};

// Why a frame was refused: `code` is the contract's error code
// ("bad_json", "bad_frame", "unknown_type"), `message` says what is wrong.
struct FrameError {
  std::string_view code;
  std::string message;
};

// True if `text` is exactly the canonical ping frame: the heartbeat's fast
// path, which needs no JSON parse.
inline bool IsCanonicalPing(std::string_view text) { return text == R"({"type":"ping"})"; }

// Parses one client frame. On failure returns false and fills `err`.
bool ParseClientFrame(std::string_view text, ClientFrame& out, FrameError& err);

// The body of POST /v1/presence/query in the shape clients send it,
// {"user_ids":["a","b",...]} (JSON whitespace allowed between tokens), with
// ids of printable ASCII and no escapes: fills `ids` with views into `body`
// and returns true. Anything else (another key, an escape, a byte outside
// printable ASCII, a syntax error) returns false with `ids` empty, and the
// caller parses the body in full, which decides what is valid and words the
// error. So the fast path answers only what the full parse would answer the
// same way (fuzz/frames_fuzz.cc checks that).
bool ScanUserIds(std::string_view body, std::vector<std::string_view>& ids);

// Server frames.
std::string EncodeWelcome(std::string_view session_id, int heartbeat_s,
                          int64_t heartbeat_timeout_ms, std::optional<uint64_t> event_seq,
                          std::optional<int64_t> expires_at_ms = std::nullopt);
// The answer to a refresh: the session's new end (ms since the epoch).
std::string EncodeRefreshed(int64_t expires_at_ms);
std::string EncodeError(std::string_view code, std::string_view message,
                        std::optional<int64_t> retry_after_ms = std::nullopt);
// Appends a user's presence as every answer and event spells it:
// "online":<bool>,"last_seen":<ms or null>, and while online ,"state":"active"|"idle".
void AppendPresenceFields(std::string& out, bool online, int64_t last_seen, bool idle);
// The same written at `p`, which has room for kPresenceFieldsMax bytes;
// returns the end of what it wrote.
inline constexpr size_t kPresenceFieldsMax = 64;
char* WritePresenceFields(char* p, bool online, int64_t last_seen, bool idle);

std::string EncodePresence(std::string_view user_id, bool online, int64_t last_seen, bool idle,
                           uint64_t event_seq);
std::string EncodePresenceReset(uint64_t event_seq);
// The body of every HTTP error: {"error":{"code":...,"message":...}}.
std::string EncodeHttpError(std::string_view code, std::string_view message);

extern const std::string_view kPongFrame;

}  // namespace onlined::proto
