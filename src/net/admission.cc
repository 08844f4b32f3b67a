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
  if (limits_.handshake_burst <= 0) limits_.handshake_burst = std::max(1.0, limits_.handshakes_per_s);
  tokens_ = std::min(tokens_, limits_.handshake_burst);
  if (refill_ms_ < 0) tokens_ = limits_.handshake_burst;
  max_in_flight_.store(l.max_http_in_flight, std::memory_order_relaxed);
}

Admission::Verdict Admission::Admit(const Address& addr, Slot* slot) {
  std::lock_guard lock(mu_);
  if (limits_.max_connections > 0 && open_.load(std::memory_order_relaxed) >= limits_.max_connections) {
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
  if (limits_.handshakes_per_s <= 0) return true;
  if (refill_ms_ < 0) refill_ms_ = now_ms;
  if (now_ms > refill_ms_) {
    tokens_ = std::min(limits_.handshake_burst,
                       tokens_ + static_cast<double>(now_ms - refill_ms_) * limits_.handshakes_per_s / 1000.0);
    refill_ms_ = now_ms;
  }
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
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
