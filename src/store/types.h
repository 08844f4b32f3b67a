#pragma once
// Records of the durable state: user chats, messages, user profiles,
// idempotency keys and the notification outbox. Plain values; every engine
// (SQLite now, PostgreSQL for the cluster) stores exactly these.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace onlined::store {

struct Message {
  std::string id;
  std::string chat_id;
  int64_t seq = 0;
  std::string from;       // "user" | "manager"
  std::string sender_id;  // the user's or manager's id
  std::string text;
  int64_t created_at = 0;           // ms since the epoch
  std::optional<int64_t> acked_at;  // first ack by any of the user's sessions
};

struct Chat {
  std::string chat_id;
  std::string channel;
  std::string user_id;
  std::string user_name;  // from the user's profile ("" if none)
  int64_t created_at = 0;
  int64_t last_seq = 0;
  int64_t updated_at = 0;     // the newest message's time (or created_at)
  int64_t user_ack_seq = 0;   // the user's client received up to
  int64_t user_read_seq = 0;  // the user read up to
  int64_t unread = 0;         // the user's messages since the last manager message
  std::optional<Message> last_message;
};

struct UserProfile {
  std::string channel;
  std::string user_id;
  std::string name;
  std::string phone;  // E.164, "" if none
  bool sms_opt_in = false;
  int64_t updated_at = 0;
};

// A revoked subject (POST /v1/revocations): its tokens issued at or before
// `revoked_at` (seconds) are refused until `expires_at` (ms; 0: never), when
// every such token has expired anyway.
struct Revocation {
  std::string channel;
  std::string role;  // "user" | "manager"
  std::string subject;
  int64_t revoked_at = 0;  // seconds since the epoch
  int64_t expires_at = 0;  // ms since the epoch; 0: kept for good
};

// States of a notification (SMS) in the outbox.
enum class NotifyState { kScheduled, kSending, kSent, kCancelled, kFailed };
const char* NotifyStateName(NotifyState s);
bool ParseNotifyState(const std::string& s, NotifyState& out);

struct Notification {
  int64_t id = 0;
  std::string channel;
  std::string user_id;
  std::string chat_id;
  int64_t first_seq = 0;  // the manager messages it tells of
  int64_t last_seq = 0;
  NotifyState state = NotifyState::kScheduled;
  std::string reason;  // why cancelled/failed/waiting, or the provider's status
  int64_t due_at = 0;  // when the scheduler looks at it next
  int attempts = 0;
  std::string provider_sid;
  std::string provider_status;  // the provider's last status (queued, sent, delivered, ...)
  std::string phone;            // where it went (when sent)
  std::string body;             // what it said (when sent)
  std::string claimed_by;       // the node sending it (state sending)
  int64_t lease_until = 0;      // until when that claim holds; then another may retry it
  int64_t created_at = 0;
  int64_t updated_at = 0;
};

// A page of user chats, newest first.
struct ChatPage {
  std::vector<Chat> chats;
  std::string next_cursor;  // "" at the end
};

}  // namespace onlined::store
