#pragma once
// JSON of chat records, as the contract shows them (the `message` frame, the
// HTTP calls). Pure; thread-safe.
#include <string>

#include "store/types.h"

namespace onlined::chat {

// {"type":"message","chat_id":..,"seq":..,"id":..,"from":..,"text":..,"created_at":..}
std::string EncodeMessageFrame(const store::Message& m);
// The same object without "type", appended to `out` (HTTP lists).
void AppendMessageJson(std::string& out, const store::Message& m);
// {"type":"sent","client_msg_id":..,"chat_id":..,"seq":..,"id":..,"created_at":..}
std::string EncodeSentFrame(const std::string& client_msg_id, const store::Message& m);
// {"type":"receipt","chat_id":..,"user_id":..,"ack_seq":..,"read_seq":..} (to managers)
std::string EncodeReceiptFrame(const std::string& chat_id, const std::string& user_id,
                               int64_t ack_seq, int64_t read_seq);
void AppendNotificationJson(std::string& out, const store::Notification& n);

}  // namespace onlined::chat
