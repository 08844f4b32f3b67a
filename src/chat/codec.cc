#include "chat/codec.h"

#include "proto/json_writer.h"

namespace onlined::chat {

using proto::AppendInt;
using proto::AppendJsonString;

namespace {
void MessageFields(std::string& s, const store::Message& m) {
  s += R"("chat_id":)";
  AppendJsonString(s, m.chat_id);
  s += R"(,"seq":)";
  AppendInt(s, m.seq);
  s += R"(,"id":)";
  AppendJsonString(s, m.id);
  s += R"(,"from":)";
  AppendJsonString(s, m.from);
  s += R"(,"sender_id":)";
  AppendJsonString(s, m.sender_id);
  s += R"(,"text":)";
  AppendJsonString(s, m.text);
  s += R"(,"created_at":)";
  AppendInt(s, m.created_at);
}
}  // namespace

std::string EncodeMessageFrame(const store::Message& m) {
  std::string s = R"({"type":"message",)";
  MessageFields(s, m);
  s += '}';
  return s;
}

void AppendMessageJson(std::string& out, const store::Message& m) {
  out += '{';
  MessageFields(out, m);
  if (m.acked_at) {
    out += R"(,"acked_at":)";
    AppendInt(out, *m.acked_at);
  }
  out += '}';
}

std::string EncodeSentFrame(const std::string& client_msg_id, const store::Message& m) {
  std::string s = R"({"type":"sent","client_msg_id":)";
  AppendJsonString(s, client_msg_id);
  s += R"(,"chat_id":)";
  AppendJsonString(s, m.chat_id);
  s += R"(,"seq":)";
  AppendInt(s, m.seq);
  s += R"(,"id":)";
  AppendJsonString(s, m.id);
  s += R"(,"created_at":)";
  AppendInt(s, m.created_at);
  s += '}';
  return s;
}

std::string EncodeReceiptFrame(const std::string& chat_id, const std::string& user_id,
                               int64_t ack_seq, int64_t read_seq) {
  std::string s = R"({"type":"receipt","chat_id":)";
  AppendJsonString(s, chat_id);
  s += R"(,"user_id":)";
  AppendJsonString(s, user_id);
  s += R"(,"ack_seq":)";
  AppendInt(s, ack_seq);
  s += R"(,"read_seq":)";
  AppendInt(s, read_seq);
  s += '}';
  return s;
}

void AppendNotificationJson(std::string& out, const store::Notification& n) {
  out += R"({"id":)";
  AppendInt(out, n.id);
  out += R"(,"user_id":)";
  AppendJsonString(out, n.user_id);
  out += R"(,"chat_id":)";
  AppendJsonString(out, n.chat_id);
  out += R"(,"first_seq":)";
  AppendInt(out, n.first_seq);
  out += R"(,"last_seq":)";
  AppendInt(out, n.last_seq);
  out += R"(,"state":)";
  AppendJsonString(out, store::NotifyStateName(n.state));
  out += R"(,"reason":)";
  AppendJsonString(out, n.reason);
  out += R"(,"due_at":)";
  AppendInt(out, n.due_at);
  out += R"(,"attempts":)";
  AppendInt(out, n.attempts);
  out += R"(,"provider_sid":)";
  AppendJsonString(out, n.provider_sid);
  out += R"(,"provider_status":)";
  AppendJsonString(out, n.provider_status);
  out += R"(,"body":)";
  AppendJsonString(out, n.body);
  out += R"(,"created_at":)";
  AppendInt(out, n.created_at);
  out += R"(,"updated_at":)";
  AppendInt(out, n.updated_at);
  out += '}';
}

}  // namespace onlined::chat
