#include "presence/event_log.h"

namespace onlined::presence {

std::optional<std::vector<Payload>> EventLog::After(uint64_t after) const {
  thread_.Check();
  if (after > last_seq_) return std::nullopt;  // from the future: another run
  if (after + 1 < first_kept_seq()) return std::nullopt;
  std::vector<Payload> out;
  size_t skip = static_cast<size_t>(after + 1 - first_kept_seq());
  out.reserve(ring_.size() - skip);
  for (size_t i = skip; i < ring_.size(); ++i) out.push_back(ring_[i]);
  return out;
}

}  // namespace onlined::presence
