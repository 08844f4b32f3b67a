// The Twilio-shaped HTTP client: one coroutine per send on the notify
// thread's io_context; TLS when the base URL is https.
#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json/parse.hpp>
#include <boost/url/parse.hpp>

#include "notify/provider.h"
#include "notify/webhook.h"

namespace onlined::notify {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string Base64(const std::string& s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

class TwilioProvider final : public Provider {
 public:
  TwilioProvider(asio::io_context& io, TwilioOptions o)
      : io_(io), o_(std::move(o)), ssl_(asio::ssl::context::tls_client) {
    auto u = boost::urls::parse_uri(o_.base_url);
    if (!u) throw std::invalid_argument("sms.base_url: not a URL: " + o_.base_url);
    tls_ = u->scheme() == "https";
    host_ = u->host();
    port_ = u->has_port() ? std::string(u->port()) : (tls_ ? "443" : "80");
    prefix_ = std::string(u->path());
    while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
    ssl_.set_default_verify_paths();
    ssl_.set_verify_mode(asio::ssl::verify_peer);
  }

  void Send(SmsRequest req, std::function<void(SmsResult)> done) override {
    asio::co_spawn(io_, Post(std::move(req)),
                   [done = std::move(done)](std::exception_ptr e, SmsResult r) {
                     if (e) {
                       SmsResult x;
                       x.kind = SmsResult::Kind::kRetry;
                       try {
                         std::rethrow_exception(e);
                       } catch (const std::exception& ex) {
                         x.reason = std::string("error: ") + ex.what();
                       }
                       return done(x);
                     }
                     done(r);
                   });
  }
  const char* name() const override { return "twilio"; }

 private:
  http::request<http::string_body> BuildRequest(const SmsRequest& r) const {
    http::request<http::string_body> req{
        http::verb::post, prefix_ + "/2010-04-01/Accounts/" + o_.account_sid + "/Messages.json",
        11};
    req.set(http::field::host, host_);
    req.set(http::field::user_agent, "onlined");
    req.set(http::field::authorization, "Basic " + Base64(o_.account_sid + ":" + o_.auth_token));
    req.set(http::field::content_type, "application/x-www-form-urlencoded");
    Form f = {{"To", r.to}, {"From", o_.from}, {"Body", r.body}};
    if (!o_.status_callback_url.empty()) f.emplace_back("StatusCallback", o_.status_callback_url);
    req.body() = FormEncode(f);
    req.prepare_payload();
    return req;
  }

  static SmsResult Classify(const http::response<http::string_body>& res) {
    SmsResult r;
    unsigned code = res.result_int();
    boost::system::error_code ec;
    auto v = boost::json::parse(res.body(), ec);
    const boost::json::object* o = !ec ? v.if_object() : nullptr;
    if (code >= 200 && code < 300) {
      r.kind = SmsResult::Kind::kSent;
      if (o && o->contains("sid") && o->at("sid").is_string())
        r.sid = std::string(o->at("sid").as_string());
      if (o && o->contains("status") && o->at("status").is_string()) {
        r.status = std::string(o->at("status").as_string());
      }
      if (r.status.empty()) r.status = "unknown";  // accepted, but the answer was not understood
      return r;
    }
    r.reason = "http_" + std::to_string(code);
    if (o && o->contains("code") && o->at("code").is_int64())
      r.reason += ":" + std::to_string(o->at("code").as_int64());
    r.kind = (code == 429 || code >= 500) ? SmsResult::Kind::kRetry : SmsResult::Kind::kFailed;
    return r;
  }

  asio::awaitable<SmsResult> Post(SmsRequest r) {
    auto req = BuildRequest(r);
    auto timeout = std::chrono::milliseconds(o_.timeout_ms);
    tcp::resolver resolver(io_);
    auto results = co_await resolver.async_resolve(host_, port_, asio::use_awaitable);
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 * 1024);
    beast::flat_buffer buf;
    SmsResult out;
    try {
      if (tls_) {
        beast::ssl_stream<beast::tcp_stream> s(io_, ssl_);
        if (!SSL_set_tlsext_host_name(s.native_handle(), host_.c_str()))
          throw std::runtime_error("SNI");
        s.set_verify_callback(asio::ssl::host_name_verification(host_));
        beast::get_lowest_layer(s).expires_after(timeout);
        co_await beast::get_lowest_layer(s).async_connect(results, asio::use_awaitable);
        co_await s.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
        co_await http::async_write(s, req, asio::use_awaitable);
        co_await http::async_read(s, buf, parser, asio::use_awaitable);
      } else {
        beast::tcp_stream s(io_);
        s.expires_after(timeout);
        co_await s.async_connect(results, asio::use_awaitable);
        co_await http::async_write(s, req, asio::use_awaitable);
        co_await http::async_read(s, buf, parser, asio::use_awaitable);
        beast::error_code ignore;
        s.socket().shutdown(tcp::socket::shutdown_both, ignore);
      }
      out = Classify(parser.get());
    } catch (const boost::system::system_error& e) {
      out.kind = SmsResult::Kind::kRetry;
      out.reason = e.code() == beast::error::timeout ? "timeout" : "network: " + e.code().message();
    } catch (const std::exception& e) {
      out.kind = SmsResult::Kind::kRetry;
      out.reason = std::string("error: ") + e.what();
    }
    co_return out;
  }

  asio::io_context& io_;
  TwilioOptions o_;
  asio::ssl::context ssl_;
  bool tls_ = false;
  std::string host_, port_, prefix_;
};

}  // namespace

std::unique_ptr<Provider> MakeTwilioProvider(boost::asio::io_context& io, TwilioOptions opts) {
  return std::make_unique<TwilioProvider>(io, std::move(opts));
}

}  // namespace onlined::notify
