#include "notify/webhook_rules.h"

#include "notify/webhook.h"

namespace onlined::notify {

int ApplyInboundSms(store::Db& db, const std::string& sid, const std::string& phone, bool opt_in,
                    int64_t now) {
  if (!db.RecordInboundSms(sid, now)) return -1;  // seen before: a replay
  return db.SetOptInByPhone(phone, opt_in, now);
}

bool ApplyStatusCallback(store::Db& db, const std::string& sid, const std::string& status,
                         const std::string& error_code, int64_t now) {
  auto n = db.NotificationBySid(sid);
  if (!n) return false;
  if (StatusRank(status) <= StatusRank(n->provider_status)) return true;  // never backward
  n->provider_status = status;
  if (status == "undelivered" || status == "failed") {
    n->state = store::NotifyState::kFailed;
    n->reason = "provider_" + status + (error_code.empty() ? "" : ":" + error_code);
  }
  n->updated_at = now;
  db.UpdateNotification(*n);
  return true;
}

}  // namespace onlined::notify
