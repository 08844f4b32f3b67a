#pragma once
// The contract's WebSocket endpoint, GET /v1/connect: hello/welcome,
// heartbeats, the user's `state`, and the manager's presence stream.
#include "api/context.h"
#include "net/handler.h"

namespace onlined::api {

// Accepts upgrades to /v1/connect and makes a ClientSession for each.
// Thread-safe (stateless); sessions live on their connection's loop.
class ConnectEndpoint : public net::WsAcceptor {
 public:
  explicit ConnectEndpoint(Context& ctx) : ctx_(ctx) {}
  Decision Upgrade(const net::Request& req, net::WsConnection& conn) override;

 private:
  Context& ctx_;
};

}  // namespace onlined::api
