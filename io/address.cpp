// spindle::address. Every address is kept in a canonical form (see
// address::canonicalize) so that operator== and hash() can look at the
// bytes that name the endpoint and nothing else.
#include "io/address.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <ostream>
#include <stdexcept>

namespace spindle {

namespace {

// Where sun_path starts in a sockaddr_un: a length of exactly this names
// an unnamed socket.
constexpr socklen_t unix_path_offset = offsetof(sockaddr_un, sun_path);

// The text of an IP literal, NUL-terminated for inet_pton(). Big enough
// for any IPv6 text form (an IPv4-mapped tail included).
constexpr std::size_t ip_text_capacity = INET6_ADDRSTRLEN;

bool is_digits(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Copies `s` into `buf` with a terminating NUL; false if it does not fit
// or holds a NUL of its own (which would cut the text short).
bool to_c_string(std::string_view s, char* buf, std::size_t capacity) noexcept {
  if (s.size() >= capacity || s.find('\0') != std::string_view::npos) return false;
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  return true;
}

// The interface index of an IPv6 scope: a number, or an interface name.
std::optional<std::uint32_t> parse_scope(std::string_view zone) {
  if (is_digits(zone)) {
    std::uint64_t v = 0;
    for (char c : zone) {
      v = v * 10 + static_cast<std::uint64_t>(c - '0');
      if (v > UINT32_MAX) return std::nullopt;
    }
    return static_cast<std::uint32_t>(v);
  }
  char name[IF_NAMESIZE];
  if (zone.empty() || !to_c_string(zone, name, sizeof name)) return std::nullopt;
  const unsigned index = ::if_nametoindex(name);
  if (index == 0) return std::nullopt;
  return index;
}

// A Unix address from text: a path, or "@name" for an abstract one.
std::optional<address> parse_unix(std::string_view path) {
  const bool abstract = !path.empty() && path.front() == '@';
  const std::string_view name = abstract ? path.substr(1) : path;
  if (name.empty() || name.size() > address::max_unix_path) return std::nullopt;
  // A NUL would end a pathname early; an abstract name is raw bytes.
  if (!abstract && name.find('\0') != std::string_view::npos) return std::nullopt;
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  // Abstract: a leading NUL, then the name; the length ends it. Pathname:
  // the path and its NUL (sun is zeroed).
  std::memcpy(sun.sun_path + (abstract ? 1 : 0), name.data(), name.size());
  const auto len = static_cast<socklen_t>(unix_path_offset + 1 + name.size());
  return address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sun), len);
}

// The interface name of a scope id, or its number when it has none.
std::string scope_text(std::uint32_t scope) {
  char name[IF_NAMESIZE];
  if (::if_indextoname(scope, name) != nullptr) return name;
  return std::to_string(scope);
}

}  // namespace

namespace detail {

std::optional<std::uint16_t> parse_port(std::string_view text) noexcept {
  if (!is_digits(text)) return std::nullopt;
  std::uint32_t v = 0;
  for (char c : text) {
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
    if (v > UINT16_MAX) return std::nullopt;  // also stops any overflow
  }
  return static_cast<std::uint16_t>(v);
}

std::optional<address> parse_ip(std::string_view ip, std::uint16_t port) {
  char text[ip_text_capacity];
  const std::size_t percent = ip.find('%');
  if (percent == std::string_view::npos && to_c_string(ip, text, sizeof text)) {
    sockaddr_in sin{};
    if (::inet_pton(AF_INET, text, &sin.sin_addr) == 1) {
      sin.sin_family = AF_INET;
      sin.sin_port = htons(port);
      return address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin), sizeof sin);
    }
  }
  sockaddr_in6 sin6{};
  if (!to_c_string(ip.substr(0, percent), text, sizeof text) ||
      ::inet_pton(AF_INET6, text, &sin6.sin6_addr) != 1) {
    return std::nullopt;
  }
  if (percent != std::string_view::npos) {
    const std::optional<std::uint32_t> scope = parse_scope(ip.substr(percent + 1));
    if (!scope) return std::nullopt;
    sin6.sin6_scope_id = *scope;
  }
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(port);
  return address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin6), sizeof sin6);
}

bool split_host_port(std::string_view text, std::string_view& host, std::string_view& port,
                     bool& bracketed) noexcept {
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return false;
    host = text.substr(1, close - 1);
    if (host.find('[') != std::string_view::npos) return false;
    rest = text.substr(close + 1);
    bracketed = true;
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return false;
    host = text.substr(0, colon);
    if (host.find_first_of(":[]") != std::string_view::npos) return false;
    rest = text.substr(colon);
    bracketed = false;
  }
  if (rest.empty() || rest.front() != ':') return false;  // no port
  port = rest.substr(1);
  return true;
}

}  // namespace detail

address address::from_sockaddr(const sockaddr* sa, socklen_t len) {
  address a;
  if (len > capacity()) {
    throw std::invalid_argument("spindle::address: sockaddr length " + std::to_string(len) +
                                " exceeds sockaddr_storage");
  }
  if (len > 0) {
    if (sa == nullptr) throw std::invalid_argument("spindle::address: null sockaddr");
    std::memcpy(&a.storage_, sa, len);
  }
  a.canonicalize(len);
  return a;
}

void address::set_size(socklen_t len) { canonicalize(len); }

void address::canonicalize(socklen_t len) {
  auto* bytes = reinterpret_cast<unsigned char*>(&storage_);
  auto fail = [&](const char* what) {
    std::memset(bytes, 0, sizeof storage_);
    size_ = 0;
    throw std::invalid_argument(std::string("spindle::address: ") + what);
  };
  if (len > capacity()) fail("length exceeds sockaddr_storage");
  // What the kernel did not write may hold an older address.
  std::memset(bytes + len, 0, sizeof storage_ - len);
  if (len == 0) {
    size_ = 0;
    return;
  }
  if (len < sizeof(sa_family_t)) fail("length shorter than sa_family_t");
  switch (storage_.ss_family) {
    case AF_UNSPEC:
      std::memset(bytes, 0, sizeof storage_);
      size_ = 0;
      return;
    case AF_INET: {
      if (len < sizeof(sockaddr_in)) fail("AF_INET length shorter than sockaddr_in");
      auto* sin = reinterpret_cast<sockaddr_in*>(&storage_);
      std::memset(sin->sin_zero, 0, sizeof sin->sin_zero);
      std::memset(bytes + sizeof(sockaddr_in), 0, sizeof storage_ - sizeof(sockaddr_in));
      size_ = sizeof(sockaddr_in);
      return;
    }
    case AF_INET6:
      if (len < sizeof(sockaddr_in6)) fail("AF_INET6 length shorter than sockaddr_in6");
      std::memset(bytes + sizeof(sockaddr_in6), 0, sizeof storage_ - sizeof(sockaddr_in6));
      size_ = sizeof(sockaddr_in6);
      return;
    case AF_UNIX: {
      if (len > sizeof(sockaddr_un)) fail("AF_UNIX length exceeds sockaddr_un");
      if (len <= unix_path_offset) {  // unnamed
        size_ = len;
        return;
      }
      const auto* sun = reinterpret_cast<const sockaddr_un*>(&storage_);
      if (sun->sun_path[0] == '\0') {  // abstract: the length ends the name
        size_ = len;
        return;
      }
      // Pathname: the path ends at the first NUL; the kernel may or may
      // not count it, and may pad past it.
      const std::size_t n = ::strnlen(sun->sun_path, len - unix_path_offset);
      std::memset(bytes + unix_path_offset + n, 0, sizeof storage_ - unix_path_offset - n);
      size_ = static_cast<socklen_t>(std::min(unix_path_offset + n + 1, sizeof(sockaddr_un)));
      return;
    }
    default:
      fail("unsupported address family");
  }
}

std::optional<address> address::parse(std::string_view text) {
  constexpr std::string_view unix_prefix = "unix:";
  if (text.starts_with(unix_prefix)) return parse_unix(text.substr(unix_prefix.size()));
  if (!text.empty() && (text.front() == '/' || text.front() == '@')) return parse_unix(text);

  std::string_view host, port_text;
  bool bracketed = false;
  if (!detail::split_host_port(text, host, port_text, bracketed)) return std::nullopt;
  const std::optional<std::uint16_t> port = detail::parse_port(port_text);
  if (!port) return std::nullopt;
  std::optional<address> a = detail::parse_ip(host, *port);
  // IPv6 only in brackets, IPv4 only without.
  if (!a || a->is_ipv6() != bracketed) return std::nullopt;
  return a;
}

namespace {
// An IP address of `family` (AF_INET, AF_INET6), or invalid_argument
// naming `what` (the call) and `kind`.
address ip_of_family(std::string_view ip, std::uint16_t port, int family, const char* what,
                     const char* kind) {
  std::optional<address> a = detail::parse_ip(ip, port);
  if (!a || a->family() != family) {
    throw std::invalid_argument(std::string(what) + ": not an " + kind + " address: \"" +
                                std::string(ip) + "\"");
  }
  return *a;
}
}  // namespace

address address::ipv4(std::string_view ip, std::uint16_t port) {
  return ip_of_family(ip, port, AF_INET, "spindle::address::ipv4", "IPv4");
}

address address::ipv6(std::string_view ip, std::uint16_t port) {
  return ip_of_family(ip, port, AF_INET6, "spindle::address::ipv6", "IPv6");
}

address address::unix_socket(std::string_view path) {
  std::optional<address> a = parse_unix(path);
  if (!a) {
    throw std::invalid_argument(
        "spindle::address::unix_socket: empty, longer than " + std::to_string(max_unix_path) +
        " bytes, or holding a NUL: \"" + std::string(path) + "\"");
  }
  return *a;
}

bool address::is_abstract() const noexcept {
  return is_unix() && size_ > unix_path_offset &&
         reinterpret_cast<const sockaddr_un*>(&storage_)->sun_path[0] == '\0';
}

std::uint16_t address::port() const noexcept {
  switch (family()) {
    case AF_INET:
      return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
    case AF_INET6:
      return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
    default:
      return 0;
  }
}

void address::set_port(std::uint16_t port) {
  switch (family()) {
    case AF_INET:
      reinterpret_cast<sockaddr_in*>(&storage_)->sin_port = htons(port);
      return;
    case AF_INET6:
      reinterpret_cast<sockaddr_in6*>(&storage_)->sin6_port = htons(port);
      return;
    default:
      throw std::invalid_argument("spindle::address::set_port: not an IP address");
  }
}

std::string address::ip() const {
  char text[ip_text_capacity];
  switch (family()) {
    case AF_INET:
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, text,
                  sizeof text);
      return text;
    case AF_INET6: {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
      ::inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof text);
      std::string s = text;
      if (sin6->sin6_scope_id != 0) s += '%' + scope_text(sin6->sin6_scope_id);
      return s;
    }
    default:
      return {};
  }
}

std::string address::path() const {
  if (!is_unix() || size_ <= unix_path_offset || is_abstract()) return {};
  const auto* sun = reinterpret_cast<const sockaddr_un*>(&storage_);
  return std::string(sun->sun_path, ::strnlen(sun->sun_path, sizeof sun->sun_path));
}

std::string address::to_string() const {
  switch (family()) {
    case AF_INET:
      return ip() + ':' + std::to_string(port());
    case AF_INET6:
      return '[' + ip() + "]:" + std::to_string(port());
    case AF_UNIX: {
      if (is_abstract()) {
        const auto* sun = reinterpret_cast<const sockaddr_un*>(&storage_);
        return '@' + std::string(sun->sun_path + 1, size_ - unix_path_offset - 1);
      }
      std::string p = path();
      // A relative path needs the prefix for parse() to read it back.
      if (!p.empty() && p.front() != '/') p.insert(0, "unix:");
      return p;
    }
    default:
      return {};
  }
}

namespace {
// The first byte of every IPv4 loopback address: 127.0.0.0/8 (RFC 1122).
constexpr std::uint32_t ipv4_loopback_net = 127;
}  // namespace

bool address::is_loopback() const noexcept {
  switch (family()) {
    case AF_INET:
      return (ntohl(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr.s_addr) >> 24) ==
             ipv4_loopback_net;
    case AF_INET6: {
      const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr;
      return IN6_IS_ADDR_LOOPBACK(&a) || (IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == ipv4_loopback_net);
    }
    default:
      return false;
  }
}

bool operator==(const address& a, const address& b) noexcept {
  if (a.family() != b.family() || a.size_ != b.size_) return false;
  switch (a.family()) {
    case AF_INET6: {
      // Not the whole structure: sin6_flowinfo is not part of the name.
      const auto* x = reinterpret_cast<const sockaddr_in6*>(&a.storage_);
      const auto* y = reinterpret_cast<const sockaddr_in6*>(&b.storage_);
      return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
             std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    default:
      // Canonical form: equal endpoints have equal bytes up to size_.
      return std::memcmp(&a.storage_, &b.storage_, a.size_) == 0;
  }
}

std::size_t address::hash() const noexcept {
  if (is_ipv6()) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
    // The fields operator== compares, packed.
    char key[sizeof sin6->sin6_addr + sizeof sin6->sin6_port + sizeof sin6->sin6_scope_id];
    std::memcpy(key, &sin6->sin6_addr, sizeof sin6->sin6_addr);
    std::memcpy(key + sizeof sin6->sin6_addr, &sin6->sin6_port, sizeof sin6->sin6_port);
    std::memcpy(key + sizeof sin6->sin6_addr + sizeof sin6->sin6_port, &sin6->sin6_scope_id,
                sizeof sin6->sin6_scope_id);
    return std::hash<std::string_view>{}(std::string_view(key, sizeof key));
  }
  return std::hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(&storage_), size_));
}

std::ostream& operator<<(std::ostream& os, const address& a) { return os << a.to_string(); }

}  // namespace spindle
