// spindle::address: a socket address (IPv4, IPv6 or Unix-domain) as a
// value.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

namespace spindle {

// address holds one socket address, as bind(), connect(), accept() and
// recvfrom() take and fill it in: a sockaddr_storage and its length.
// Unlike a bare sockaddr_storage it is a regular value type: it is
// compared, hashed and printed by what it names (the family, the IP, the
// port and the IPv6 scope; the path of a Unix socket), never by padding or
// by stale bytes past its length. The families are AF_INET, AF_INET6 and
// AF_UNIX (a pathname, a Linux abstract name, or the unnamed address of an
// unbound socket); a default-constructed address is empty (AF_UNSPEC).
//
//   auto a = spindle::address::parse("[::1]:8080");    // numeric forms only
//   auto b = spindle::address::ipv4("10.0.0.1", 80);
//   auto c = spindle::address::unix_socket("@my-service");  // abstract
//   ::connect(fd, b.data(), b.size());
//   std::cout << *a << '\n';                           // [::1]:8080
//
// Host names are not looked up here: that is spindle::resolve() (io/dns.h).
// An address touches no shared state; any thread.
class address {
 public:
  // address() is the empty address: family() is AF_UNSPEC and size() 0.
  address() noexcept = default;

  // from_sockaddr() copies what the kernel (or getaddrinfo) handed back.
  // `len` must cover the whole structure of the family: at least
  // sizeof(sockaddr_in) for AF_INET, sizeof(sockaddr_in6) for AF_INET6,
  // and at least sizeof(sa_family_t) (an unnamed socket) and at most
  // sizeof(sockaddr_un) for AF_UNIX. A len of 0 gives the empty address
  // (sa may then be null). Throws std::invalid_argument on a bad length or
  // another family.
  static address from_sockaddr(const sockaddr* sa, socklen_t len);

  // parse() reads the numeric text forms, and returns nullopt for
  // anything else (a host name included):
  //
  //   "1.2.3.4:80"          IPv4 (dotted quad) and a port, 0-65535
  //   "[::1]:80"            IPv6 in brackets and a port
  //   "[fe80::1%eth0]:80"   with a scope, by interface name or number
  //   "/run/app.sock"       a Unix socket by absolute path
  //   "@name"               a Linux abstract Unix socket
  //   "unix:rel/app.sock"   "unix:" and any path ("unix:@name": abstract)
  //
  // A Unix path (or abstract name) may have at most max_unix_path bytes;
  // a path may not contain a NUL byte. A scope by name is looked up with
  // if_nametoindex() (one quick syscall, no blocking).
  static std::optional<address> parse(std::string_view text);

  // ipv4() is the address of an IPv4 literal ("1.2.3.4") and a port;
  // ipv6() of an IPv6 literal without brackets ("::1", "fe80::1%eth0").
  // unix_socket() is a Unix socket by path, or by abstract name when
  // `path` starts with '@' (as in parse()). Each throws
  // std::invalid_argument on bad input, a path too long for sun_path
  // included (it is never truncated). (Not named unix(): `unix` is a
  // predefined macro under GNU dialects such as -std=gnu++20.)
  static address ipv4(std::string_view ip, std::uint16_t port);
  static address ipv6(std::string_view ip, std::uint16_t port);
  static address unix_socket(std::string_view path);

  // The longest Unix path or abstract name (without the '@'): sun_path
  // less one byte, kept for the path's terminating NUL (or the abstract
  // name's leading one).
  static constexpr std::size_t max_unix_path = sizeof(sockaddr_un::sun_path) - 1;

  // data() and size() are what bind(), connect() and sendto() take.
  const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t size() const noexcept { return size_; }

  // For the calls that fill an address in (accept(), recvfrom(),
  // getsockname()): pass data_mut() and a length of capacity(), then
  // set_size() with the length the kernel returned.
  //
  //   spindle::address peer;
  //   socklen_t len = spindle::address::capacity();
  //   int conn = ::accept(fd, peer.data_mut(), &len);
  //   peer.set_size(len);
  //
  // set_size() validates as from_sockaddr() does and clears what lies
  // past `len`; on a bad length (or family) it leaves the address empty
  // and throws std::invalid_argument.
  sockaddr* data_mut() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
  static constexpr socklen_t capacity() noexcept { return sizeof(sockaddr_storage); }
  void set_size(socklen_t len);

  // family() is AF_INET, AF_INET6, AF_UNIX, or AF_UNSPEC when empty.
  int family() const noexcept { return storage_.ss_family; }
  bool empty() const noexcept { return family() == AF_UNSPEC; }
  bool is_ipv4() const noexcept { return family() == AF_INET; }
  bool is_ipv6() const noexcept { return family() == AF_INET6; }
  bool is_unix() const noexcept { return family() == AF_UNIX; }
  // is_abstract() is true for a Linux abstract Unix socket ("@name").
  bool is_abstract() const noexcept;

  // port() is the port of an IP address in host byte order (0 for a Unix
  // or empty address). set_port() changes it; on an address that is not
  // IPv4 or IPv6 it throws std::invalid_argument.
  std::uint16_t port() const noexcept;
  void set_port(std::uint16_t port);

  // ip() is the text of the IP without the port ("1.2.3.4", "::1",
  // "fe80::1%eth0"); "" for a Unix or empty address.
  std::string ip() const;

  // path() is the path of a Unix pathname socket; "" for anything else
  // (an abstract or unnamed Unix socket included). It is what to unlink()
  // after closing a listener.
  std::string path() const;

  // to_string() is the text form that parse() reads back: "1.2.3.4:80",
  // "[::1]:80", "[fe80::1%eth0]:80" (the scope by interface name when it
  // has one, else by number), "/abs/path", "unix:rel/path", "@abstract".
  // An empty address and an unnamed Unix socket give "".
  std::string to_string() const;

  // is_loopback() is true for 127.0.0.0/8, ::1, and ::ffff:127.0.0.0/104
  // (IPv4 loopback mapped to IPv6).
  bool is_loopback() const noexcept;

  // Two addresses are equal when they have the same family and name the
  // same endpoint: IP, port and (IPv6) scope id; or the same Unix path or
  // abstract name. The IPv6 flow info and any padding are ignored. An IPv4
  // address never equals its IPv4-mapped IPv6 form.
  friend bool operator==(const address& a, const address& b) noexcept;

  // hash() agrees with operator== (std::hash<address> calls it).
  std::size_t hash() const noexcept;

 private:
  // Checks the first `len` bytes of storage_ as from_sockaddr() describes,
  // and brings them to the canonical form operator== and hash() rely on:
  //   - every byte of storage_ past size_ is zero (so is sin_zero);
  //   - size_ is sizeof(sockaddr_in) / sizeof(sockaddr_in6) for IP;
  //   - for a Unix pathname, size_ covers the path and its terminating NUL
  //     (when sun_path has room for it), whatever length the kernel gave.
  // Throws std::invalid_argument (storage_ is then left empty).
  void canonicalize(socklen_t len);

  sockaddr_storage storage_{};
  socklen_t size_ = 0;  // 0 exactly when empty
};

// Writes to_string().
std::ostream& operator<<(std::ostream& os, const address& a);

namespace detail {

// parse_port() reads a decimal port: digits only, 0-65535.
std::optional<std::uint16_t> parse_port(std::string_view text) noexcept;

// parse_ip() is the address of an IPv4 or IPv6 literal (unbracketed, with
// an optional "%scope" on IPv6) and a port; nullopt if `ip` is not one.
std::optional<address> parse_ip(std::string_view ip, std::uint16_t port);

// split_host_port() splits "host:port" or "[host]:port" (the host may be
// empty, the port is returned as text). False when there is no port, or
// when an unbracketed host has a ':' (an IPv6 literal needs brackets).
// `bracketed` tells which form it was.
bool split_host_port(std::string_view text, std::string_view& host, std::string_view& port,
                     bool& bracketed) noexcept;

}  // namespace detail

}  // namespace spindle

template <>
struct std::hash<spindle::address> {
  std::size_t operator()(const spindle::address& a) const noexcept { return a.hash(); }
};
