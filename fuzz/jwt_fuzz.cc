// libFuzzer target: a token as a client sends it in hello or a Bearer
// header. Verify must refuse or accept without crashing, and what it
// accepts must carry a channel whose secret signed it.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "auth/token.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string kSecret = "fuzz-secret-0123456789";
  std::string_view token(reinterpret_cast<const char*>(data), size);
  onlined::auth::KeyLookup secrets = [](std::string_view ch, const char* kid,
                                        onlined::auth::TokenError&) -> onlined::auth::KeyRef {
    if (ch != "acme" || (kid != nullptr && std::string_view(kid) != "k1")) return {};
    return {&kSecret, 1};
  };
  onlined::auth::Claims c;
  onlined::auth::TokenError err;
  if (onlined::auth::Verify(token, secrets, 1700000000, c, err)) {
    if (c.channel != "acme") abort();
  } else if (err.code.empty()) {
    abort();
  }
  return 0;
}
