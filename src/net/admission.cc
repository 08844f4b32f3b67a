#include "net/admission.h"

#include <algorithm>
#include <cstring>

namespace onlined::net {

Admission::Slot& Admission::Slot::operator=(Slot&& o) noexcept {
  if (this != &o) {
    Release();
    a_ = o.a_;
    addr_ = o.addr_;
    o.a_ = nullptr;
  }
  return *this;
}

void Admission::Slot::Release() {
  if (a_ == nullptr) return;
  a_->Give(addr_);
  a_ = nullptr;
}

size_t Admission::AddressHash::operator()(const Address& a) const {
  uint64_t x, y;
  std::memcpy(&x, a.data(), 8);
  std::memcpy(&y, a.data() + 8, 8);
  return static_cast<size_t>((x * 0x9E3779B97F4A7C15ULL) ^ (y + 0x632BE59BD9B4E019ULL + (x << 6)));
}

void Admission::SetLimits(const Limits& l) {
  std::lock_guard lock(mu_);
  limits_ = l;
  handshakes_.Set(l.handshakes_per_s, l.handshake_burst);
  refusals_.Set(l.handshakes_per_s, l.handshake_burst);
  if (l.handshakes_per_s <= 0) flooded_until_ms_ = 0;
  max_in_flight_.store(l.max_http_in_flight, std::memory_order_relaxed);
}

Admission::Address Admission::KeyOf(const Address& addr) {
  static constexpr std::array<uint8_t, 12> kV4Mapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(kV4Mapped.begin(), kV4Mapped.end(), addr.begin())) return addr;
  Address key{};
  std::copy(addr.begin(), addr.begin() + 8, key.begin());
  return key;
}

Admission::Verdict Admission::Admit(const Address& addr, Slot* slot, int64_t now_ms) {
  std::lock_guard lock(mu_);
  // Flooded: a socket that could not get a handshake now is refused before
  // its request is read (the cheapest refusal); one that could goes on.
  if (now_ms < flooded_until_ms_ && !handshakes_.Available(now_ms)) return Verdict::kFlooded;
  if (limits_.max_connections > 0 &&
      open_.load(std::memory_order_relaxed) >= limits_.max_connections) {
    return Verdict::kTooMany;
  }
  int64_t& n = per_addr_[addr];
  if (limits_.max_per_ip > 0 && n >= limits_.max_per_ip) {
    if (n == 0) per_addr_.erase(addr);
    return Verdict::kTooManyFromAddress;
  }
  ++n;
  open_.fetch_add(1, std::memory_order_relaxed);
  slot->Release();
  slot->a_ = this;
  slot->addr_ = addr;
  return Verdict::kAdmitted;
}

void Admission::Give(const Address& addr) {
  std::lock_guard lock(mu_);
  open_.fetch_sub(1, std::memory_order_relaxed);
  auto it = per_addr_.find(addr);
  if (it != per_addr_.end() && --it->second <= 0) per_addr_.erase(it);
}

bool Admission::TakeHandshake(int64_t now_ms) {
  std::lock_guard lock(mu_);
  if (handshakes_.Take(now_ms)) return true;
  // Refused with 1013; past that budget too, refuse at accept for a while.
  if (!refusals_.Take(now_ms)) flooded_until_ms_ = now_ms + kFloodMs;
  return false;
}

bool Admission::BeginRequest() {
  int64_t max = max_in_flight_.load(std::memory_order_relaxed);
  int64_t was = in_flight_.fetch_add(1, std::memory_order_relaxed);
  if (max > 0 && was >= max) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

}  // namespace onlined::net
