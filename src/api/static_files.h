#pragma once
// The web pages (web/): loaded into memory at start, served by exact path.
// Only files found under the directory at start are ever served (no path
// from a request touches the filesystem). Immutable after Load; thread-safe.
#include <map>
#include <optional>
#include <string>

#include "net/handler.h"

namespace onlined::api {

class StaticFiles {
 public:
  // Loads every file under `dir` as "/<relative path>". Returns how many.
  size_t Load(const std::string& dir);
  // The response for `path` (GET), or nullopt. "/desk" and "/widget" are
  // their index.html. `frame_ancestors` is the CSP source list of who may
  // frame the pages ("'none'": nobody). `host`: the request's Host, which
  // the page policy names for the pages' WebSocket.
  std::optional<net::Response> Get(std::string_view path,
                                   std::string_view frame_ancestors = "'none'",
                                   std::string_view host = {}) const;
  bool empty() const { return files_.empty(); }

 private:
  struct File {
    std::string content_type;
    std::string body;
  };
  std::map<std::string, File, std::less<>> files_;
};

// Where web/ is: `configured` if set, else next to the source tree the
// binary was built from, else <exe dir>/../web.
std::string FindWebDir(const std::string& configured);

}  // namespace onlined::api
