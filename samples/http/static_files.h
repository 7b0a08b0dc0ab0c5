// The pure parts of serving static files (samples/http/server.h): decoding
// a request's path, Content-Type by extension, HTTP dates and Range. No I/O.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace httpd::detail {

// decode_path() percent-decodes the path of a request target ("/a%20b"),
// and refuses what could leave the root: a ".." segment (spelled out or
// percent-encoded, "%2e%2e"; a "%2f" decodes to a '/' first, so
// "..%2f" is one too), a NUL, a bad escape. nullopt then (400).
std::optional<std::string> decode_path(std::string_view path);

// content_type() is the Content-Type for a file name, by its extension;
// application/octet-stream for one not in the table.
std::string_view content_type(std::string_view name);

// http_date() is `t` as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT");
// parse_http_date() reads one back (nullopt if it is not one).
std::string http_date(std::time_t t);
std::optional<std::time_t> parse_http_date(std::string_view s);

// A Range header against a file of `size` bytes, as nginx reads it: a
// header that does not start with "bytes=" or asks for several ranges is
// ignored (whole: 200 with the whole file); one that does not parse, or
// whose one range starts at or past the end, is unsatisfiable (416);
// otherwise partial, [first, last] clamped to the file (206).
struct byte_range {
  enum kind { whole, partial, unsatisfiable } what = whole;
  std::uint64_t first = 0;
  std::uint64_t last = 0;  // inclusive
};
byte_range parse_range(std::string_view header, std::uint64_t size);

}  // namespace httpd::detail
