#include "api/authority.h"

#include <spdlog/spdlog.h>

#include <future>
#include <stdexcept>

#include "api/context.h"
#include "base/clock.h"

namespace onlined::api {

std::string Revocations::Key(std::string_view channel, std::string_view role,
                             std::string_view subject) {
  std::string k;
  k.reserve(channel.size() + role.size() + subject.size() + 2);
  k.append(channel).push_back('\0');
  k.append(role).push_back('\0');
  k.append(subject);
  return k;
}

bool Revocations::Revoked(const auth::Claims& c) const {
  if (!any_.load(std::memory_order_acquire)) return false;  // the common case: no lookup
  auto map = map_.load(std::memory_order_acquire);
  auto it = map->find(Key(c.channel, auth::RoleName(c.role), c.subject));
  if (it == map->end()) return false;
  return c.iat == 0 || c.iat <= it->second.revoked_at;
}

bool Revocations::Add(const store::Revocation& r) {
  auto cur = map_.load(std::memory_order_acquire);
  std::string k = Key(r.channel, r.role, r.subject);
  if (auto it = cur->find(k); it != cur->end() && it->second.revoked_at >= r.revoked_at)
    return false;
  auto next = std::make_shared<Map>(*cur);
  (*next)[k] = r;
  map_.store(std::move(next), std::memory_order_release);
  any_.store(true, std::memory_order_release);
  return true;
}

std::vector<store::Revocation> Revocations::Merge(const std::vector<store::Revocation>& all,
                                                  int64_t now_ms) {
  auto cur = map_.load(std::memory_order_acquire);
  auto next = std::make_shared<Map>();
  for (const auto& [k, r] : *cur) {
    if (r.expires_at == 0 || r.expires_at > now_ms) next->emplace(k, r);
  }
  std::vector<store::Revocation> changed;
  for (const store::Revocation& r : all) {
    if (r.expires_at != 0 && r.expires_at <= now_ms) continue;
    auto [it, fresh] = next->try_emplace(Key(r.channel, r.role, r.subject), r);
    if (fresh || it->second.revoked_at < r.revoked_at) {
      it->second = r;
      changed.push_back(r);
    }
  }
  const bool any = !next->empty();
  map_.store(std::move(next), std::memory_order_release);
  any_.store(any, std::memory_order_release);
  return changed;
}

size_t Revocations::size() const { return map_.load(std::memory_order_acquire)->size(); }

void LiveSessions::Link(size_t loop, LiveSession* s) {
  LiveSession*& head = heads_.at(loop);
  if (s->prev_ != nullptr || head == s) return;  // linked already
  s->prev_ = nullptr;
  s->next_ = head;
  if (head != nullptr) head->prev_ = s;
  head = s;
}

void LiveSessions::Unlink(size_t loop, LiveSession* s) {
  LiveSession*& head = heads_.at(loop);
  if (s->prev_ == nullptr && head != s) return;  // not linked
  if (s->prev_ != nullptr) s->prev_->next_ = s->next_;
  if (s->next_ != nullptr) s->next_->prev_ = s->prev_;
  if (head == s) head = s->next_;
  s->prev_ = s->next_ = nullptr;
}

void LiveSessions::RecheckAll(size_t loop, const LiveSession::Sweep& sweep) {
  for (LiveSession* s = heads_.at(loop); s != nullptr;) {
    LiveSession* next = s->next_;  // s may unlink itself
    s->Recheck(sweep);
    s = next;
  }
}

}  // namespace onlined::api

namespace onlined::api {

void RevocationSync::ReadOnce(std::function<void(bool ok)> done) {
  if (in_flight_.exchange(true)) return done(true);  // the last read is still out
  const int64_t now = base::WallMs();
  ctx_.store.Read<std::vector<store::Revocation>>(
      [now](store::Db& db) { return db.Revocations(now); },
      // On a reader thread.
      [this, now, done = std::move(done)](store::Outcome<std::vector<store::Revocation>> o) {
        in_flight_ = false;
        if (!o.ok()) return done(false);
        for (store::Revocation& r : ctx_.revocations.Merge(*o.value, now)) {
          ctx_.RecheckSessions(
              {false, std::move(r.channel), std::move(r.role), std::move(r.subject)});
        }
        done(true);
      });
}

void RevocationSync::Start() {
  std::promise<bool> first;
  ReadOnce([&first](bool ok) { first.set_value(ok); });
  if (!first.get_future().get()) throw std::runtime_error("cannot read the revocations");
  if (ctx_.revocations.size() > 0)
    spdlog::info("{} revoked subject(s) in force", ctx_.revocations.size());
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [this] { return stop_; })) {
      lock.unlock();
      ReadOnce([](bool) {});
      lock.lock();
    }
  });
}

void RevocationSync::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace onlined::api
