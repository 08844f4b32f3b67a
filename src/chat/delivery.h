#pragma once
// chat::Messenger: the one path of a message, from a send to the user's
// sockets, the desks and the outbox.
//
//   Send(in)  ->  store writer: chat::Send (message, idempotency key and the
//                 outbox entry in one transaction; one group commit)
//             ->  on commit, in commit order, on the writer thread:
//                 the frame is encoded once; Router::PublishToChannel (every
//                 desk); Router::DeliverToUser (every live session of the
//                 user); if the user had no live session and the message
//                 scheduled an SMS, SmsClock::PullEarlier (due at
//                 created_at + sms_delay instead of after the ack timeout)
//             ->  `done` on the caller's loop with the outcome.
//
//   Receipt(in) -> store writer: chat::Receipt for each chat -> on commit,
//                 each chat's receipt frame to every desk -> `done` on the
//                 caller's loop.
//
// The send waits for the commit and nothing else: no presence lookup, no
// SMS decision (notify::Decide runs when the notification is due, on what
// the store says then). Thread-safe: Send from any loop.
#include <functional>
#include <optional>
#include <vector>

#include "base/loops.h"
#include "base/metrics.h"
#include "chat/messages.h"
#include "chat/session_rules.h"
#include "presence/seams.h"
#include "store/service.h"

namespace onlined::chat {

// Moves a scheduled notification earlier (the outbox's worker). Any thread.
class SmsClock {
 public:
  virtual ~SmsClock() = default;
  virtual void PullEarlier(int64_t notification_id, int64_t due_at) = 0;
};

class Messenger {
 public:
  // Everything given must outlive the messenger.
  Messenger(base::LoopGroup& loops, base::Metrics& metrics, store::Service& store,
            presence::Router& router, SmsClock* sms);

  using Done = std::function<void(store::Outcome<SendResult>)>;
  // Stores and delivers one message (see above). `done` runs on loop
  // `reply_loop`. A duplicate (the same idempotency key and body) is
  // answered with the stored message and delivered no second time.
  void Send(const SendInput& in, presence::ChannelIdx ch, size_t reply_loop, Done done);

  // A user's receipts for some of its chats (chat::Receipt for each, in
  // the next group commit); once committed, each chat's receipt frame goes
  // to every desk of the channel (Router::PublishToChannel). `done` runs on
  // loop `reply_loop` with the marks of each chat in `marks`' order (nullopt
  // for a chat that is not the user's), or the store's failure; an empty
  // `done` (a session that ended) is not posted.
  struct ReceiptInput {
    std::string channel, user_id;
    std::vector<ReceiptMarks> marks;
  };
  using ReceiptResults = std::vector<std::optional<Marks>>;
  using ReceiptDone = std::function<void(store::Outcome<ReceiptResults>)>;
  void Receipt(ReceiptInput in, presence::ChannelIdx ch, size_t reply_loop, ReceiptDone done);

 private:
  // On the writer thread, after the commit of a new message.
  void Deliver(const SendResult& r, presence::ChannelIdx ch, int64_t sms_delay_ms);

  base::LoopGroup& loops_;
  base::Metrics& metrics_;
  store::Service& store_;
  presence::Router& router_;
  SmsClock* sms_;
  base::Metrics::Id m_messages_, m_send_latency_;
};

}  // namespace onlined::chat
