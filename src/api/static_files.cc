#include "api/static_files.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace onlined::api {

namespace fs = std::filesystem;

namespace {
std::string TypeOf(const fs::path& p) {
  std::string e = p.extension().string();
  if (e == ".html") return "text/html; charset=utf-8";
  if (e == ".js" || e == ".mjs") return "text/javascript; charset=utf-8";
  if (e == ".css") return "text/css; charset=utf-8";
  if (e == ".svg") return "image/svg+xml";
  if (e == ".png") return "image/png";
  if (e == ".json") return "application/json";
  return "application/octet-stream";
}
}  // namespace

size_t StaticFiles::Load(const std::string& dir) {
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) return 0;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    if (!e.is_regular_file() || e.file_size() > (4 << 20)) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string rel = "/" + fs::relative(e.path(), dir).generic_string();
    files_[rel] = File{TypeOf(e.path()), ss.str()};
  }
  return files_.size();
}

namespace {
// A Host header fit to go into a policy: a name or address, and a port.
bool PlainHost(std::string_view h) {
  if (h.empty() || h.size() > 255) return false;
  return std::all_of(h.begin(), h.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '-' || c == ':' ||
           c == '[' || c == ']';
  });
}
}  // namespace

std::optional<net::Response> StaticFiles::Get(std::string_view path,
                                              std::string_view frame_ancestors,
                                              std::string_view host) const {
  std::string p(path);
  if (p == "/desk" || p == "/desk/") p = "/desk/index.html";
  if (p == "/widget" || p == "/widget/") p = "/widget/index.html";
  auto it = files_.find(p);
  if (it == files_.end()) return std::nullopt;
  net::Response r;
  r.content_type = it->second.content_type;
  r.body = it->second.body;
  // Pages take their token from the fragment; keep them out of referrers.
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  // The pages connect to their own origin only: 'self', and the same host
  // by ws: and wss: spelled out (Safari before 16 does not count a WebSocket
  // to the page's own host as 'self'). A Host that is not a plain host[:port]
  // gets 'self' alone.
  std::string connect = "'self'";
  if (PlainHost(host)) {
    connect += " ws://" + std::string(host) + " wss://" + std::string(host);
  }
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'self'; connect-src " + connect +
                             "; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                             "frame-ancestors " +
                             std::string(frame_ancestors));
  if (frame_ancestors == "'none'")
    r.headers.emplace_back("X-Frame-Options", "DENY");  // older browsers
  return r;
}

std::string FindWebDir(const std::string& configured) {
  if (!configured.empty()) return configured;
#ifdef ONLINED_SOURCE_WEB_DIR
  if (fs::is_directory(ONLINED_SOURCE_WEB_DIR)) return ONLINED_SOURCE_WEB_DIR;
#endif
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path web = exe.parent_path().parent_path() / "web";
    if (fs::is_directory(web)) return web.string();
  }
  return "";
}

}  // namespace onlined::api
