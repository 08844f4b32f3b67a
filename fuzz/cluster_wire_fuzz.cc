// libFuzzer target: the cluster's NATS messages (cluster/wire.h), as a peer
// (or anyone who can publish on the subjects) sends them: one whole message
// per NATS delivery, any bytes. A decoder must refuse what is malformed,
// never read past the end; what it accepts must encode back to the same
// bytes (the format has one spelling per message).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cluster/wire.h"

using namespace onlined::cluster;

template <class M>
void Check(const std::optional<M>& m, std::string_view in) {
  if (m && Encode(*m) != in) abort();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  Check(DecodeBeat(in), in);
  Check(DecodeDeltas(in), in);
  Check(DecodeSnapshot(in), in);
  Check(DecodeDeliver(in), in);
  Check(DecodeEvents(in), in);
  return 0;
}
