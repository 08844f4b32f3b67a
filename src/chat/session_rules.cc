#include "chat/session_rules.h"

#include <algorithm>

namespace onlined::chat {

std::vector<store::Message> Missed(store::Db& db, const std::string& channel,
                                   const std::string& user_id,
                                   const std::vector<std::pair<std::string, int64_t>>& resume) {
  std::vector<store::Message> out;
  for (const store::Chat& chat : db.ChatsOfUser(channel, user_id, kReplayChats)) {
    int64_t after = 0;
    for (const auto& [id, seq] : resume) {
      if (id == chat.chat_id) after = seq;
    }
    auto msgs = db.ListMessages(chat.chat_id, after, kReplayMessages);
    out.insert(out.end(), std::make_move_iterator(msgs.begin()),
               std::make_move_iterator(msgs.end()));
  }
  return out;
}

std::optional<Marks> Receipt(store::Db& db, const std::string& channel, const std::string& user_id,
                             const ReceiptMarks& want, int64_t now) {
  auto chat = db.GetChat(channel, want.chat_id);
  if (!chat || chat->user_id != user_id) return std::nullopt;
  Marks m;
  // A read is an ack too: the ack mark's raise is what gives the messages
  // it passes their acked_at (store/db.h). The read's first, so that an ack
  // past the last message (ignored) cannot leave the read above the ack.
  m.ack = chat->user_ack_seq;
  if (want.read > 0) m.ack = db.RaiseUserAck(want.chat_id, want.read, now);
  if (want.ack > want.read) m.ack = db.RaiseUserAck(want.chat_id, want.ack, now);
  m.read = want.read > 0 ? db.RaiseUserRead(want.chat_id, want.read) : chat->user_read_seq;
  return m;
}

ReceiptMarks* ReceiptCoalescer::Find(const std::string& chat_id) {
  for (ReceiptMarks& r : pending_) {
    if (r.chat_id == chat_id) return &r;
  }
  return nullptr;
}

void ReceiptCoalescer::Raise(ReceiptMarks& to, int64_t ack, int64_t read) {
  to.ack = std::max(to.ack, ack);
  to.read = std::max(to.read, read);
}

ReceiptCoalescer::Added ReceiptCoalescer::Add(const std::string& chat_id, int64_t seq, bool read) {
  ReceiptMarks* p = Find(chat_id);
  Added added = Added::kMerged;
  if (p == nullptr) {
    if (pending_.size() >= kMaxChats) return Added::kFull;
    p = &pending_.emplace_back(ReceiptMarks{chat_id, 0, 0});
    added = Added::kNew;
  }
  Raise(*p, seq, read ? seq : 0);
  return added;
}

void ReceiptCoalescer::Restore(const std::vector<ReceiptMarks>& taken) {
  in_flight_ = false;
  for (const ReceiptMarks& t : taken) {
    if (ReceiptMarks* p = Find(t.chat_id)) {
      Raise(*p, t.ack, t.read);
    } else {
      pending_.push_back(t);  // may pass kMaxChats by what was taken: still bounded
    }
  }
}

std::vector<ReceiptMarks> ReceiptCoalescer::Take() {
  std::vector<ReceiptMarks> out;
  out.swap(pending_);
  in_flight_ = true;
  return out;
}

void ReplayMerge::Start(std::vector<std::pair<std::string, int64_t>> resume) {
  replaying_ = true;
  held_.clear();
  // Sorted, one mark per chat (the highest, should a chat be named twice).
  std::sort(resume.begin(), resume.end());
  marks_.clear();
  for (auto& m : resume) {
    if (!marks_.empty() && marks_.back().first == m.first) {
      marks_.back().second = m.second;
    } else {
      marks_.push_back(std::move(m));
    }
  }
}

bool ReplayMerge::Take(const std::string& chat_id, int64_t seq) {
  auto it = std::lower_bound(marks_.begin(), marks_.end(), chat_id,
                             [](const auto& m, const std::string& id) { return m.first < id; });
  if (it != marks_.end() && it->first == chat_id) {
    if (seq <= it->second) return false;
    it->second = seq;
    return true;
  }
  marks_.emplace(it, chat_id, seq);
  return true;
}

}  // namespace onlined::chat
