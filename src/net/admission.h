#pragma once
// Admission: what the server lets in before any request is parsed.
//
// - Every accepted socket (HTTP, upgraded or not) holds a Slot; past
//   max_connections, or past max_per_ip for its source address, the socket
//   is answered 503 + Retry-After and closed. Idle HTTP sockets therefore
//   count, and time out (ServerOptions::http_idle_timeout_ms).
// - Handshakes take a token from a bucket (handshakes_per_s, burst): past it
//   an upgrade is told to come back later (close 1013 with retry_after_ms).
//   Those refusals have a budget of their own (as many a second): once it is
//   spent too, the server is flooded, and for the next kFloodMs a new socket
//   that arrives while no handshake token is left is refused at accept (503,
//   no request read): the cheapest refusal, so that what is admitted keeps
//   its latency.
// - HTTP requests handed to the application and not answered yet are capped
//   (max_http_in_flight): past it a request gets 503 at once.
//
// Thread-safe: the acceptors of every loop share one Admission. The accept
// path takes one mutex (per-address counts, the bucket); no heartbeat, query
// or message ever touches it.
#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "base/token_bucket.h"

namespace onlined::net {

class Admission {
 public:
  struct Limits {
    int64_t max_connections = 0;     // 0: unlimited
    int64_t max_per_ip = 0;          // 0: unlimited
    double handshakes_per_s = 0;     // 0: unlimited
    double handshake_burst = 0;      // bucket size (0: one second's worth)
    int64_t max_http_in_flight = 0;  // 0: unlimited
  };
  // A source address: 16 bytes (IPv4 mapped into IPv6).
  using Address = std::array<uint8_t, 16>;
  // The key that max_per_ip counts under: an IPv4 address, or an IPv6
  // address's /64 (one subscriber's or one host's prefix: a client holds
  // 2^64 addresses of it, and one per connection would pass any limit).
  static Address KeyOf(const Address& addr);

  enum class Verdict { kAdmitted, kTooMany, kTooManyFromAddress, kFlooded };
  static constexpr int64_t kFloodMs = 200;

  // One accepted socket's place. Move-only; gives the place back when
  // destroyed or Release()d. Owned by the connection that holds the socket.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& o) noexcept : a_(o.a_), addr_(o.addr_) { o.a_ = nullptr; }
    Slot& operator=(Slot&& o) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { Release(); }
    void Release();
    explicit operator bool() const { return a_ != nullptr; }

   private:
    friend class Admission;
    Admission* a_ = nullptr;
    Address addr_{};
  };

  Admission() = default;
  // Takes effect for new sockets and requests (SIGHUP); open ones stay.
  void SetLimits(const Limits& l);

  // Decides on a socket just accepted from `addr` at `now_ms` (steady). On
  // kAdmitted fills `slot`.
  Verdict Admit(const Address& addr, Slot* slot, int64_t now_ms = 0);
  // Takes one handshake token at `now_ms` (steady). False: over the rate.
  bool TakeHandshake(int64_t now_ms);
  // Counts a request handed to the application; false (and not counted)
  // when max_http_in_flight are already waiting. Each true needs one Done.
  bool BeginRequest();
  void EndRequest() { in_flight_.fetch_sub(1, std::memory_order_relaxed); }

  int64_t open() const { return open_.load(std::memory_order_relaxed); }
  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }

 private:
  struct AddressHash {
    size_t operator()(const Address& a) const;
  };
  void Give(const Address& addr);

  std::mutex mu_;
  Limits limits_;                                               // guarded by mu_
  std::unordered_map<Address, int64_t, AddressHash> per_addr_;  // guarded by mu_
  base::TokenBucket handshakes_;                                // guarded by mu_
  base::TokenBucket refusals_;    // guarded by mu_: the 1013 refusals' budget
  int64_t flooded_until_ms_ = 0;  // guarded by mu_
  std::atomic<int64_t> open_{0};
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> max_in_flight_{0};
};

}  // namespace onlined::net
