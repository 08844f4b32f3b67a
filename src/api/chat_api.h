#pragma once
// The contract's chat calls (user chats, messages, users, notifications, the
// SMS webhooks), thin over chat/, store/ and notify/. Runs on the request's
// loop; store work runs on store threads and answers come back by Responder.
#include "api/context.h"
#include "net/handler.h"

namespace onlined::api {

class ChatApi {
 public:
  explicit ChatApi(Context& ctx) : ctx_(ctx) {}

  // True if it handled the request (the path is one of its calls).
  bool Handle(net::Request& req, net::Responder& respond);

 private:
  void OpenChat(net::Request& req, const net::Responder& respond, const auth::Claims& c,
                const ChannelEntry& e);
  void ListChats(net::Request& req, const net::Responder& respond, const ChannelEntry& e);
  void PostMessage(net::Request& req, const net::Responder& respond, const auth::Claims& c,
                   const ChannelEntry& e, const std::string& chat_id);
  void ListMessages(net::Request& req, const net::Responder& respond, const ChannelEntry& e,
                    const std::string& chat_id);
  void PutUser(net::Request& req, const net::Responder& respond, const ChannelEntry& e,
               const std::string& user_id);
  void ListNotifications(net::Request& req, const net::Responder& respond, const ChannelEntry& e);
  // POST /v1/revocations (server role): ends a user's or manager's sessions
  // and refuses the subject's tokens issued until now.
  void Revoke(net::Request& req, const net::Responder& respond, const auth::Claims& c,
              const ChannelEntry& e);
  void SmsInbound(net::Request& req, net::Responder respond);
  void SmsStatus(net::Request& req, net::Responder respond);
  bool CheckSignature(const net::Request& req,
                      const std::vector<std::pair<std::string, std::string>>& form,
                      net::Responder& respond);

  Context& ctx_;
};

}  // namespace onlined::api
