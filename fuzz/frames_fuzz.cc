// libFuzzer target: the client frame parser and the JSON writer must accept
// any bytes without crashing, and what they write must parse back.
#include <boost/json/parse.hpp>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "proto/frames.h"
#include "proto/json_writer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  onlined::proto::ClientFrame f;
  onlined::proto::FrameError err;
  if (!onlined::proto::ParseClientFrame(text, f, err)) {
    if (err.code.empty()) abort();
  }
  // Whatever a client sends may come back in an error frame or a presence
  // event: the encoding must always be valid JSON.
  std::string out = onlined::proto::EncodeError("bad_frame", text);
  boost::system::error_code ec;
  boost::json::parse(out, ec);
  if (ec) abort();
  out = onlined::proto::EncodePresence(text, true, 1, false, 2);
  boost::json::parse(out, ec);
  if (ec) abort();
  // A query body the scanner takes must parse in full to the same ids.
  std::vector<std::string_view> ids;
  if (onlined::proto::ScanUserIds(text, ids)) {
    boost::json::value v = boost::json::parse(text, ec);
    if (ec || !v.is_object() || v.as_object().size() != 1) abort();
    const boost::json::value* a = v.as_object().if_contains("user_ids");
    if (a == nullptr || !a->is_array() || a->as_array().size() != ids.size()) abort();
    for (size_t i = 0; i < ids.size(); ++i) {
      const boost::json::string* s = a->as_array()[i].if_string();
      if (s == nullptr || std::string_view(*s) != ids[i]) abort();
    }
  } else if (!ids.empty()) {
    abort();  // a body it gives up on is the full parse's alone
  }
  return 0;
}
