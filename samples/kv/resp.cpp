// The RESP2 parser and reply writers (resp.h). Parsing follows Redis 7's
// networking.c (processMultibulkBuffer, processInlineBuffer, and
// sdssplitargs for inline commands), errors worded as it words them.
#include "samples/kv/resp.h"

#include <cctype>
#include <charconv>
#include <limits>

namespace kv {
namespace {

// The end of the line that starts at `pos` (the offset of its '\r'), or
// npos if the line and its "\r\n" have not all arrived. As Redis does, the
// byte after '\r' is taken to be '\n' without looking.
std::size_t line_end(std::string_view buf, std::size_t pos) {
  const std::size_t cr = buf.find('\r', pos);
  if (cr == std::string_view::npos || cr + 1 >= buf.size()) return std::string_view::npos;
  return cr;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// split_args() splits an inline command line as Redis's sdssplitargs
// does: words separated by spaces, "double quotes" with C escapes
// (\n \r \t \b \a \\ \" \xHH) and 'single quotes' (\' only). False for
// unbalanced quotes, or a closing quote not followed by a space.
bool split_args(std::string_view line, std::vector<std::string>& args) {
  std::size_t i = 0;
  const auto at = [&](std::size_t k) { return k < line.size() ? line[k] : '\0'; };
  for (;;) {
    while (i < line.size() && is_space(line[i])) ++i;
    if (i >= line.size()) return true;
    std::string word;
    bool in_double = false, in_single = false, done = false;
    while (!done) {
      const char c = at(i);
      if (in_double) {
        if (c == '\\' && at(i + 1) == 'x' && hex_value(at(i + 2)) >= 0 && hex_value(at(i + 3)) >= 0) {
          word += static_cast<char>(hex_value(at(i + 2)) * 16 + hex_value(at(i + 3)));
          i += 3;
        } else if (c == '\\' && i + 1 < line.size()) {
          ++i;
          switch (line[i]) {
            case 'n': word += '\n'; break;
            case 'r': word += '\r'; break;
            case 't': word += '\t'; break;
            case 'b': word += '\b'; break;
            case 'a': word += '\a'; break;
            default: word += line[i]; break;
          }
        } else if (c == '"') {
          if (i + 1 < line.size() && !is_space(line[i + 1])) return false;
          done = true;
        } else if (i >= line.size()) {
          return false;
        } else {
          word += c;
        }
      } else if (in_single) {
        if (c == '\\' && at(i + 1) == '\'') {
          ++i;
          word += '\'';
        } else if (c == '\'') {
          if (i + 1 < line.size() && !is_space(line[i + 1])) return false;
          done = true;
        } else if (i >= line.size()) {
          return false;
        } else {
          word += c;
        }
      } else if (i >= line.size() || c == ' ' || c == '\n' || c == '\r' || c == '\t') {
        done = true;
      } else if (c == '"') {
        in_double = true;
      } else if (c == '\'') {
        in_single = true;
      } else {
        word += c;
      }
      if (i < line.size()) ++i;
    }
    args.push_back(std::move(word));
  }
}

}  // namespace

std::optional<std::int64_t> parse_int64(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  const std::size_t digits = s[0] == '-' ? 1 : 0;
  // string2ll: no leading zeros, and no "-0".
  if (s.size() == digits || (s[digits] == '0' && s.size() > 1)) return std::nullopt;
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

request_parser::status request_parser::parse(std::string_view buf, std::size_t& pos,
                                             std::vector<std::string>& args, std::string& error) {
  for (;;) {
    if (args_left_ == 0) {
      args.clear();
      if (pos >= buf.size()) return status::incomplete;
    }
    const status st = args_left_ > 0 || buf[pos] == '*' ? parse_multibulk(buf, pos, args, error)
                                                        : parse_inline(buf, pos, args, error);
    if (st != status::command || !args.empty()) return st;
    // An empty command: on to the next.
  }
}

request_parser::status request_parser::parse_inline(std::string_view buf, std::size_t& pos,
                                                    std::vector<std::string>& args,
                                                    std::string& error) {
  const std::size_t lf = buf.find('\n', pos);
  if (lf == std::string_view::npos) {
    if (buf.size() - pos > limits_.max_inline) {
      error = "ERR Protocol error: too big inline request";
      return status::error;
    }
    return status::incomplete;
  }
  std::string_view line = buf.substr(pos, lf - pos);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!split_args(line, args)) {
    error = "ERR Protocol error: unbalanced quotes in request";
    return status::error;
  }
  pos = lf + 1;
  return status::command;
}

request_parser::status request_parser::parse_multibulk(std::string_view buf, std::size_t& pos,
                                                       std::vector<std::string>& args,
                                                       std::string& error) {
  if (args_left_ == 0) {  // the "*N" line
    const std::size_t cr = line_end(buf, pos);
    if (cr == std::string_view::npos) {
      if (buf.size() - pos > limits_.max_inline) {
        error = "ERR Protocol error: too big mbulk count string";
        return status::error;
      }
      return status::incomplete;
    }
    const std::optional<std::int64_t> n = parse_int64(buf.substr(pos + 1, cr - pos - 1));
    if (!n || *n > limits_.max_args) {
      error = "ERR Protocol error: invalid multibulk length";
      return status::error;
    }
    pos = cr + 2;
    if (*n <= 0) return status::command;  // empty: parse() skips it
    args_left_ = *n;
  }
  while (args_left_ > 0) {  // "$N" lines, each followed by N bytes and "\r\n"
    const std::size_t cr = line_end(buf, pos);
    if (cr == std::string_view::npos) {
      if (buf.size() - pos > limits_.max_inline) {
        error = "ERR Protocol error: too big bulk count string";
        return status::error;
      }
      return status::incomplete;
    }
    if (buf[pos] != '$') {
      error = std::string("ERR Protocol error: expected '$', got '") + buf[pos] + "'";
      return status::error;
    }
    const std::optional<std::int64_t> len = parse_int64(buf.substr(pos + 1, cr - pos - 1));
    if (!len || *len < 0 || *len > limits_.max_bulk) {
      error = "ERR Protocol error: invalid bulk length";
      return status::error;
    }
    const std::size_t data = cr + 2;
    // As Redis does, the two bytes after the data are skipped unread.
    if (buf.size() - data < static_cast<std::size_t>(*len) + 2) return status::incomplete;
    args.emplace_back(buf.substr(data, static_cast<std::size_t>(*len)));
    pos = data + static_cast<std::size_t>(*len) + 2;
    --args_left_;
  }
  return status::command;
}

void reply_simple(std::string& out, std::string_view s) {
  out += '+';
  out += s;
  out += "\r\n";
}

void reply_error(std::string& out, std::string_view s) {
  out += '-';
  out += s;
  out += "\r\n";
}

namespace {
void append_number(std::string& out, char type, std::int64_t n) {
  char buf[24];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  out += type;
  out.append(buf, end);
  out += "\r\n";
}
}  // namespace

void reply_int(std::string& out, std::int64_t n) { append_number(out, ':', n); }

void reply_bulk(std::string& out, std::string_view s) {
  append_number(out, '$', static_cast<std::int64_t>(s.size()));
  out += s;
  out += "\r\n";
}

void reply_nil(std::string& out) { out += "$-1\r\n"; }
void reply_nil_array(std::string& out) { out += "*-1\r\n"; }
void reply_array(std::string& out, std::size_t n) {
  append_number(out, '*', static_cast<std::int64_t>(n));
}

}  // namespace kv
