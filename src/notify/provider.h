#pragma once
// SMS providers. Send() never blocks: `done` is called later, exactly once,
// on the provider's thread (the notify thread).
#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>

namespace onlined::notify {

struct SmsRequest {
  int64_t notification_id = 0;
  std::string to;
  std::string body;
};

struct SmsResult {
  enum class Kind { kSent, kRetry, kFailed } kind = Kind::kSent;
  std::string sid;     // the provider's message id (sent)
  std::string status;  // the provider's status (sent)
  std::string reason;  // why not sent: "http_503", "timeout", "http_400:21211", ...
};

class Provider {
 public:
  virtual ~Provider() = default;
  virtual void Send(SmsRequest req, std::function<void(SmsResult)> done) = 0;
  virtual const char* name() const = 0;
};

// Records each SMS in the log and reports it sent; for the demo and tests.
std::unique_ptr<Provider> MakeLogProvider(boost::asio::io_context& io);

struct TwilioOptions {
  std::string base_url = "https://api.twilio.com";  // http:// for a local fake
  std::string account_sid;
  std::string auth_token;
  std::string from;
  std::string status_callback_url;  // "" for none
  int64_t timeout_ms = 10000;
};

// POSTs the Twilio Messages API form with basic auth. 2xx -> sent; 429, 5xx,
// network errors and timeouts -> retry; other 4xx -> failed with the
// provider's error code.
std::unique_ptr<Provider> MakeTwilioProvider(boost::asio::io_context& io, TwilioOptions opts);

}  // namespace onlined::notify
