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
  if (db.InsertChat(c)) {
    created = true;
    return c;
  }
  // Another writer opened it a moment ago (one chat per user is a constraint).
  if (auto other = db.FindChatOfUser(channel, user_id)) return *other;
  throw store::DbError("the user's chat was neither inserted nor found");
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

store::AppendInput ToAppend(const SendInput& in) {
  store::AppendInput a;
  a.channel = in.channel;
  a.chat_id = in.chat_id;
  a.user_id = in.user_id;
  a.from = in.from;
  a.sender_id = in.sender_id;
  a.text = in.text;
  a.idem_scope = in.idem_scope;
  a.idem_key = in.idem_key;
  a.body_hash = in.body_hash;
  a.message_id = NewId("m_");
  if (in.chat_id.empty()) a.new_chat_id = NewId("c_");
  a.now = in.now;
  if (in.from == "manager" && in.schedule_sms) {
    a.sms_due_at = in.now + in.ack_timeout_ms + in.sms_delay_ms;
  }
  return a;
}

SendResult Send(store::Db& db, const SendInput& in) { return db.Append(ToAppend(in)); }

}  // namespace onlined::chat
