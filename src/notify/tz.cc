#include "notify/tz.h"

#include <algorithm>
#include <fstream>
#include <iterator>

namespace onlined::notify {

namespace {
int64_t Be(const unsigned char* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
  if (n == 4) return static_cast<int32_t>(static_cast<uint32_t>(v));
  return static_cast<int64_t>(v);
}
}  // namespace

std::shared_ptr<const TimeZone> TimeZone::Utc() {
  static auto utc = std::make_shared<const TimeZone>();
  return utc;
}

std::shared_ptr<const TimeZone> TimeZone::Load(const std::string& name) {
  if (name == "UTC" || name == "Etc/UTC" || name.empty()) return Utc();
  if (name.find("..") != std::string::npos) return nullptr;
  std::ifstream f("/usr/share/zoneinfo/" + name, std::ios::binary);
  if (!f) return nullptr;
  std::vector<unsigned char> d((std::istreambuf_iterator<char>(f)),
                               std::istreambuf_iterator<char>());
  auto header = [&](size_t at, int64_t c[6]) {
    if (d.size() < at + 44 || d[at] != 'T' || d[at + 1] != 'Z' || d[at + 2] != 'i' ||
        d[at + 3] != 'f')
      return false;
    for (int i = 0; i < 6; ++i) c[i] = Be(&d[at + 20 + 4 * i], 4);
    return true;
  };
  // counts: isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
  int64_t c[6];
  if (!header(0, c)) return nullptr;
  size_t at = 44;
  int tsize = 4;
  if (d[4] >= '2') {
    // Skip the v1 block; use the v2 block with 64-bit times.
    at += static_cast<size_t>(c[3] * 4 + c[3] + c[4] * 6 + c[5] + c[2] * 8 + c[1] + c[0]);
    if (!header(at, c)) return nullptr;
    at += 44;
    tsize = 8;
  }
  size_t need = static_cast<size_t>(c[3] * tsize + c[3] + c[4] * 6);
  if (d.size() < at + need) return nullptr;
  auto tz = std::make_shared<TimeZone>();
  std::vector<int32_t> type_off(static_cast<size_t>(c[4]));
  std::vector<bool> type_dst(static_cast<size_t>(c[4]));
  size_t types_at = at + static_cast<size_t>(c[3] * tsize + c[3]);
  for (int64_t i = 0; i < c[4]; ++i) {
    type_off[i] = static_cast<int32_t>(Be(&d[types_at + i * 6], 4));
    type_dst[i] = d[types_at + i * 6 + 4] != 0;
  }
  if (type_off.empty()) return nullptr;
  tz->initial_ = type_off[0];
  for (size_t i = 0; i < type_off.size(); ++i) {
    if (!type_dst[i]) {
      tz->initial_ = type_off[i];
      break;
    }
  }
  for (int64_t i = 0; i < c[3]; ++i) {
    tz->transitions_.push_back(Be(&d[at + i * tsize], tsize));
    size_t idx = d[at + c[3] * tsize + i];
    if (idx >= type_off.size()) return nullptr;
    tz->offsets_.push_back(type_off[idx]);
  }
  return tz;
}

int32_t TimeZone::OffsetAt(int64_t utc_s) const {
  auto it = std::upper_bound(transitions_.begin(), transitions_.end(), utc_s);
  if (it == transitions_.begin()) return initial_;
  return offsets_[static_cast<size_t>(it - transitions_.begin() - 1)];
}

}  // namespace onlined::notify
