#pragma once
// What the provider's webhooks change in the store, as functions over the
// store seam (engine-neutral, unit-tested without HTTP). Run in a write.
// Throw store::DbError on engine failure.
#include <cstdint>
#include <string>

#include "store/db.h"

namespace onlined::notify {

// An inbound SMS with the provider's id `sid` from `phone`: STOP-like words
// (opt_in = false) or START (true) set sms_opt_in for every user with that
// phone. Each sid is applied once: a replay returns -1 and changes nothing;
// otherwise the number of users changed.
int ApplyInboundSms(store::Db& db, const std::string& sid, const std::string& phone, bool opt_in,
                    int64_t now);

// A status callback: moves the notification with provider id `sid` forward,
// never backward (queued < sent < delivered/undelivered/failed); undelivered
// and failed fail it with the provider's error code. False if no
// notification has that sid.
bool ApplyStatusCallback(store::Db& db, const std::string& sid, const std::string& status,
                         const std::string& error_code, int64_t now);

}  // namespace onlined::notify
