#pragma once
// The cluster's messages on NATS: a small binary format, little-endian,
// strings and blobs length-prefixed (u32). Pure functions, fuzzed
// (fuzz/cluster_wire_fuzz.cc): every byte from a peer is checked against
// what is left before it is used, and a count is bounded by the bytes that
// could hold it, so a hostile or truncated message is refused, never read
// past its end.
//
//   subject                     message
//   onl.beat                    Beat (every beat_ms) or a Beat with leaving set
//   onl.pd.<node>               Deltas: one shard's changes of its users
//   onl.snap.<node> (request)   answered by Snapshot chunks to the reply inbox
//   onl.dl.<node>               Deliver: a message frame for a user's sessions there
//   onl.desk.<channel>          a frame for the channel's desks (raw bytes)
//   onl.pev.<channel>           (JetStream) Events: numbered presence events
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace onlined::cluster {

// A subject token for an id: '.', '*', '>' and white space are not allowed
// in a token; '.' becomes '~' (no channel id holds one, so channel tokens
// stay distinct), the others '_'. Messages carry the ids themselves.
std::string Token(std::string_view id);

struct Beat {
  std::string node;
  uint64_t boot = 0;                 // the process's boot id: a restart is a new node
  bool ready = false;                // has its replica: may be a channel's home
  bool leaving = false;              // draining: drop me now
  std::vector<uint64_t> shard_seqs;  // the last Deltas seq of each shard
};

// One user's share on the sending node (Deltas) or as known there (Snapshot).
struct UserEntry {
  std::string channel;
  std::string user;
  uint32_t sessions = 0;  // live sessions on the sending node
  bool idle = false;
  bool timed_out = false;  // sessions went to 0 by a heartbeat timeout
  int64_t last_seen = 0;
  // Snapshot only: the user's state as the presence stream last said it.
  bool pub_known = false, pub_online = false, pub_idle = false;
};

struct Deltas {
  std::string node;
  uint64_t boot = 0;
  uint32_t shard = 0;
  uint64_t seq = 0;  // 1, 2, ... per (node, boot, shard)
  std::vector<UserEntry> users;
};

struct Snapshot {
  std::string node;
  uint64_t boot = 0;
  uint32_t shard = 0;
  uint32_t shards = 0;      // how many shards the node has
  uint64_t seq = 0;         // the shard's Deltas seq this chunk is consistent with
  bool last = false;        // the shard's last chunk
  uint64_t stream_seq = 0;  // the presence stream position the pub_ fields reflect
  std::vector<UserEntry> users;
};

struct Deliver {
  std::string channel, user, chat_id;
  int64_t seq = 0;
  std::string frame;
};

struct PresenceEvent {
  std::string user;
  bool online = false, idle = false;
  int64_t last_seen = 0;
};
struct Events {
  uint64_t first_seq = 0;  // event_seq of events[0]; the rest follow by one
  std::vector<PresenceEvent> events;
};

std::string Encode(const Beat& m);
std::string Encode(const Deltas& m);
std::string Encode(const Snapshot& m);
std::string Encode(const Deliver& m);
std::string Encode(const Events& m);
// Encodes entries into a Snapshot chunk until it would pass `max_bytes`;
// returns how many of `users[from..]` it took (at least one).
size_t EncodeChunk(Snapshot& header, const std::vector<UserEntry>& users, size_t from,
                   size_t max_bytes, std::string& out);

// Each returns nullopt for anything malformed (wrong kind, truncated,
// trailing bytes, a count the bytes cannot hold).
std::optional<Beat> DecodeBeat(std::string_view b);
std::optional<Deltas> DecodeDeltas(std::string_view b);
std::optional<Snapshot> DecodeSnapshot(std::string_view b);
std::optional<Deliver> DecodeDeliver(std::string_view b);
std::optional<Events> DecodeEvents(std::string_view b);

}  // namespace onlined::cluster
