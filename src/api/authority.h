#pragma once
// A session's authority after its hello (docs/protocol.md "Session
// authority"): the subjects revoked by POST /v1/revocations, and the live
// sessions of each loop, which a reload (a key removed) or a revocation
// looks through to end those that lost their authority.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "auth/token.h"
#include "store/types.h"

namespace onlined::api {

// The revoked subjects, as one immutable snapshot replaced whole on a
// change (revocations are rare; every hello and desk request reads them).
// Thread-safe.
class Revocations {
 public:
  // Whether a token with these claims is revoked: its subject was revoked
  // at or after the second of its `iat` (a token without `iat` is revoked
  // while the revocation lasts).
  bool Revoked(const auth::Claims& c) const;
  // Adds `r` (a later revocation of the same subject wins); true if it
  // changed anything.
  bool Add(const store::Revocation& r);
  // Merges `all` (read from the store) in: a subject's later revocation
  // wins, none is dropped but those expired by `now_ms` (a read that began
  // before a revocation was added here must not undo it). Returns those
  // that are new or later than before.
  std::vector<store::Revocation> Merge(const std::vector<store::Revocation>& all, int64_t now_ms);
  size_t size() const;

 private:
  using Map = std::unordered_map<std::string, store::Revocation>;
  static std::string Key(std::string_view channel, std::string_view role, std::string_view subject);
  std::atomic<bool> any_{false};
  std::atomic<std::shared_ptr<const Map>> map_{std::make_shared<const Map>()};
};

// A session as the sweeps see it (api/connect.cc's ClientSession): linked
// into its loop's list while it has claims, unlinked when it ends.
class LiveSession {
 public:
  // What a sweep asks: the channel's keys may have changed (a reload), or
  // one subject was revoked.
  struct Sweep {
    bool keys = false;
    std::string channel, role, subject;  // a revocation, if not empty
  };
  // Ends the session if the sweep takes its authority away. On its loop.
  virtual void Recheck(const Sweep& s) = 0;

 protected:
  ~LiveSession() = default;

 private:
  friend class LiveSessions;
  LiveSession* prev_ = nullptr;  // linked: prev_ set, or the head
  LiveSession* next_ = nullptr;
};

// The live sessions of each loop, in intrusive lists: 16 bytes a session,
// no allocation. Link and Unlink on the session's loop only.
class LiveSessions {
 public:
  explicit LiveSessions(size_t loops) : heads_(loops) {}
  void Link(size_t loop, LiveSession* s);
  void Unlink(size_t loop, LiveSession* s);
  // Calls Recheck(sweep) on every session of `loop`; on that loop. A
  // session may end (and unlink itself) inside its Recheck.
  void RecheckAll(size_t loop, const LiveSession::Sweep& sweep);

 private:
  std::vector<LiveSession*> heads_;
};

class Context;

// Keeps Context::revocations in step with the store: a first read at Start
// (before the node serves), then one every `interval_ms` on a thread of its
// own (another node's revocations, in cluster mode; expired ones dropped),
// each new one swept through the live sessions.
class RevocationSync {
 public:
  RevocationSync(Context& ctx, int64_t interval_ms) : ctx_(ctx), interval_ms_(interval_ms) {}
  ~RevocationSync() { Stop(); }
  // Throws std::runtime_error if the first read fails.
  void Start();
  void Stop();

 private:
  void ReadOnce(std::function<void(bool ok)> done);
  Context& ctx_;
  const int64_t interval_ms_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::atomic<bool> in_flight_{false};
};

}  // namespace onlined::api
