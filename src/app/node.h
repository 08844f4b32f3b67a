#pragma once
// app::Node: one onlined process, wired: the loops, the presence engine, the
// store and its outbox worker, the contract's handlers and the listeners.
// main() builds one, hands it reloads and stops it; nothing else lives in
// main. Built, reloaded and stopped from one thread (main's); what it owns
// runs on the threads docs/architecture.md draws.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "base/clock.h"
#include "config/config.h"
#include "store/db.h"

namespace onlined::app {

class Node {
 public:
  // Opens the store, runs `seed` in one store write (the demo), binds the
  // listeners and starts serving. Throws std::runtime_error with a message
  // for the operator if the store cannot be opened or `listen` bound.
  // `clock` is the steady time of the loops' deadlines (grace, heartbeat
  // timeouts): the real one, or a test's ManualClock.
  static std::unique_ptr<Node> Start(config::Config cfg,
                                     const std::function<void(store::Db&)>& seed = {},
                                     base::SteadyClock clock = {});
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  uint16_t port() const;
  // The metrics listener's port, if it is bound.
  std::optional<uint16_t> metrics_port() const;
  const config::Config& config() const;

  // Applies what can change live from `next` (channels and their secrets,
  // policies and time zones, heartbeat, grace, limits, log level, store
  // faults); `listen` and `data_dir` keep their running values (a restart
  // changes them). Never drops a connection.
  void Reload(config::Config next);

  // Stops accepting, closes every WebSocket with 1001, finishes the queued
  // store writes (every acknowledged one is committed), stops the threads.
  void Stop();

  // Fires, on every loop, what the clock makes due now; returns once done.
  // For tests that move a ManualClock (see base/clock.h).
  void TickLoops();

 private:
  struct Parts;
  explicit Node(std::unique_ptr<Parts> p);
  std::unique_ptr<Parts> p_;
};

}  // namespace onlined::app
