#pragma once
// The provider's webhooks: form decoding, X-Twilio-Signature, and what an
// inbound SMS keyword or a status callback means. Pure; thread-safe.
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace onlined::notify {

using Form = std::vector<std::pair<std::string, std::string>>;

// Percent-decodes `in` (%XX a byte; '+' a space if plus_is_space, as in a
// form) into `out`. False if a % is not followed by two hex digits.
bool PercentDecode(std::string_view in, std::string& out, bool plus_is_space);
// application/x-www-form-urlencoded ('+' is a space). False if malformed.
bool ParseForm(std::string_view body, Form& out);
std::string FormValue(const Form& f, std::string_view key);
// URL-encodes for a form body.
std::string FormEncode(const Form& f);

// base64(HMAC-SHA1(auth_token, url + each key+value sorted by key)).
std::string TwilioSignature(std::string_view auth_token, std::string_view url, const Form& params);
// Constant-time check of a received signature.
bool CheckTwilioSignature(std::string_view auth_token, std::string_view url, const Form& params,
                          std::string_view received);

// STOP, QUIT, END, REVOKE, OPT OUT, CANCEL, UNSUBSCRIBE -> false (opt out);
// START -> true; anything else -> nullopt. Case and spaces do not matter.
std::optional<bool> OptInKeyword(std::string_view body);

// Rank of a provider status, for "forward, never backward": queued 1,
// sending 1, sent 2, delivered/undelivered/failed 3; unknown 0.
int StatusRank(std::string_view status);

}  // namespace onlined::notify
