#pragma once
// What a user's session reads and writes in the store, as functions over the
// store seam (engine-neutral, unit-tested without sockets): the messages a
// reconnecting user missed, and its receipts; and how the missed messages
// and the live ones are merged on the way out (ReplayMerge).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/db.h"

namespace onlined::chat {

// The user's chats replayed on hello (most recent first) and messages per chat.
constexpr int kReplayChats = 50;
constexpr int kReplayMessages = 500;

// What the user missed: for each of its chats (up to kReplayChats, the most
// recent), the messages after the seq `resume` names for it (all of them for
// a chat it does not name), up to kReplayMessages each, in seq order per
// chat. Runs on a reader. Throws store::DbError.
std::vector<store::Message> Missed(store::Db& db, const std::string& channel,
                                   const std::string& user_id,
                                   const std::vector<std::pair<std::string, int64_t>>& resume);

// A user's receipt marks in one chat: its ack and read marks after it.
struct Marks {
  int64_t ack = 0;
  int64_t read = 0;
};

// What a user's receipts ask of one of its chats: raise the ack mark to
// `ack` and the read mark to `read` (0: leave that mark).
struct ReceiptMarks {
  std::string chat_id;
  int64_t ack = 0;
  int64_t read = 0;
};

// A user's receipts for one of its chats. The marks only ever move forward;
// a read is also an ack; a mark past the chat's last message is ignored.
// Returns the marks after it, or nullopt if the chat is not the user's.
// Runs in a write.
std::optional<Marks> Receipt(store::Db& db, const std::string& channel, const std::string& user_id,
                             const ReceiptMarks& want, int64_t now);

// A session's receipts on their way to the store. Receipts are marks, so
// those that arrive while the session's receipt write is in flight (or
// while it waits for its pace) are merged into one pending mark per chat:
// the store sees one receipt write per session at a time, with the newest
// marks, and no receipt a client sent is refused for its rate; a write the
// store failed is merged back (Restore) to be tried again. A mark past the
// chat's last message is ignored (Receipt) together with the lower ones of
// its kind merged into it. Not thread-safe: the session's loop.
class ReceiptCoalescer {
 public:
  // Chats with a pending mark, at most (then Add refuses).
  static constexpr size_t kMaxChats = 16;
  enum class Added {
    kNew,     // the chat's first pending mark
    kMerged,  // merged into the chat's pending mark: no write of its own
    kFull,    // kMaxChats other chats are pending: refused
  };
  // An `ack` (read = false) or `read` up to `seq` of `chat_id`.
  Added Add(const std::string& chat_id, int64_t seq, bool read);
  // True when marks are pending and no write is in flight.
  bool ready() const { return !in_flight_ && !pending_.empty(); }
  bool has_pending() const { return !pending_.empty(); }
  // The pending marks, to be written now: the write is in flight until Done.
  std::vector<ReceiptMarks> Take();
  void Done() { in_flight_ = false; }
  // The write of `taken` failed: its marks are pending again (merged with
  // what came since), at most 2 * kMaxChats chats.
  void Restore(const std::vector<ReceiptMarks>& taken);

 private:
  ReceiptMarks* Find(const std::string& chat_id);
  static void Raise(ReceiptMarks& to, int64_t ack, int64_t read);
  std::vector<ReceiptMarks> pending_;
  bool in_flight_ = false;
};

// The messages of one user's session on their way out: the replay of what it
// missed (read from the store after hello) and the live ones that arrive
// meanwhile. Live messages wait while the replay is read and go out after
// it; a message goes out once (replay and live overlap) and never at or
// below a seq the client said it has. Per chat it keeps the highest seq sent,
// sorted (a hello may name up to 1,000 chats; a replay is up to 25,000
// messages): 24 bytes for a session that has none. Not thread-safe: the
// session's loop.
class ReplayMerge {
 public:
  using Frame = std::shared_ptr<const std::string>;

  // hello: the client has up to seq of each chat `resume` names; live
  // messages are held until End.
  void Start(std::vector<std::pair<std::string, int64_t>> resume);
  // What Start was given (the replay reads after these).
  const std::vector<std::pair<std::string, int64_t>>& marks() const { return marks_; }
  bool replaying() const { return replaying_; }

  // A live message of one of the user's chats: out now through `send`, or
  // held while replaying.
  template <class Send>
  void Live(const Frame& frame, const std::string& chat_id, int64_t seq, Send&& send) {
    if (replaying_) {
      held_.push_back({frame, chat_id, seq});
      return;
    }
    if (Take(chat_id, seq)) send(frame);
  }
  // A message of the replay (in seq order per chat): out unless the client has it.
  template <class Send>
  void Replayed(const Frame& frame, const std::string& chat_id, int64_t seq, Send&& send) {
    if (Take(chat_id, seq)) send(frame);
  }
  // The replay is over: what was held goes out (what the replay already sent
  // does not), and live messages go straight out from now on.
  template <class Send>
  void End(Send&& send) {
    replaying_ = false;
    std::vector<Held> held;
    held.swap(held_);
    for (const Held& h : held) {
      if (Take(h.chat_id, h.seq)) send(h.frame);
    }
  }

  // Records that the client has `seq` of `chat_id`; false if it had it (or
  // a later one) already.
  bool Take(const std::string& chat_id, int64_t seq);

 private:
  struct Held {
    Frame frame;
    std::string chat_id;
    int64_t seq;
  };
  std::vector<std::pair<std::string, int64_t>> marks_;  // sorted by chat id
  std::vector<Held> held_;
  bool replaying_ = false;
};

}  // namespace onlined::chat
