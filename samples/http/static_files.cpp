// The pure parts of serving static files: see static_files.h.
#include "samples/http/static_files.h"

#include <strings.h>

#include <array>
#include <charconv>
#include <cstring>
#include <utility>

namespace httpd::detail {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads a decimal number from the front of `s`, removing it; false if
// there is none (or it overflows).
bool take_number(std::string_view& s, std::uint64_t& n) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end == s.data()) return false;
  s.remove_prefix(static_cast<std::size_t>(end - s.data()));
  return true;
}

}  // namespace

std::optional<std::string> decode_path(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (std::size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '%') {
      const int hi = i + 2 < path.size() ? hex_value(path[i + 1]) : -1;
      const int lo = hi >= 0 ? hex_value(path[i + 2]) : -1;
      if (lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return std::nullopt;
    out += c;
  }
  if (out.empty() || out[0] != '/') return std::nullopt;
  // Every segment, after decoding: none may be "..".
  for (std::size_t start = 1; start <= out.size();) {
    std::size_t end = out.find('/', start);
    if (end == std::string::npos) end = out.size();
    if (std::string_view(out).substr(start, end - start) == "..") return std::nullopt;
    start = end + 1;
  }
  return out;
}

std::string_view content_type(std::string_view name) {
  static constexpr std::pair<std::string_view, std::string_view> types[] = {
      {"html", "text/html"},        {"htm", "text/html"},
      {"css", "text/css"},          {"js", "application/javascript"},
      {"json", "application/json"}, {"txt", "text/plain"},
      {"png", "image/png"},         {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},       {"gif", "image/gif"},
      {"svg", "image/svg+xml"},     {"ico", "image/x-icon"},
      {"pdf", "application/pdf"},   {"wasm", "application/wasm"},
  };
  const std::size_t slash = name.rfind('/');
  const std::size_t dot = name.rfind('.');
  if (dot != std::string_view::npos && (slash == std::string_view::npos || dot > slash)) {
    const std::string_view ext = name.substr(dot + 1);
    for (const auto& [e, type] : types) {
      if (e.size() == ext.size() && ::strncasecmp(e.data(), ext.data(), e.size()) == 0) return type;
    }
  }
  return "application/octet-stream";
}

std::string http_date(std::time_t t) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  std::array<char, 64> buf{};
  // strftime's %a and %b follow the locale; the program never sets one
  // (the "C" locale is what HTTP dates are spelled in).
  const std::size_t n = std::strftime(buf.data(), buf.size(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return std::string(buf.data(), n);
}

std::optional<std::time_t> parse_http_date(std::string_view s) {
  const std::string text(s);  // strptime wants a terminated string
  std::tm tm{};
  const char* end = ::strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return ::timegm(&tm);
}

byte_range parse_range(std::string_view h, std::uint64_t size) {
  constexpr std::string_view unit = "bytes=";
  if (h.size() < unit.size() || ::strncasecmp(h.data(), unit.data(), unit.size()) != 0 ||
      h.find(',') != std::string_view::npos) {
    return {};
  }
  h.remove_prefix(unit.size());
  byte_range r{byte_range::unsatisfiable};
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  if (!h.empty() && h[0] == '-') {  // "-N": the last N bytes
    h.remove_prefix(1);
    if (!take_number(h, b) || !h.empty() || b == 0 || size == 0) return r;
    r.first = b >= size ? 0 : size - b;
    r.last = size - 1;
  } else {  // "A-B" or "A-"
    if (!take_number(h, a) || h.empty() || h[0] != '-') return r;
    h.remove_prefix(1);
    if (h.empty()) {
      b = size - 1;
    } else if (!take_number(h, b) || !h.empty() || b < a) {
      return r;
    }
    if (a >= size) return r;
    r.first = a;
    r.last = b >= size ? size - 1 : b;
  }
  r.what = byte_range::partial;
  return r;
}

}  // namespace httpd::detail
