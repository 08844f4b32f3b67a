#include "proto/errors.h"

#include <array>

namespace onlined::proto {

namespace {

using E = Error;
using W = WsEffect;

// Keep in the order of the enum (checked by errors_test.cc) and in step with
// docs/protocol.md "Error codes" (checked too).
constexpr std::array<ErrorInfo, static_cast<size_t>(E::kOther) + 1> kTable = {{
    {E::kBadJson, "bad_json", 400, W::kStays,
     "the frame or body is not JSON (before hello the connection closes)"},
    {E::kBadFrame, "bad_frame", 400, W::kStays,
     "a field is missing or of the wrong type, or a binary frame"},
    {E::kUnknownType, "unknown_type", 400, W::kStays, "a frame type the contract does not have"},
    {E::kHelloRequired, "hello_required", 0, W::kCloses,
     "a frame before hello (or before welcome)"},
    {E::kHelloTimeout, "hello_timeout", 0, W::kCloses, "no hello within hello_timeout_ms"},
    {E::kAlreadyHello, "already_hello", 0, W::kStays, "a second hello"},
    {E::kBadToken, "bad_token", 401, W::kCloses, "the token is malformed, forged or lacks a claim"},
    {E::kTokenExpired, "token_expired", 401, W::kCloses, "the token's exp has passed"},
    {E::kTokenNotYetValid, "token_not_yet_valid", 401, W::kCloses,
     "the token's nbf or iat is ahead of the server's clock by more than token_leeway_s"},
    {E::kTokenTooLong, "token_lifetime_too_long", 401, W::kCloses,
     "the token lives longer (exp - iat) than its channel allows its role"},
    {E::kUnknownChannel, "unknown_channel", 401, W::kCloses,
     "the token names a channel this server does not have"},
    {E::kUnauthorized, "unauthorized", 401, W::kNone, "no Bearer token (or not the metrics token)"},
    {E::kForbidden, "forbidden", 403, W::kStays,
     "the role may not do this (a user token on a desk call)"},
    {E::kNotFound, "not_found", 404, W::kNone, "no such endpoint"},
    {E::kMethodNotAllowed, "method_not_allowed", 405, W::kNone,
     "the endpoint exists, not with this method"},
    {E::kTooManyIds, "too_many_ids", 413, W::kNone, "more than 1000 ids in one presence query"},
    {E::kBadRequest, "bad_request", 400, W::kNone,
     "a malformed request (HTTP, query string, body, upgrade)"},
    {E::kNotWebSocket, "not_websocket", 426, W::kNone,
     "GET /v1/connect without the WebSocket upgrade"},
    {E::kOverloaded, "overloaded", 503, W::kStays,
     "refused to keep the server responsive; retry after Retry-After / retry_after_ms"},
    {E::kRateLimited, "rate_limited", 429, W::kStays,
     "faster than the channel allows: a session's or user's sends, a session's receipts, a "
     "manager's sends (see Rate limits); retry after retry_after_ms / Retry-After"},
    {E::kTooManyErrors, "too_many_errors", 0, W::kCloses, "50 refused frames on one connection"},
    {E::kFrameTooLarge, "frame_too_large", 0, W::kNone,
     "a message over max_frame_bytes (close 1009)"},
    {E::kUnknownChat, "unknown_chat", 404, W::kStays,
     "no such chat in this channel (or not the user's)"},
    {E::kIdempotencyConflict, "idempotency_conflict", 409, W::kStays,
     "the key was used for a different message"},
    {E::kEmptyText, "empty_text", 400, W::kStays, "a message without text"},
    {E::kTextTooLong, "text_too_long", 413, W::kStays, "text over max_text_bytes"},
    {E::kBadCursor, "bad_cursor", 400, W::kNone, "a cursor this server did not hand out"},
    {E::kBadPhone, "bad_phone", 400, W::kNone, "a phone number not in E.164"},
    {E::kBadSignature, "bad_signature", 403, W::kNone,
     "a provider webhook whose X-Twilio-Signature does not match"},
    {E::kUnknownSid, "unknown_sid", 404, W::kNone, "a status callback for no notification of ours"},
    {E::kStoreUnavailable, "store_unavailable", 503, W::kStays,
     "the store failed the write or cannot be reached: nothing was stored, unless PostgreSQL "
     "stopped answering after the commit was sent (then unknown: retry with the same "
     "Idempotency-Key)"},
    {E::kReplayFailed, "replay_failed", 0, W::kStays,
     "the messages missed while away could not be read; reconnect"},
    {E::kBodyTooLarge, "body_too_large", 413, W::kNone, "an HTTP body over max_body_bytes"},
    {E::kHeadersTooLarge, "headers_too_large", 431, W::kNone, "HTTP request headers over 16 KiB"},
    {E::kSessionExpired, "session_expired", 0, W::kNone,
     "the session's token reached its exp without a refresh: error frame, then close 4001"},
    {E::kRefreshMismatch, "refresh_mismatch", 0, W::kStays,
     "a refresh token for another channel, subject or role (the session keeps its token)"},
    {E::kTokenRevoked, "token_revoked", 401, W::kCloses,
     "the token's subject was revoked (POST /v1/revocations) at or after the token's iat"},
    {E::kKeyRemoved, "key_removed", 0, W::kNone,
     "the key that signed the session's token was removed from its channel: error frame, then "
     "close 4002"},
    {E::kSessionRevoked, "session_revoked", 0, W::kNone,
     "the session's subject was revoked (POST /v1/revocations): error frame, then close 4003"},
    {E::kShuttingDown, "shutting_down", 0, W::kNone,
     "the server is draining: the close 1001's reason, with retry_after_ms spread over "
     "drain_spread_ms"},
    {E::kOther, "other", 500, W::kNone, "an unexpected failure"},
}};

}  // namespace

const ErrorInfo& Info(Error e) { return kTable[static_cast<size_t>(e)]; }

std::span<const ErrorInfo> AllErrors() { return kTable; }

Error FromCode(std::string_view code) {
  for (const ErrorInfo& i : kTable) {
    if (i.code == code) return i.error;
  }
  return E::kOther;
}

}  // namespace onlined::proto
