#pragma once
// The contract's HTTP calls (docs/protocol.md), thin over the
// engines: routing, auth, JSON in and out. Runs on the request's loop and
// never blocks it: lookups hop to the owning loops and answer later.
#include "api/chat_api.h"
#include "api/context.h"
#include "api/errors.h"
#include "api/static_files.h"
#include "net/handler.h"

namespace onlined::api {

class HttpApi : public net::HttpHandler {
 public:
  HttpApi(Context& ctx, const StaticFiles* web) : ctx_(ctx), chat_(ctx), web_(web) {}
  void Handle(net::Request&& req, net::Responder respond) override;

  // The contract's limit on ids per presence query.
  static constexpr size_t kMaxQueryIds = 1000;

  // GET /metrics: the Prometheus text. Any loop.
  void Metrics(net::Responder respond);

 private:
  void PresenceQuery(net::Request&& req, net::Responder respond);
  void OnlineCount(net::Request&& req, net::Responder respond);

  Context& ctx_;
  ChatApi chat_;
  const StaticFiles* web_;  // may be null: no pages
};

// The metrics listener (metrics_listen): /metrics without a token, /healthz;
// nothing else. Meant for a loopback or private address.
class MetricsHttp : public net::HttpHandler {
 public:
  explicit MetricsHttp(HttpApi& api) : api_(api) {}
  void Handle(net::Request&& req, net::Responder respond) override;

 private:
  HttpApi& api_;
};

// A JSON response with `status`.
net::Response JsonResponse(int status, std::string body);

// Builds the JSON error response of the contract (the status from the error
// table, proto/errors.h), counting it.
net::Response ErrorResponse(Context& ctx, size_t loop, Error e, std::string_view message);

}  // namespace onlined::api
