#include "chat/messages.h"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include <stdexcept>

namespace onlined::chat {

namespace {
std::string Hex(const unsigned char* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    s.push_back(kHex[p[i] >> 4]);
    s.push_back(kHex[p[i] & 15]);
  }
  return s;
}
}  // namespace

std::string NewId(const char* prefix) {
  unsigned char b[10];
  if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("RAND_bytes failed");
  return std::string(prefix) + Hex(b, sizeof b);
}

std::string BodyHash(std::string_view a, std::string_view b) {
  std::string data(a);
  data.push_back('\0');
  data.append(b);
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d);
  return Hex(d, 16);
}

store::Chat OpenChat(store::Db& db, const std::string& channel, const std::string& user_id,
                     int64_t now, bool& created) {
  created = false;
  if (auto c = db.FindChatOfUser(channel, user_id)) return *c;
  store::Chat c;
  c.chat_id = NewId("c_");
  c.channel = channel;
  c.user_id = user_id;
  c.created_at = now;
  c.updated_at = now;
  db.InsertChat(c);
  created = true;
  return c;
}

SendInput UserSendInput(const std::string& channel, const std::string& user_id,
                        const std::string& chat_id, const std::string& text,
                        const std::string& client_msg_id, int64_t now) {
  SendInput in;
  in.channel = channel;
  in.chat_id = chat_id;
  in.user_id = user_id;
  in.from = "user";
  in.sender_id = user_id;
  in.text = text;
  in.idem_scope = "user:" + user_id;
  in.idem_key = client_msg_id;
  in.body_hash = BodyHash(chat_id, text);
  in.now = now;
  return in;
}

SendInput ManagerSendInput(const std::string& channel, const std::string& chat_id,
                           const std::string& sender_id, const std::string& scope, std::string text,
                           const std::string& key, int64_t now, int64_t sms_delay_ms,
                           int64_t ack_timeout_ms) {
  SendInput in;
  in.channel = channel;
  in.chat_id = chat_id;
  in.from = "manager";
  in.sender_id = sender_id;
  in.body_hash = BodyHash(chat_id, text);
  in.text = std::move(text);
  in.idem_scope = scope;
  in.idem_key = key;
  in.now = now;
  in.schedule_sms = true;
  in.sms_delay_ms = sms_delay_ms;
  in.ack_timeout_ms = ack_timeout_ms;
  return in;
}

SendResult Send(store::Db& db, const SendInput& in) {
  SendResult r;
  if (!in.idem_key.empty()) {
    if (auto e = db.GetIdem(in.channel, in.idem_scope, in.idem_key)) {
      if (e->body_hash != in.body_hash) {
        r.status = SendStatus::kConflict;
        return r;
      }
      auto m = db.GetMessage(e->chat_id, e->seq);
      auto chat = db.GetChat(in.channel, e->chat_id);
      if (!m || !chat) throw store::DbError("idempotency key points at a missing message");
      r.status = SendStatus::kDuplicate;
      r.message = std::move(*m);
      r.user_id = chat->user_id;
      return r;
    }
  }
  std::optional<store::Chat> chat;
  if (!in.chat_id.empty()) {
    chat = db.GetChat(in.channel, in.chat_id);
    if (!chat || (in.from == "user" && chat->user_id != in.user_id)) {
      r.status = SendStatus::kNoChat;
      return r;
    }
  } else if (in.from == "user") {
    chat = OpenChat(db, in.channel, in.user_id, in.now, r.chat_created);
  } else {
    r.status = SendStatus::kNoChat;
    return r;
  }
  store::Message& m = r.message;
  m.id = NewId("m_");
  m.chat_id = chat->chat_id;
  m.seq = chat->last_seq + 1;
  m.from = in.from;
  m.sender_id = in.sender_id;
  m.text = in.text;
  m.created_at = in.now;
  db.InsertMessage(m);
  db.UpdateChatAfterMessage(m.chat_id, m.seq, m.created_at, in.from == "user");
  if (!in.idem_key.empty()) {
    db.PutIdem(in.channel, in.idem_scope, in.idem_key, {m.chat_id, m.seq, in.body_hash}, in.now);
  }
  r.user_id = chat->user_id;
  if (in.from == "manager" && in.schedule_sms) {
    if (auto pending = db.ScheduledNotificationOfChat(m.chat_id)) {
      // Joins the pending notification: one SMS tells of all of them.
      pending->last_seq = m.seq;
      pending->updated_at = in.now;
      db.UpdateNotification(*pending);
      r.notification_id = pending->id;
    } else {
      store::Notification n;
      n.channel = in.channel;
      n.user_id = chat->user_id;
      n.chat_id = m.chat_id;
      n.first_seq = n.last_seq = m.seq;
      n.state = store::NotifyState::kScheduled;
      n.reason = "waiting";
      n.due_at = in.now + in.ack_timeout_ms + in.sms_delay_ms;
      n.created_at = n.updated_at = in.now;
      r.notification_id = db.InsertNotification(n);
    }
  }
  return r;
}

}  // namespace onlined::chat
