#include "notify/decide.h"

namespace onlined::notify {

std::optional<int64_t> QuietUntil(int64_t now_ms, const Policy& p) {
  if (!p.quiet.enabled) return std::nullopt;
  const int64_t now_s = now_ms / 1000;
  const int64_t local_s = now_s + p.tz->OffsetAt(now_s);
  const int64_t day_s = ((local_s % 86400) + 86400) % 86400;
  const int64_t minute = day_s / 60;
  const int64_t start = p.quiet.start_min, end = p.quiet.end_min;
  bool inside = start < end ? (minute >= start && minute < end) : (minute >= start || minute < end);
  if (!inside) return std::nullopt;
  int64_t until_s = end * 60 - day_s;  // seconds until the end, today or tomorrow
  if (until_s <= 0) until_s += 86400;
  return (now_s + until_s) * 1000;
}

Decision Decide(const FireInput& in, const Policy& p) {
  using A = Decision::Action;
  Decision d;
  if (in.chat.user_read_seq >= in.n.last_seq) {
    d.reason = "read";
    return d;
  }
  // Delivered to a live session in time: every manager message of the window
  // was acked within ack_timeout of being stored.
  bool all_in_time = !in.window.empty();
  int unread = 0;
  for (const store::Message& m : in.window) {
    if (m.from != "manager") continue;
    if (m.seq > in.chat.user_read_seq) ++unread;
    if (!m.acked_at || *m.acked_at > m.created_at + p.ack_timeout_ms) all_in_time = false;
  }
  if (all_in_time) {
    d.reason = "delivered";
    return d;
  }
  if (!in.user || in.user->phone.empty()) {
    d.reason = "no_phone";
    return d;
  }
  if (!in.user->sms_opt_in) {
    d.reason = "not_opted_in";
    return d;
  }
  if (in.last_sms_at && in.now - *in.last_sms_at < p.min_interval_ms) {
    d.reason = "rate_limited";
    return d;
  }
  if (auto until = QuietUntil(in.now, p)) {
    d.action = A::kWait;
    d.reason = "quiet_hours";
    d.wait_until = *until;
    return d;
  }
  d.action = A::kSend;
  d.phone = in.user->phone;
  if (unread < 1) unread = 1;
  std::string last;
  for (size_t i = in.window.size(); i-- > 0;) {  // the newest manager message
    if (in.window[i].from == "manager") {
      last = in.window[i].text;
      break;
    }
  }
  if (last.size() > 100) {
    size_t cut = 97;
    while (cut > 0 && (static_cast<unsigned char>(last[cut]) & 0xC0) == 0x80)
      --cut;  // UTF-8 boundary
    last = last.substr(0, cut) + "...";
  }
  d.body = (unread == 1 ? std::string("1 new message") : std::to_string(unread) + " new messages") +
           " from " + p.channel_name + ": \"" + last + "\"";
  return d;
}

}  // namespace onlined::notify
