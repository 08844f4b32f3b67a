#include "chat/delivery.h"

#include <chrono>

#include "base/clock.h"
#include "chat/codec.h"

namespace onlined::chat {

Messenger::Messenger(base::LoopGroup& loops, base::Metrics& metrics, store::Service& store,
                     presence::Router& router, SmsClock* sms)
    : loops_(loops), metrics_(metrics), store_(store), router_(router), sms_(sms) {
  m_messages_ =
      metrics.Counter("onlined_messages_stored_total", "Messages stored (users and managers).");
  m_send_latency_ =
      metrics.Histogram("onlined_send_seconds", "From a send request to its durable commit.",
                        {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1});
}

void Messenger::Receipt(ReceiptInput in, presence::ChannelIdx ch, size_t reply_loop,
                        ReceiptDone done) {
  auto shared = std::make_shared<ReceiptInput>(std::move(in));
  store_.Write<ReceiptResults>(
      [shared](store::Db& db) {
        const ReceiptInput& r = *shared;
        const int64_t now = base::WallMs();
        ReceiptResults out;
        out.reserve(r.marks.size());
        for (const ReceiptMarks& want : r.marks) {
          out.push_back(chat::Receipt(db, r.channel, r.user_id, want, now));
        }
        return out;
      },
      // On the writer thread, in commit order.
      [this, shared, ch, reply_loop,
       done = std::move(done)](store::Outcome<ReceiptResults> o) mutable {
        if (o.ok()) {
          for (size_t i = 0; i < o.value->size(); ++i) {
            const std::optional<Marks>& m = (*o.value)[i];
            if (!m) continue;
            router_.PublishToChannel(
                ch, std::make_shared<const std::string>(EncodeReceiptFrame(
                        shared->marks[i].chat_id, shared->user_id, m->ack, m->read)));
          }
        }
        if (!done) return;
        loops_.Post(reply_loop,
                    [done = std::move(done), o = std::move(o)]() mutable { done(std::move(o)); });
      });
}

void Messenger::Send(const SendInput& in, presence::ChannelIdx ch, size_t reply_loop, Done done) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t sms_delay_ms = in.sms_delay_ms;
  store_.Append(ToAppend(in), [this, ch, reply_loop, t0, sms_delay_ms,
                               done = std::move(done)](store::Outcome<SendResult> o) mutable {
    // On the writer thread, in commit order.
    if (o.ok() && o.value->status == SendStatus::kCreated) {
      metrics_.Add(metrics_.loops(), m_messages_);
      metrics_.Observe(
          metrics_.loops(), m_send_latency_,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      Deliver(*o.value, ch, sms_delay_ms);
    }
    loops_.Post(reply_loop,
                [done = std::move(done), o = std::move(o)]() mutable { done(std::move(o)); });
  });
}

void Messenger::Deliver(const SendResult& r, presence::ChannelIdx ch, int64_t sms_delay_ms) {
  auto frame = std::make_shared<const std::string>(EncodeMessageFrame(r.message));
  router_.PublishToChannel(ch, frame);
  std::function<void(bool)> offline;
  if (r.notification_id != 0 && sms_ != nullptr) {
    SmsClock* sms = sms_;
    const int64_t id = r.notification_id, due = r.message.created_at + sms_delay_ms;
    offline = [sms, id, due](bool had_sessions) {
      if (!had_sessions) sms->PullEarlier(id, due);
    };
  }
  router_.DeliverToUser(ch, r.user_id, std::move(frame), r.message.chat_id, r.message.seq,
                        std::move(offline));
}

}  // namespace onlined::chat
