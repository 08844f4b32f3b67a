// libFuzzer target: the TOML settings file (and what SIGHUP re-reads). Bad
// input must end in a ConfigError naming the key, never a crash or another
// exception.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    onlined::config::Config c = onlined::config::LoadFromString(text, {}, {}, "fuzz");
    if (c.heartbeat_s < 1) abort();
  } catch (const onlined::config::ConfigError&) {
  }
  return 0;
}
