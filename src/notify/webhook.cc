#include "notify/webhook.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>

namespace onlined::notify {

namespace {
int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

bool PercentDecode(std::string_view in, std::string& out, bool plus_is_space) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= in.size()) return false;  // needs two hex digits
      int h = HexVal(in[i + 1]), l = HexVal(in[i + 2]);
      if (h < 0 || l < 0) return false;
      out.push_back(static_cast<char>(h * 16 + l));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return true;
}

bool ParseForm(std::string_view body, Form& out) {
  out.clear();
  while (!body.empty()) {
    size_t amp = body.find('&');
    std::string_view pair = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view{} : body.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string k, v;
    if (!PercentDecode(pair.substr(0, eq), k, true)) return false;
    if (eq != std::string_view::npos && !PercentDecode(pair.substr(eq + 1), v, true)) return false;
    out.emplace_back(std::move(k), std::move(v));
  }
  return true;
}

std::string FormValue(const Form& f, std::string_view key) {
  for (const auto& [k, v] : f) {
    if (k == key) return v;
  }
  return "";
}

std::string FormEncode(const Form& f) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  auto enc = [&](const std::string& s) {
    for (unsigned char c : s) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
        out.push_back(static_cast<char>(c));
      } else if (c == ' ') {
        out.push_back('+');
      } else {
        out.push_back('%');
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
      }
    }
  };
  for (size_t i = 0; i < f.size(); ++i) {
    if (i) out.push_back('&');
    enc(f[i].first);
    out.push_back('=');
    enc(f[i].second);
  }
  return out;
}

std::string TwilioSignature(std::string_view auth_token, std::string_view url, const Form& params) {
  Form sorted = params;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string data(url);
  for (const auto& [k, v] : sorted) data += k + v;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha1(), auth_token.data(), static_cast<int>(auth_token.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  unsigned char out[64];
  int n = EVP_EncodeBlock(out, mac, static_cast<int>(len));
  return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n));
}

bool CheckTwilioSignature(std::string_view auth_token, std::string_view url, const Form& params,
                          std::string_view received) {
  std::string expected = TwilioSignature(auth_token, url, params);
  return received.size() == expected.size() &&
         CRYPTO_memcmp(received.data(), expected.data(), expected.size()) == 0;
}

std::optional<bool> OptInKeyword(std::string_view body) {
  std::string k;
  for (char c : body) {
    if (!std::isspace(static_cast<unsigned char>(c)))
      k.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  for (const char* w : {"STOP", "QUIT", "END", "REVOKE", "OPTOUT", "CANCEL", "UNSUBSCRIBE"}) {
    if (k == w) return false;
  }
  if (k == "START") return true;
  return std::nullopt;
}

int StatusRank(std::string_view s) {
  if (s == "accepted" || s == "queued" || s == "sending") return 1;
  if (s == "sent") return 2;
  if (s == "delivered" || s == "undelivered" || s == "failed") return 3;
  return 0;
}

}  // namespace onlined::notify
