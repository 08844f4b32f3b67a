#pragma once
// cluster::DeliveryOrder: one user's messages of one chat as they reach a
// node, handed to the node's sessions of the user in seq order, once each.
//
// Frames come from this node's commits and from other nodes' (over NATS, in
// no order between nodes). A frame past the next one due is held, and the
// gap before it is read from the store (one heal at a time); a heal covers
// the gap as it was asked: a gap that opens past it while it is in flight
// (a frame from one node overtaking another node's earlier one) is healed
// next, never skipped.
//
// The first frame of a chat seen here starts the order. What came before
// reached the sessions by their own resume (the replay after their hello),
// except what was committed after that replay's read and never reached this
// node: the kFirstHeal seqs before it are read again (a gap, as above) and
// each session drops what it has. A frame earlier than the first, still in
// flight from another node then, is handed over late rather than lost.
//
// Not thread-safe: the engine keeps one per user record, on its shard's loop.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace onlined::cluster {

class DeliveryOrder {
 public:
  using Payload = std::shared_ptr<const std::string>;
  using Frames = std::vector<std::pair<int64_t, Payload>>;

  static constexpr int64_t kFirstHeal = 32;  // seqs read again before a chat's first frame here
  static constexpr size_t kMaxHeld = 256;    // frames held after a gap: then order over waiting
  static constexpr size_t kMaxLate = 64;     // frames before the first, remembered once each

  // What the order asks of its owner.
  class Sink {
   public:
    virtual ~Sink() = default;
    // Hands `frame` (seq `seq` of the chat) to the sessions here.
    virtual void Deliver(int64_t seq, Payload frame) = 0;
    // Reads the chat's frames in (after, upto] from the store; the answer
    // comes back through Healed(epoch, upto, …), later (not from inside this
    // call). False: there is no store to ask; the held frames go on across
    // the gap.
    virtual bool AskHeal(int64_t after, int64_t upto, uint32_t epoch) = 0;
    virtual void Duplicate() {}  // a frame handed over already, dropped
    virtual void Gap() {}        // a gap healed (not the first look back)
  };

  const std::string& chat() const { return chat_; }
  int64_t delivered() const { return delivered_; }  // the last seq handed over
  size_t held() const { return held_.size(); }

  // Starts afresh for `chat` (another chat, or none: no session here to put
  // it in order for); a heal in flight is disowned.
  void Reset(std::string chat);
  // Frame `seq` of `chat` reached this node.
  void Offer(const std::string& chat, int64_t seq, Payload frame, Sink& sink);
  // The store's answer to AskHeal(…, upto, epoch): the frames it found
  // (none if it failed). What it did not give of the gap is not waited for:
  // the frame after the gap goes on, so a failing store is not asked in a
  // loop. An answer for an order started afresh since is ignored.
  void Healed(uint32_t epoch, int64_t upto, Frames got, Sink& sink);

 private:
  void Heal(Sink& sink);
  // Hands over the held frames that follow delivered_, in order; those up
  // to `skip_upto` even across a gap.
  void DeliverHeld(int64_t skip_upto, Sink& sink);

  std::string chat_;
  int64_t delivered_ = 0;
  std::map<int64_t, Payload> held_;  // after a gap, until it is healed
  bool healing_ = false;
  uint32_t epoch_ = 0;  // a heal's answer counts only in the order that asked it
  int64_t first_seen_ = 0;
  std::vector<int64_t> late_;
};

}  // namespace onlined::cluster
