#pragma once
// The contract's error codes, in one table: the code a client sees, the HTTP
// status it comes with, what happens to a WebSocket that gets it, and one
// line of meaning. Responses, refusal frames and the metrics labels
// (onlined_refusals_total{code}) are made from it; docs/protocol.md lists the
// same rows, and a test checks that it does. Pure data; thread-safe.
#include <cstdint>
#include <span>
#include <string_view>

namespace onlined::proto {

enum class Error : uint8_t {
  kBadJson,
  kBadFrame,
  kUnknownType,
  kHelloRequired,
  kHelloTimeout,
  kAlreadyHello,
  kBadToken,
  kTokenExpired,
  kTokenNotYetValid,
  kTokenTooLong,
  kUnknownChannel,
  kUnauthorized,
  kForbidden,
  kNotFound,
  kMethodNotAllowed,
  kTooManyIds,
  kBadRequest,
  kNotWebSocket,
  kOverloaded,
  kRateLimited,
  kTooManyErrors,
  kFrameTooLarge,
  kUnknownChat,
  kIdempotencyConflict,
  kEmptyText,
  kTextTooLong,
  kBadCursor,
  kBadPhone,
  kBadSignature,
  kUnknownSid,
  kStoreUnavailable,
  kReplayFailed,
  kBodyTooLarge,
  kHeadersTooLarge,
  kSessionExpired,
  kRefreshMismatch,
  kTokenRevoked,
  kKeyRemoved,
  kSessionRevoked,
  kShuttingDown,
  kOther,  // a code outside this table (counted, never sent on purpose)
};

// What a WebSocket that is refused with the code does.
enum class WsEffect : uint8_t {
  kStays,   // an error frame; the connection goes on
  kCloses,  // an error frame, then close 1008 (policy)
  kNone,    // not a WebSocket refusal (HTTP only, or a close code of its own)
};

struct ErrorInfo {
  Error error;
  std::string_view code;  // as sent: "bad_json"
  int http_status;        // 0: never an HTTP answer
  WsEffect ws;
  std::string_view meaning;
};

// The row of `e`.
const ErrorInfo& Info(Error e);
inline std::string_view Code(Error e) { return Info(e).code; }
inline int HttpStatus(Error e) { return Info(e).http_status; }

// The code of a store failure: overloaded (retry later) or store_unavailable.
inline Error StoreErrorOf(bool overloaded) {
  return overloaded ? Error::kOverloaded : Error::kStoreUnavailable;
}

// Every row, in enum order.
std::span<const ErrorInfo> AllErrors();

// The error whose code is `code`, or kOther.
Error FromCode(std::string_view code);

}  // namespace onlined::proto
