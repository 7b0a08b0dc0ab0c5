// The IRC wire format, as the chat server speaks it (RFC 1459, RFC 2812):
// parsing a client's line into a message, the rules for nicknames and
// channel names, and the RFC 1459 case mapping under which "Nick[1]" and
// "nick{1}" are the same name.
#pragma once

#include <charconv>
#include <concepts>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace chat::irc {

// The longest line, CR LF included (RFC 1459 2.3).
inline constexpr std::size_t max_line = 512;
// The most parameters a message has (RFC 2812 2.3.1: 14 middles and a
// trailing one).
inline constexpr std::size_t max_params = 15;
inline constexpr std::size_t max_nick = 30;
inline constexpr std::size_t max_channel = 50;

// One message from a client: `command` upper-cased, `params` with the
// trailing parameter (after " :") last. A prefix, which clients should
// not send, and IRCv3 message tags ("@..."), which we never negotiate, are
// dropped.
struct message {
  std::string command;
  std::vector<std::string> params;
};

// parse() splits one line (without its CR LF) into a message. False for a
// line with no command (empty, only spaces, only a prefix).
bool parse(std::string_view line, message& out);

// is_valid_nick(): 1 to max_nick characters of letters, digits and
// []\`_^{|}-, not starting with a digit or '-'.
bool is_valid_nick(std::string_view nick) noexcept;

// is_valid_channel(): '#' and then up to max_channel - 1 characters, none
// of them NUL, BEL, CR, LF, space, comma or colon.
bool is_valid_channel(std::string_view name) noexcept;

// fold() is the name under RFC 1459 case mapping: A-Z as a-z, and []\~
// as {}|^ (the Scandinavian upper/lower case of the protocol's origin).
std::string fold(std::string_view name);

// split_list() splits a comma-separated parameter ("#a,#b"), leaving out
// empty items.
std::vector<std::string_view> split_list(std::string_view list);

// cat() concatenates strings and integers into one string (Debian's
// abseil does not take std::string_view in absl::StrCat).
namespace detail {
inline void append(std::string& out, std::string_view s) { out.append(s); }
inline void append(std::string& out, char c) { out.push_back(c); }
template <std::integral I>
  requires(!std::same_as<I, char> && !std::same_as<I, bool>)
void append(std::string& out, I value) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, r.ptr);
}
inline std::size_t length(std::string_view s) { return s.size(); }
inline std::size_t length(char) { return 1; }
template <std::integral I>
std::size_t length(I) { return 20; }
}  // namespace detail

template <class... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  out.reserve((detail::length(parts) + ... + 0));
  (detail::append(out, parts), ...);
  return out;
}

}  // namespace chat::irc
