#include "cluster/wire.h"

#include <cstring>

namespace onlined::cluster {

namespace {

enum Kind : uint8_t { kBeat = 1, kDeltas = 2, kSnapshot = 3, kDeliver = 4, kEvents = 5 };
// Every format starts with its kind and a version byte; a peer that speaks
// a newer version is refused, not misread.
constexpr uint8_t kVersion = 1;
constexpr uint32_t kMaxString = 1u << 20;  // NATS's default payload limit

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void I64(int64_t v) { Raw(&v, 8); }
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }

 private:
  void Raw(const void* p, size_t n) {  // the machines of a cluster are little-endian (x86-64)
    out_.append(static_cast<const char*>(p), n);
  }
  std::string& out_;
};

class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool U8(uint8_t& v) {
    if (left() < 1) return Bad();
    v = static_cast<uint8_t>(b_[pos_++]);
    return true;
  }
  bool Bool(bool& v) {
    uint8_t x = 0;
    if (!U8(x) || x > 1) return Bad();
    v = x == 1;
    return true;
  }
  bool U32(uint32_t& v) { return Raw(&v, 4); }
  bool U64(uint64_t& v) { return Raw(&v, 8); }
  bool I64(int64_t& v) { return Raw(&v, 8); }
  bool Str(std::string& s) {
    uint32_t n = 0;
    if (!U32(n) || n > kMaxString || n > left()) return Bad();
    s.assign(b_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  // A count of items of at least `min_bytes` each: never more than fit.
  bool Count(uint32_t& n, size_t min_bytes) {
    if (!U32(n) || n > left() / min_bytes) return Bad();
    return true;
  }
  bool Header(uint8_t kind) {
    uint8_t k = 0, v = 0;
    return U8(k) && k == kind && U8(v) && v == kVersion;
  }
  bool Done() const { return ok_ && pos_ == b_.size(); }
  size_t left() const { return b_.size() - pos_; }

 private:
  bool Raw(void* p, size_t n) {
    if (left() < n) return Bad();
    std::memcpy(p, b_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool Bad() {
    ok_ = false;
    return false;
  }
  std::string_view b_;
  size_t pos_ = 0;
  bool ok_ = true;
};

void Head(Writer& w, uint8_t kind) {
  w.U8(kind);
  w.U8(kVersion);
}

// Flags of a UserEntry.
enum : uint8_t {
  kIdle = 1,
  kTimedOut = 2,
  kPubKnown = 4,
  kPubOnline = 8,
  kPubIdle = 16,
  kAllFlags = 31
};
constexpr size_t kMinEntry = 4 + 4 + 4 + 1 + 8;

void PutEntry(Writer& w, const UserEntry& e) {
  w.Str(e.channel);
  w.Str(e.user);
  w.U32(e.sessions);
  w.U8(static_cast<uint8_t>((e.idle ? kIdle : 0) | (e.timed_out ? kTimedOut : 0) |
                            (e.pub_known ? kPubKnown : 0) | (e.pub_online ? kPubOnline : 0) |
                            (e.pub_idle ? kPubIdle : 0)));
  w.I64(e.last_seen);
}

bool GetEntries(Reader& r, std::vector<UserEntry>& out) {
  uint32_t n = 0;
  if (!r.Count(n, kMinEntry)) return false;
  out.resize(n);
  for (UserEntry& e : out) {
    uint8_t f = 0;
    if (!r.Str(e.channel) || !r.Str(e.user) || !r.U32(e.sessions) || !r.U8(f) || f > kAllFlags ||
        !r.I64(e.last_seen))
      return false;
    e.idle = f & kIdle;
    e.timed_out = f & kTimedOut;
    e.pub_known = f & kPubKnown;
    e.pub_online = f & kPubOnline;
    e.pub_idle = f & kPubIdle;
  }
  return true;
}

size_t EntryBytes(const UserEntry& e) { return kMinEntry + e.channel.size() + e.user.size(); }

void PutSnapshotHead(Writer& w, const Snapshot& m) {
  Head(w, kSnapshot);
  w.Str(m.node);
  w.U64(m.boot);
  w.U32(m.shard);
  w.U32(m.shards);
  w.U64(m.seq);
  w.U8(m.last ? 1 : 0);
  w.U64(m.stream_seq);
}

}  // namespace

std::string Token(std::string_view id) {
  std::string t(id);
  for (char& c : t) {
    if (c == '.') {
      c = '~';
    } else if (c == '*' || c == '>' || c <= ' ') {
      c = '_';
    }
  }
  if (t.empty()) t = "_";
  return t;
}

std::string Encode(const Beat& m) {
  std::string out;
  Writer w(out);
  Head(w, kBeat);
  w.Str(m.node);
  w.U64(m.boot);
  w.U8(m.ready ? 1 : 0);
  w.U8(m.leaving ? 1 : 0);
  w.U32(static_cast<uint32_t>(m.shard_seqs.size()));
  for (uint64_t s : m.shard_seqs) w.U64(s);
  return out;
}

std::string Encode(const Deltas& m) {
  std::string out;
  Writer w(out);
  Head(w, kDeltas);
  w.Str(m.node);
  w.U64(m.boot);
  w.U32(m.shard);
  w.U64(m.seq);
  w.U32(static_cast<uint32_t>(m.users.size()));
  for (const UserEntry& e : m.users) PutEntry(w, e);
  return out;
}

std::string Encode(const Snapshot& m) {
  std::string out;
  Writer w(out);
  PutSnapshotHead(w, m);
  w.U32(static_cast<uint32_t>(m.users.size()));
  for (const UserEntry& e : m.users) PutEntry(w, e);
  return out;
}

size_t EncodeChunk(Snapshot& header, const std::vector<UserEntry>& users, size_t from,
                   size_t max_bytes, std::string& out) {
  size_t bytes = 64 + header.node.size(), to = from;
  while (to < users.size() && (to == from || bytes + EntryBytes(users[to]) <= max_bytes)) {
    bytes += EntryBytes(users[to]);
    ++to;
  }
  header.last = to == users.size();
  out.clear();
  Writer w(out);
  PutSnapshotHead(w, header);
  w.U32(static_cast<uint32_t>(to - from));
  for (size_t i = from; i < to; ++i) PutEntry(w, users[i]);
  return to - from;
}

std::string Encode(const Deliver& m) {
  std::string out;
  Writer w(out);
  Head(w, kDeliver);
  w.Str(m.channel);
  w.Str(m.user);
  w.Str(m.chat_id);
  w.I64(m.seq);
  w.Str(m.frame);
  return out;
}

std::string Encode(const Events& m) {
  std::string out;
  Writer w(out);
  Head(w, kEvents);
  w.U64(m.first_seq);
  w.U32(static_cast<uint32_t>(m.events.size()));
  for (const PresenceEvent& e : m.events) {
    w.Str(e.user);
    w.U8(static_cast<uint8_t>((e.online ? 1 : 0) | (e.idle ? 2 : 0)));
    w.I64(e.last_seen);
  }
  return out;
}

std::optional<Beat> DecodeBeat(std::string_view b) {
  Reader r(b);
  Beat m;
  uint32_t n = 0;
  if (!r.Header(kBeat) || !r.Str(m.node) || !r.U64(m.boot) || !r.Bool(m.ready) ||
      !r.Bool(m.leaving) || !r.Count(n, 8))
    return std::nullopt;
  m.shard_seqs.resize(n);
  for (uint64_t& s : m.shard_seqs) {
    if (!r.U64(s)) return std::nullopt;
  }
  if (!r.Done()) return std::nullopt;
  return m;
}

std::optional<Deltas> DecodeDeltas(std::string_view b) {
  Reader r(b);
  Deltas m;
  if (!r.Header(kDeltas) || !r.Str(m.node) || !r.U64(m.boot) || !r.U32(m.shard) || !r.U64(m.seq) ||
      !GetEntries(r, m.users) || !r.Done())
    return std::nullopt;
  return m;
}

std::optional<Snapshot> DecodeSnapshot(std::string_view b) {
  Reader r(b);
  Snapshot m;
  if (!r.Header(kSnapshot) || !r.Str(m.node) || !r.U64(m.boot) || !r.U32(m.shard) ||
      !r.U32(m.shards) || !r.U64(m.seq) || !r.Bool(m.last) || !r.U64(m.stream_seq) ||
      !GetEntries(r, m.users) || !r.Done() || m.shard >= m.shards)
    return std::nullopt;
  return m;
}

std::optional<Deliver> DecodeDeliver(std::string_view b) {
  Reader r(b);
  Deliver m;
  if (!r.Header(kDeliver) || !r.Str(m.channel) || !r.Str(m.user) || !r.Str(m.chat_id) ||
      !r.I64(m.seq) || !r.Str(m.frame) || !r.Done())
    return std::nullopt;
  return m;
}

std::optional<Events> DecodeEvents(std::string_view b) {
  Reader r(b);
  Events m;
  uint32_t n = 0;
  if (!r.Header(kEvents) || !r.U64(m.first_seq) || !r.Count(n, 4 + 1 + 8)) return std::nullopt;
  m.events.resize(n);
  for (PresenceEvent& e : m.events) {
    uint8_t f = 0;
    if (!r.Str(e.user) || !r.U8(f) || f > 3 || !r.I64(e.last_seen)) return std::nullopt;
    e.online = f & 1;
    e.idle = f & 2;
  }
  // The numbers must not wrap: first_seq + n - 1 fits.
  if (!r.Done() || n == 0 || m.first_seq > UINT64_MAX - n) return std::nullopt;
  return m;
}

}  // namespace onlined::cluster
