#include "samples/chat/irc.h"

namespace chat::irc {

bool parse(std::string_view line, message& out) {
  out.command.clear();
  out.params.clear();
  auto skip_spaces = [&] {
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
  };
  auto take_word = [&] {
    const std::size_t end = line.find(' ');
    std::string_view word = line.substr(0, end);
    line.remove_prefix(end == std::string_view::npos ? line.size() : end);
    return word;
  };
  skip_spaces();
  if (!line.empty() && line.front() == '@') {  // tags
    take_word();
    skip_spaces();
  }
  if (!line.empty() && line.front() == ':') {  // prefix
    take_word();
    skip_spaces();
  }
  const std::string_view command = take_word();
  if (command.empty()) return false;
  out.command.reserve(command.size());
  for (char c : command) out.command += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
  for (;;) {
    skip_spaces();
    if (line.empty()) break;
    if (line.front() == ':' || out.params.size() == max_params - 1) {
      // The trailing parameter: the rest of the line, spaces and all.
      if (line.front() == ':') line.remove_prefix(1);
      out.params.emplace_back(line);
      break;
    }
    out.params.emplace_back(take_word());
  }
  return true;
}

bool is_valid_nick(std::string_view nick) noexcept {
  if (nick.empty() || nick.size() > max_nick) return false;
  auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  auto special = [](char c) {
    switch (c) {
      case '[': case ']': case '\\': case '`': case '_': case '^': case '{': case '|': case '}':
        return true;
      default:
        return false;
    }
  };
  if (!letter(nick[0]) && !special(nick[0])) return false;
  for (char c : nick) {
    if (!letter(c) && !special(c) && !(c >= '0' && c <= '9') && c != '-') return false;
  }
  return true;
}

bool is_valid_channel(std::string_view name) noexcept {
  if (name.size() < 2 || name.size() > max_channel || name[0] != '#') return false;
  for (char c : name) {
    switch (c) {
      case '\0': case '\a': case '\r': case '\n': case ' ': case ',': case ':':
        return false;
      default:
        break;
    }
  }
  return true;
}

std::string fold(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c + 32);
    } else if (c == '[') {
      c = '{';
    } else if (c == ']') {
      c = '}';
    } else if (c == '\\') {
      c = '|';
    } else if (c == '~') {
      c = '^';
    }
  }
  return out;
}

std::vector<std::string_view> split_list(std::string_view list) {
  std::vector<std::string_view> out;
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    if (!item.empty()) out.push_back(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace chat::irc
