#pragma once
// What a user's session reads and writes in the store, as functions over the
// store seam (engine-neutral, unit-tested without sockets): the messages a
// reconnecting user missed, and its receipts.
#include <cstdint>
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

// A user's `ack` (read = false) or `read` up to `seq` in one of its chats.
// The marks only ever move forward; a read is also an ack. Returns the marks
// after it, or nullopt if the chat is not the user's. Runs in a write.
struct Marks {
  int64_t ack = 0;
  int64_t read = 0;
};
std::optional<Marks> Receipt(store::Db& db, const std::string& channel, const std::string& user_id,
                             const std::string& chat_id, int64_t seq, bool read, int64_t now);

}  // namespace onlined::chat
