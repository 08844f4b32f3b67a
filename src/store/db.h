#pragma once
// store::Db: one connection to the durable store, the seam between the
// domain (chat/, notify/) and an engine (sqlite/, later postgres/).
//
// Blocking; not thread-safe: a Db belongs to one store thread (the writer or
// a reader, see store::Service) and is never used from an event loop.
// Failures of the engine (I/O, corruption, busy) throw store::DbError; the
// Service turns them into an error for the one operation that hit them.
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "store/types.h"

namespace onlined::store {

class DbError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Db {
 public:
  virtual ~Db() = default;

  // Transactions (writer only). Savepoints nest inside Begin/Commit.
  virtual void Begin() = 0;
  virtual void Commit() = 0;
  virtual void Rollback() = 0;
  virtual void Savepoint() = 0;
  virtual void ReleaseSavepoint() = 0;
  virtual void RollbackToSavepoint() = 0;

  // Chats.
  virtual std::optional<Chat> GetChat(const std::string& channel, const std::string& chat_id) = 0;
  virtual std::optional<Chat> FindChatOfUser(const std::string& channel,
                                             const std::string& user_id) = 0;
  virtual void InsertChat(const Chat& chat) = 0;
  // Newest first by (updated_at, chat_id); `before` is the cursor position.
  virtual std::vector<Chat> ListChats(const std::string& channel,
                                      std::optional<std::pair<int64_t, std::string>> before,
                                      int limit) = 0;
  virtual std::vector<Chat> ChatsOfUser(const std::string& channel, const std::string& user_id,
                                        int limit) = 0;
  // Moves the chat forward after a new message (seq, time, unread counter).
  virtual void UpdateChatAfterMessage(const std::string& chat_id, int64_t seq, int64_t at,
                                      bool from_user) = 0;
  // Raises (never lowers) the user's ack or read mark; returns the new mark.
  virtual int64_t RaiseUserAck(const std::string& chat_id, int64_t seq, int64_t at) = 0;
  virtual int64_t RaiseUserRead(const std::string& chat_id, int64_t seq) = 0;

  // Messages.
  virtual void InsertMessage(const Message& m) = 0;
  virtual std::vector<Message> ListMessages(const std::string& chat_id, int64_t after_seq,
                                            int limit) = 0;
  virtual std::optional<Message> GetMessage(const std::string& chat_id, int64_t seq) = 0;

  // Idempotency keys: (channel, scope, key) -> message, with a hash of the
  // request body to tell a retry from a different request.
  struct IdemEntry {
    std::string chat_id;
    int64_t seq = 0;
    std::string body_hash;
  };
  virtual std::optional<IdemEntry> GetIdem(const std::string& channel, const std::string& scope,
                                           const std::string& key) = 0;
  virtual void PutIdem(const std::string& channel, const std::string& scope, const std::string& key,
                       const IdemEntry& e, int64_t at) = 0;

  // Users.
  virtual std::optional<UserProfile> GetUser(const std::string& channel,
                                             const std::string& user_id) = 0;
  virtual void PutUser(const UserProfile& u) = 0;
  // Sets sms_opt_in for every user with this phone (inbound STOP/START).
  // Returns how many users changed.
  virtual int SetOptInByPhone(const std::string& phone, bool opt_in, int64_t at) = 0;
  // Records the provider's id of an inbound SMS. False if it was recorded
  // before: a replayed webhook, which must not be applied again.
  virtual bool RecordInboundSms(const std::string& sid, int64_t at) = 0;

  // The outbox.
  virtual int64_t InsertNotification(const Notification& n) = 0;
  virtual void UpdateNotification(const Notification& n) = 0;
  virtual std::optional<Notification> GetNotification(int64_t id) = 0;
  virtual std::optional<Notification> ScheduledNotificationOfChat(const std::string& chat_id) = 0;
  virtual std::optional<Notification> NotificationBySid(const std::string& sid) = 0;
  virtual std::vector<Notification> DueNotifications(int64_t now, int limit) = 0;
  virtual std::vector<Notification> NotificationsOfUser(const std::string& channel,
                                                        const std::string& user_id, int limit) = 0;
  // The newest time an SMS was sent to this user (for the rate limit).
  virtual std::optional<int64_t> LastSmsSentAt(const std::string& channel,
                                               const std::string& user_id) = 0;
  // Notifications left in `sending` by a crash: back to scheduled.
  virtual int RequeueSending(int64_t now) = 0;
};

}  // namespace onlined::store
