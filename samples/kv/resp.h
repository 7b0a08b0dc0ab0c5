// RESP2, the Redis serialization protocol, as kv_server speaks it: a
// parser of requests (multibulk "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n" and
// inline "GET k\r\n") and the writers of replies, which append to one
// output buffer so that a batch of pipelined replies goes out in one
// write. https://redis.io/docs/reference/protocol-spec/
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kv {

// The protocol's limits, with Redis 7's defaults.
struct protocol_limits {
  // Bytes in one bulk argument (Redis's proto-max-bulk-len).
  std::int64_t max_bulk = 512LL * 1024 * 1024;
  // Arguments in one multibulk command.
  std::int64_t max_args = 1024 * 1024;
  // Bytes in an inline command, or in a "*N" / "$N" line, without its end
  // (Redis's PROTO_INLINE_MAX_SIZE).
  std::size_t max_inline = 64 * 1024;
};

// request_parser takes commands one at a time out of the bytes a client
// sent. It keeps the state of a multibulk command whose arguments have
// only partly arrived, so a command of many arguments is parsed once, not
// again on each read.
//
//   request_parser p(limits);
//   std::size_t pos = 0;
//   while (p.parse(buf, pos, args, error) == request_parser::status::command) run(args);
//   buf.erase(0, pos);   // what is left is the start of the next command
class request_parser {
 public:
  enum class status {
    command,     // `args` holds a command (never empty), `pos` is past it
    incomplete,  // more bytes are needed; `pos` is past what was consumed
    error,       // a protocol error: `error` is the reply; close the connection
  };

  explicit request_parser(const protocol_limits& limits) : limits_(limits) {}

  // parse() parses from buf[pos] on. Empty commands ("*0", an empty inline
  // line) are skipped, as Redis skips them.
  status parse(std::string_view buf, std::size_t& pos, std::vector<std::string>& args,
               std::string& error);

 private:
  status parse_inline(std::string_view buf, std::size_t& pos, std::vector<std::string>& args,
                      std::string& error);
  status parse_multibulk(std::string_view buf, std::size_t& pos, std::vector<std::string>& args,
                         std::string& error);

  const protocol_limits limits_;
  // Arguments still to come of the multibulk command being parsed; 0
  // between commands. Its arguments so far are in parse()'s `args`.
  std::int64_t args_left_ = 0;
};

// parse_int64() is `s` as Redis's string2ll reads it: an optional '-' and
// decimal digits, without a '+', spaces or leading zeros; nullopt if it is
// not one or is out of range.
std::optional<std::int64_t> parse_int64(std::string_view s);

// ---- Replies, appended to `out` ----
void reply_simple(std::string& out, std::string_view s);  // +OK
void reply_error(std::string& out, std::string_view s);   // -ERR ... (`s` without the '-')
void reply_int(std::string& out, std::int64_t n);         // :42
void reply_bulk(std::string& out, std::string_view s);    // $3 abc
void reply_nil(std::string& out);                         // $-1
void reply_nil_array(std::string& out);                   // *-1
void reply_array(std::string& out, std::size_t n);        // *n, then n replies

}  // namespace kv
