#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include "notify/provider.h"

namespace onlined::notify {

namespace {
class LogProvider final : public Provider {
 public:
  explicit LogProvider(boost::asio::io_context& io) : io_(io) {}
  void Send(SmsRequest req, std::function<void(SmsResult)> done) override {
    spdlog::info("sms (log provider) to {}: {}", req.to, req.body);
    SmsResult r;
    r.sid = "log-" + std::to_string(req.notification_id);
    r.status = "delivered";
    boost::asio::post(io_, [done = std::move(done), r = std::move(r)] { done(r); });
  }
  const char* name() const override { return "log"; }

 private:
  boost::asio::io_context& io_;
};
}  // namespace

std::unique_ptr<Provider> MakeLogProvider(boost::asio::io_context& io) {
  return std::make_unique<LogProvider>(io);
}

}  // namespace onlined::notify
