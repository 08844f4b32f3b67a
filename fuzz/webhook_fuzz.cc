// libFuzzer target: the provider's webhook bodies (form-encoded) and what
// the server reads from them: keywords, statuses, the signature check.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "notify/webhook.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  onlined::notify::Form form;
  if (!onlined::notify::ParseForm(body, form)) return 0;
  std::string text = onlined::notify::FormValue(form, "Body");
  (void)onlined::notify::OptInKeyword(text);
  int rank = onlined::notify::StatusRank(onlined::notify::FormValue(form, "MessageStatus"));
  if (rank < 0 || rank > 3) abort();
  std::string sig = onlined::notify::TwilioSignature("token", "https://x/v1/sms/inbound", form);
  if (!onlined::notify::CheckTwilioSignature("token", "https://x/v1/sms/inbound", form, sig))
    abort();
  // What we encode parses back to the same form.
  onlined::notify::Form again;
  if (!onlined::notify::ParseForm(onlined::notify::FormEncode(form), again) || again != form)
    abort();
  return 0;
}
