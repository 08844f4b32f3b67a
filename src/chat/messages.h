#pragma once
// Chat logic over the store seam: user chats, per-chat `seq` without gaps,
// idempotent sends, and the outbox entry a manager's message schedules.
// Engine-agnostic: these functions take a store::Db and run inside the
// writer's group transaction; a send is one Db::Append (the message, its
// idempotency key and its notification commit together, or not at all).
#include <cstdint>
#include <string>

#include "store/db.h"

namespace onlined::chat {

struct SendInput {
  std::string channel;
  std::string chat_id;  // empty for a user's send: the user's chat (opened if none)
  std::string user_id;  // the user, for user sends
  std::string from;     // "user" | "manager"
  std::string sender_id;
  std::string text;
  std::string idem_scope;  // whose key it is: "manager:<id>" or "user:<id>"
  std::string idem_key;    // "" for none
  std::string body_hash;   // of what identifies the request (chat + text)
  int64_t now = 0;
  // A manager's message schedules an SMS (docs/protocol.md, "Delivery and the SMS fallback"):
  // due at now + ack_timeout + sms_delay, pulled earlier to now + sms_delay
  // when the user turns out to be offline. The decision is made at fire time.
  bool schedule_sms = false;
  int64_t sms_delay_ms = 120000;
  int64_t ack_timeout_ms = 10000;
};

// What a send did (store/db.h, AppendStatus and AppendResult).
using SendStatus = store::AppendStatus;
using SendResult = store::AppendResult;

// A user's `send` frame: no SMS; the idempotency key (client_msg_id) is the
// user's own; without chat_id the user's chat (opened if none).
SendInput UserSendInput(const std::string& channel, const std::string& user_id,
                        const std::string& chat_id, const std::string& text,
                        const std::string& client_msg_id, int64_t now);

// A manager's (or a server token's) POST: schedules the SMS fallback with the
// channel's delays; the Idempotency-Key is the sender's own (`scope` is
// "manager:<id>" or "server:<id>").
SendInput ManagerSendInput(const std::string& channel, const std::string& chat_id,
                           const std::string& sender_id, const std::string& scope, std::string text,
                           const std::string& key, int64_t now, int64_t sms_delay_ms,
                           int64_t ack_timeout_ms);

// The store's form of a send: new ids, the SMS due time.
store::AppendInput ToAppend(const SendInput& in);

// Stores one message. Throws store::DbError on engine failure.
SendResult Send(store::Db& db, const SendInput& in);

// The user's chat in the channel, opened if there is none.
store::Chat OpenChat(store::Db& db, const std::string& channel, const std::string& user_id,
                     int64_t now, bool& created);

// A random id with a prefix, e.g. "c_3f9a...". Thread-safe.
std::string NewId(const char* prefix);
// A short hex digest identifying a request body.
std::string BodyHash(std::string_view a, std::string_view b);

}  // namespace onlined::chat
