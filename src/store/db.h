#pragma once
// store::Db: one connection to the durable store, the seam between the
// domain (chat/, notify/) and an engine (sqlite/, postgres/).
//
// Blocking; not thread-safe: a Db belongs to one store thread (the writer or
// a reader, see store::Service) and is never used from an event loop.
// Failures of the engine (I/O, corruption, busy) throw store::DbError; the
// Service turns them into an error for the one operation that hit them.
//
// Several processes may write one database at once (PostgreSQL; the
// cluster's nodes): every operation below is correct under that, at READ
// COMMITTED. Counters move under the row's lock (a chat's `seq`), uniqueness
// is a constraint (idempotency keys, one chat per user), marks only rise, and
// the outbox is claimed with row locks that other claimers skip.
#include <functional>
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

// The engine cannot be reached (a server down, restarting, or the network):
// nothing of the operation was done. The engine reconnects by itself.
class DbUnavailable : public DbError {
 public:
  using DbError::DbError;
};

// One message to append (Db::Append).
struct AppendInput {
  std::string channel;
  std::string chat_id;  // "" for a user's send: the user's chat, opened if none
  std::string user_id;  // the user, for a user's send
  std::string from;     // "user" | "manager"
  std::string sender_id;
  std::string text;
  std::string idem_scope;   // whose key it is: "manager:<id>", "user:<id>"
  std::string idem_key;     // "" for none
  std::string body_hash;    // of what identifies the request (chat + text)
  std::string message_id;   // the new message's id
  std::string new_chat_id;  // the chat's id if this send opens it
  int64_t now = 0;
  // > 0 for a manager's message: it joins the chat's scheduled notification,
  // or schedules one due then.
  int64_t sms_due_at = 0;
};

enum class AppendStatus {
  kCreated,    // stored now
  kDuplicate,  // the same request again (same key, same body): the stored message
  kNoChat,     // no such chat in this channel (or not the user's)
  kConflict,   // the idempotency key was used for a different request
};

struct AppendResult {
  AppendStatus status = AppendStatus::kCreated;
  Message message;
  std::string user_id;  // the chat's user
  bool chat_created = false;
  int64_t notification_id = 0;  // the outbox entry it joined or created (managers)
};

class Db {
 public:
  virtual ~Db() = default;

  // Transactions. Savepoints nest inside Begin/Commit.
  virtual void Begin() = 0;
  virtual void Commit() = 0;
  virtual void Rollback() = 0;
  virtual void Savepoint() = 0;
  virtual void ReleaseSavepoint() = 0;
  virtual void RollbackToSavepoint() = 0;
  // A reader's transaction: one consistent snapshot for its statements.
  virtual void BeginRead() { Begin(); }
  // True while the engine cannot be reached (its last attempt failed to
  // connect or lost the connection); an embedded engine never is.
  virtual bool Unreachable() const { return false; }
  // The engine's own write-ahead log after the last commit, in pages
  // (SQLite's WAL; the onlined_store_wal_pages gauge); 0 for an engine
  // whose log is not this process's.
  virtual int64_t WalPages() const { return 0; }
  // True once a sync of the database file has failed: checkpoints have
  // stopped until a restart and the write-ahead log keeps every commit
  // (SQLite; the onlined_store_checkpoints_stopped gauge and /readyz). Any
  // thread may ask.
  virtual bool CheckpointsStopped() const { return false; }

  // The batch hook: runs operations 0..n-1 (`run(i)`) as one group
  // transaction, committed once. An operation that throws is undone alone
  // and its error goes to errors[i] (sized n, "" for success); the others
  // commit. Returns false, with `group_error`, when the group as a whole
  // did not commit (then nothing of it did). The default isolates each
  // operation in a savepoint; an engine where that costs round trips may
  // run the group bare and redo it one operation at a time after a failure
  // (operations must therefore be safe to run again after a rollback).
  virtual bool RunGroup(size_t n, const std::function<void(size_t)>& run,
                        std::vector<std::string>& errors, std::string& group_error);

  // Appends one message in one step: an idempotency check, the chat (opened
  // for a user's first send), the next `seq` taken under the chat row's
  // lock, the message, its key and its outbox entry. On a network engine
  // this is one round trip. Statuses other than kCreated change nothing.
  virtual AppendResult Append(const AppendInput& in) = 0;
  // Appends several, in order, each as Append would (the batch hook for
  // sends: a network engine sends them all before it waits for an answer).
  // If one fails it throws, and the caller's savepoint or transaction must
  // undo the others. The default calls Append for each.
  virtual std::vector<AppendResult> AppendMany(const std::vector<const AppendInput*>& in);
  // How many sends the writer hands AppendMany at once (1: each alone, in
  // its own savepoint). An embedded engine gains nothing from more: SQLite
  // would journal a long savepoint's pages into a temporary file.
  virtual size_t AppendUnit() const { return 1; }

  // Chats.
  virtual std::optional<Chat> GetChat(const std::string& channel, const std::string& chat_id) = 0;
  virtual std::optional<Chat> FindChatOfUser(const std::string& channel,
                                             const std::string& user_id) = 0;
  // False if the user already has a chat in the channel (another writer may
  // have opened it a moment ago): nothing was inserted.
  virtual bool InsertChat(const Chat& chat) = 0;
  // Newest first by (updated_at, chat_id); `before` is the cursor position.
  virtual std::vector<Chat> ListChats(const std::string& channel,
                                      std::optional<std::pair<int64_t, std::string>> before,
                                      int limit) = 0;
  virtual std::vector<Chat> ChatsOfUser(const std::string& channel, const std::string& user_id,
                                        int limit) = 0;
  // Moves the chat forward after a new message (seq, time, unread counter);
  // for seeding and tests: sends go through Append.
  virtual void UpdateChatAfterMessage(const std::string& chat_id, int64_t seq, int64_t at,
                                      bool from_user) = 0;
  // Raises (never lowers) the user's ack or read mark; returns the new mark.
  // A mark past the chat's last message is ignored. Every message at or
  // below the ack mark has its acked_at: RaiseUserAck sets it (to `at`) on
  // the messages between the old mark and the new one, and looks at no
  // others. A read is an ack too, and RaiseUserRead leaves the ack mark
  // alone: chat::Receipt raises the ack mark first.
  virtual int64_t RaiseUserAck(const std::string& chat_id, int64_t seq, int64_t at) = 0;
  virtual int64_t RaiseUserRead(const std::string& chat_id, int64_t seq) = 0;

  // Messages. InsertMessage is for seeding and tests: sends go through Append.
  virtual void InsertMessage(const Message& m) = 0;
  virtual std::vector<Message> ListMessages(const std::string& chat_id, int64_t after_seq,
                                            int limit) = 0;
  virtual std::optional<Message> GetMessage(const std::string& chat_id, int64_t seq) = 0;

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

  // Revocations. Put records one (a later one of the same subject wins,
  // an earlier one changes nothing) and drops those expired by `now` (ms);
  // Revocations lists those not expired by `now`.
  virtual void PutRevocation(const Revocation& r, int64_t now) = 0;
  virtual std::vector<Revocation> Revocations(int64_t now) = 0;

  // The outbox. UpdateNotification writes every field of `n`, so `n` must
  // have been read in the same write transaction (GetNotification, ClaimDue,
  // NotificationBySid): a copy read before would undo the sends that joined
  // it since (their last_seq and updated_at).
  virtual int64_t InsertNotification(const Notification& n) = 0;
  virtual void UpdateNotification(const Notification& n) = 0;
  virtual std::optional<Notification> GetNotification(int64_t id) = 0;
  virtual std::optional<Notification> NotificationBySid(const std::string& sid) = 0;
  // Whether anything is due (a cheap look, no locks).
  virtual bool AnyDue(int64_t now) = 0;
  // Claims up to `limit` notifications for this transaction: scheduled and
  // due, or `sending` under a lease that ran out (its claimer died). Rows
  // another transaction holds are skipped, not waited for (FOR UPDATE SKIP
  // LOCKED), so that many processes work one outbox without sending twice.
  virtual std::vector<Notification> ClaimDue(int64_t now, int limit) = 0;
  virtual std::vector<Notification> NotificationsOfUser(const std::string& channel,
                                                        const std::string& user_id, int limit) = 0;
  // The newest time an SMS was sent to this user (for the rate limit), by
  // any notification but `except_id` (the one being decided: a retry after a
  // lapsed lease is not limited by its own first attempt).
  virtual std::optional<int64_t> LastSmsSentAt(const std::string& channel,
                                               const std::string& user_id, int64_t except_id) = 0;
  // Sends that `owner` (this node, before a restart) left under way: their
  // leases end now, so they are claimed again at once. Other owners' leases
  // are left alone: they may be alive. Returns how many.
  virtual int EndLeasesOf(const std::string& owner, int64_t now) = 0;
};

}  // namespace onlined::store
