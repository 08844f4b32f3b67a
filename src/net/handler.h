#pragma once
// The seam between the network layer and the rest: plain request/response
// values and two interfaces the application implements. Nothing here knows
// Beast or the domain; api/ implements the interfaces, net/ drives them.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace onlined::net {

struct Request {
  std::string method;                                        // "GET", "POST", ...
  std::string target;                                        // path and query, as sent
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;
  std::string remote;  // peer address
  size_t loop = 0;     // the loop that holds the connection

  // The first value of header `name` (lower-case), or "".
  std::string_view Header(std::string_view name) const;
  std::string_view Path() const;
  std::string_view Query() const;
  // GET, or HEAD (answered as GET; the server sends no body).
  bool IsGet() const { return method == "GET" || method == "HEAD"; }
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Completes a request. Callable from any thread, exactly once.
using Responder = std::function<void(Response)>;

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Runs on the connection's loop. Must not block; may answer later.
  virtual void Handle(Request&& req, Responder respond) = 0;
};

// One open WebSocket, as the application sees it. All calls on the
// connection's loop only.
class WsConnection {
 public:
  virtual ~WsConnection() = default;
  // Queues a text frame. The payload is shared, never copied (fan-out). If
  // the queue is over its cap the connection is closed with 1008
  // ("slow consumer") and false is returned.
  virtual bool Send(std::shared_ptr<const std::string> text) = 0;
  // How many more frames Send() would take before the cap (every queued
  // frame counts, pongs too). A batch that would not fit (a desk's replay)
  // must be replaced by something smaller instead of cutting the client.
  virtual size_t send_room() const = 0;
  // From now on the cap is desk_send_queue_max: a desk's connection (a
  // manager's or the company's server), which gets the channel's every
  // event. Called once its hello is accepted.
  virtual void UseDeskQueue() = 0;
  // Sends a close frame after what is queued, then ends the connection.
  virtual void Close(uint16_t code, std::string_view reason) = 0;
  // Ends the connection now, without a close handshake (dead peers).
  virtual void Abort() = 0;
  virtual size_t loop() const = 0;
  virtual const std::string& remote() const = 0;
  // A token that expires with the connection, for callbacks that come back
  // later on the connection's loop: lock() it before touching the session.
  virtual std::weak_ptr<void> lifetime() = 0;
};

// The application's side of one WebSocket. Called on its loop only; owned by
// the net layer, destroyed after OnClosed.
class WsSession {
 public:
  virtual ~WsSession() = default;
  virtual void OnOpen() = 0;
  // One complete text message.
  virtual void OnText(std::string_view text) = 0;
  // A binary message, ping or pong: liveness, no payload for the app.
  virtual void OnOtherFrame(bool binary) = 0;
  // The connection ended (close frame, error, Abort). `code` is the close
  // code received or sent, 1006 for an abnormal end.
  virtual void OnClosed(uint16_t code) = 0;
};

// Decides on an upgrade request: either a session for the connection, or a
// refusal (an HTTP response).
class WsAcceptor {
 public:
  virtual ~WsAcceptor() = default;
  struct Decision {
    std::unique_ptr<WsSession> session;  // accepted if set
    Response refusal;
  };
  // `conn` stays valid for the session's whole life.
  virtual Decision Upgrade(const Request& req, WsConnection& conn) = 0;
};

}  // namespace onlined::net
