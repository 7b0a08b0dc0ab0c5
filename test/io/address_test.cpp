#include "io/address.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_set>

namespace {

using spindle::address;

constexpr socklen_t unix_path_offset = offsetof(sockaddr_un, sun_path);

// The interface index of "lo", for the scoped IPv6 forms.
unsigned loopback_index() { return ::if_nametoindex("lo"); }

sockaddr_in make_sockaddr_in(const char* ip, std::uint16_t port) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  EXPECT_EQ(::inet_pton(AF_INET, ip, &sin.sin_addr), 1);
  return sin;
}

sockaddr_in6 make_sockaddr_in6(const char* ip, std::uint16_t port, std::uint32_t scope = 0) {
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(port);
  sin6.sin6_scope_id = scope;
  EXPECT_EQ(::inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
  return sin6;
}

template <class T>
address from(const T& sa, socklen_t len = sizeof(T)) {
  return address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sa), len);
}

TEST(AddressTest, ADefaultConstructedAddressIsEmpty) {
  const address a;
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.family(), AF_UNSPEC);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_FALSE(a.is_ipv4() || a.is_ipv6() || a.is_unix());
  EXPECT_EQ(a.port(), 0);
  EXPECT_EQ(a.ip(), "");
  EXPECT_EQ(a.to_string(), "");
  EXPECT_FALSE(a.is_loopback());
  EXPECT_EQ(a, address());
  EXPECT_EQ(address::from_sockaddr(nullptr, 0), a);
}

TEST(AddressTest, ParsesAndFormatsAnIpv4AddressWithItsPort) {
  const std::optional<address> a = address::parse("1.2.3.4:80");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->is_ipv4());
  EXPECT_EQ(a->family(), AF_INET);
  EXPECT_EQ(a->size(), sizeof(sockaddr_in));
  EXPECT_EQ(a->port(), 80);
  EXPECT_EQ(a->ip(), "1.2.3.4");
  EXPECT_EQ(a->to_string(), "1.2.3.4:80");
  EXPECT_EQ(*a, from(make_sockaddr_in("1.2.3.4", 80)));
  EXPECT_EQ(*a, address::ipv4("1.2.3.4", 80));
}

TEST(AddressTest, ParsesAndFormatsABracketedIpv6AddressWithItsPort) {
  const std::optional<address> a = address::parse("[::1]:80");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->is_ipv6());
  EXPECT_EQ(a->size(), sizeof(sockaddr_in6));
  EXPECT_EQ(a->port(), 80);
  EXPECT_EQ(a->ip(), "::1");
  EXPECT_EQ(a->to_string(), "[::1]:80");
  EXPECT_EQ(*a, from(make_sockaddr_in6("::1", 80)));
  EXPECT_EQ(*a, address::ipv6("::1", 80));
  // inet_ntop's canonical text comes back, whatever text went in.
  EXPECT_EQ(address::parse("[2001:DB8:0:0::1]:65535")->to_string(), "[2001:db8::1]:65535");
}

TEST(AddressTest, ParsesAScopedIpv6AddressByInterfaceNameOrNumber) {
  const unsigned lo = loopback_index();
  ASSERT_NE(lo, 0u) << "no interface named lo";
  const std::optional<address> by_name = address::parse("[fe80::1%lo]:80");
  const std::optional<address> by_number = address::parse("[fe80::1%" + std::to_string(lo) + "]:80");
  ASSERT_TRUE(by_name);
  ASSERT_TRUE(by_number);
  EXPECT_EQ(*by_name, *by_number);
  EXPECT_EQ(*by_name, from(make_sockaddr_in6("fe80::1", 80, lo)));
  EXPECT_EQ(by_name->ip(), "fe80::1%lo");
  EXPECT_EQ(by_number->to_string(), "[fe80::1%lo]:80");  // named when it has a name
  EXPECT_EQ(address::ipv6("fe80::1%lo", 80), *by_name);
  // A scope no interface has is kept, and written, as a number.
  const std::optional<address> unnamed = address::parse("[fe80::1%4000000000]:80");
  ASSERT_TRUE(unnamed);
  EXPECT_EQ(unnamed->to_string(), "[fe80::1%4000000000]:80");
  // The scope is part of the address.
  EXPECT_NE(*by_name, *address::parse("[fe80::1]:80"));
}

TEST(AddressTest, ParsesAndFormatsUnixPathnameAndAbstractSockets) {
  const std::optional<address> abs = address::parse("/run/app.sock");
  ASSERT_TRUE(abs);
  EXPECT_TRUE(abs->is_unix());
  EXPECT_FALSE(abs->is_abstract());
  EXPECT_EQ(abs->size(), unix_path_offset + std::strlen("/run/app.sock") + 1);
  EXPECT_STREQ(reinterpret_cast<const sockaddr_un*>(abs->data())->sun_path, "/run/app.sock");
  EXPECT_EQ(abs->to_string(), "/run/app.sock");
  EXPECT_EQ(abs->path(), "/run/app.sock");
  EXPECT_EQ(abs->port(), 0);
  EXPECT_EQ(abs->ip(), "");
  EXPECT_EQ(address::parse("unix:/run/app.sock"), abs);
  EXPECT_EQ(address::unix_socket("/run/app.sock"), *abs);

  const std::optional<address> rel = address::parse("unix:rel/app.sock");
  ASSERT_TRUE(rel);
  EXPECT_EQ(rel->path(), "rel/app.sock");
  EXPECT_EQ(rel->to_string(), "unix:rel/app.sock");

  const std::optional<address> abstract = address::parse("@my-service");
  ASSERT_TRUE(abstract);
  EXPECT_TRUE(abstract->is_unix());
  EXPECT_TRUE(abstract->is_abstract());
  // A leading NUL, then the name, and no terminating NUL: the length ends it.
  EXPECT_EQ(abstract->size(), unix_path_offset + 1 + std::strlen("my-service"));
  const auto* sun = reinterpret_cast<const sockaddr_un*>(abstract->data());
  EXPECT_EQ(sun->sun_path[0], '\0');
  EXPECT_EQ(std::string(sun->sun_path + 1, 10), "my-service");
  EXPECT_EQ(abstract->to_string(), "@my-service");
  EXPECT_EQ(abstract->path(), "");
  EXPECT_EQ(address::parse("unix:@my-service"), abstract);
  EXPECT_EQ(address::unix_socket("@my-service"), *abstract);
  // A pathname "x" and an abstract "x" are different sockets.
  EXPECT_NE(*address::parse("unix:x"), *address::parse("@x"));
}

TEST(AddressTest, EveryTextFormRoundTripsThroughParseAndToString) {
  for (const char* text :
       {"1.2.3.4:80", "0.0.0.0:0", "255.255.255.255:65535", "[::1]:80", "[::]:0",
        "[2001:db8::1]:443", "[::ffff:127.0.0.1]:8080", "[fe80::1%lo]:80", "/run/app.sock", "/",
        "@abstract", "unix:relative.sock", "unix:./@not-abstract"}) {
    SCOPED_TRACE(text);
    const std::optional<address> a = address::parse(text);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->to_string(), text);
    EXPECT_EQ(address::parse(a->to_string()), a);
    std::ostringstream os;
    os << *a;
    EXPECT_EQ(os.str(), text);
  }
}

TEST(AddressTest, ParseRejectsBadPortsMissingPortsAndGarbage) {
  for (std::string_view text :
       {"", "1.2.3.4:99999", "1.2.3.4:65536", "1.2.3.4:4294967376", "1.2.3.4", "1.2.3.4:",
        "1.2.3.4:-1", "1.2.3.4:+80", "1.2.3.4: 80", "1.2.3.4:80 ", "1.2.3.4:80x", "1.2.3.4:0x50",
        ":80", "256.1.1.1:80", "1.2.3:80", "01.2.3.4:80", "garbage", "host.example:80",
        "localhost:80", "::1:80", "::1", "[::1]", "[::1]:", "[::1]80", "[::1]:80:1", "[::1:80",
        "::1]:80", "[[::1]]:80", "[1.2.3.4]:80", "[fe80::1%]:80", "[fe80::1%no-such-if0]:80",
        "[fe80::1%99999999999]:80", "1.2.3.4%lo:80", "@", "unix:", "unix:@", " 1.2.3.4:80"}) {
    EXPECT_FALSE(address::parse(text)) << "\"" << text << "\"";
  }
  // A NUL would cut the text short for inet_pton() or open().
  EXPECT_FALSE(address::parse(std::string_view("1.2.3.4\0:80", 11)));
  EXPECT_FALSE(address::parse(std::string_view("1.2.3.4:8\0", 10)));
  EXPECT_FALSE(address::parse(std::string_view("/tmp/a\0b", 8)));
}

TEST(AddressTest, AUnixPathLongerThanSunPathIsRejectedNotTruncated) {
  const std::string longest = "/" + std::string(address::max_unix_path - 1, 'p');
  ASSERT_EQ(longest.size(), sizeof(sockaddr_un::sun_path) - 1);
  const std::optional<address> fits = address::parse(longest);
  ASSERT_TRUE(fits);
  EXPECT_EQ(fits->path(), longest);
  EXPECT_EQ(fits->size(), sizeof(sockaddr_un));

  const std::string too_long = longest + "p";
  EXPECT_FALSE(address::parse(too_long));
  EXPECT_FALSE(address::parse("unix:" + too_long));
  EXPECT_THROW(address::unix_socket(too_long), std::invalid_argument);

  const std::string longest_name = "@" + std::string(address::max_unix_path, 'n');
  EXPECT_EQ(address::unix_socket(longest_name).to_string(), longest_name);
  EXPECT_FALSE(address::parse(longest_name + "n"));
  EXPECT_THROW(address::unix_socket(longest_name + "n"), std::invalid_argument);
}

TEST(AddressTest, TheHelpersThrowInvalidArgumentOnBadInput) {
  EXPECT_EQ(address::ipv4("127.0.0.1", 8080).to_string(), "127.0.0.1:8080");
  EXPECT_THROW(address::ipv4("::1", 80), std::invalid_argument);
  EXPECT_THROW(address::ipv4("1.2.3", 80), std::invalid_argument);
  EXPECT_THROW(address::ipv4("1.2.3.4:80", 80), std::invalid_argument);
  EXPECT_THROW(address::ipv4("localhost", 80), std::invalid_argument);
  EXPECT_THROW(address::ipv4("", 80), std::invalid_argument);
  EXPECT_EQ(address::ipv6("::1", 8080).to_string(), "[::1]:8080");
  EXPECT_THROW(address::ipv6("1.2.3.4", 80), std::invalid_argument);
  EXPECT_THROW(address::ipv6("[::1]", 80), std::invalid_argument);
  EXPECT_THROW(address::ipv6("fe80::1%no-such-if0", 80), std::invalid_argument);
  EXPECT_THROW(address::unix_socket(""), std::invalid_argument);
  EXPECT_THROW(address::unix_socket("@"), std::invalid_argument);
  EXPECT_THROW(address::unix_socket(std::string_view("/tmp/a\0b", 8)), std::invalid_argument);
}

TEST(AddressTest, ThePortCanBeReadAndChanged) {
  address v4 = address::ipv4("10.0.0.1", 80);
  v4.set_port(8080);
  EXPECT_EQ(v4.port(), 8080);
  EXPECT_EQ(v4.to_string(), "10.0.0.1:8080");
  EXPECT_EQ(ntohs(reinterpret_cast<const sockaddr_in*>(v4.data())->sin_port), 8080);

  address v6 = *address::parse("[fe80::1%lo]:80");
  v6.set_port(65535);
  EXPECT_EQ(v6.port(), 65535);
  EXPECT_EQ(v6.to_string(), "[fe80::1%lo]:65535");

  address unix_addr = address::unix_socket("/tmp/x.sock");
  EXPECT_EQ(unix_addr.port(), 0);
  EXPECT_THROW(unix_addr.set_port(80), std::invalid_argument);
  address empty;
  EXPECT_THROW(empty.set_port(80), std::invalid_argument);
}

TEST(AddressTest, EqualityComparesFamilyIpPortAndScopeOnly) {
  EXPECT_EQ(*address::parse("1.2.3.4:80"), address::ipv4("1.2.3.4", 80));
  EXPECT_NE(*address::parse("1.2.3.4:80"), *address::parse("1.2.3.4:81"));
  EXPECT_NE(*address::parse("1.2.3.4:80"), *address::parse("1.2.3.5:80"));
  // IPv4 and its IPv4-mapped IPv6 form are different addresses.
  EXPECT_NE(*address::parse("127.0.0.1:80"), *address::parse("[::ffff:127.0.0.1]:80"));
  EXPECT_NE(*address::parse("[::1]:80"), *address::parse("[::1]:81"));
  EXPECT_NE(address::unix_socket("/a"), address::unix_socket("/b"));
  EXPECT_NE(address::unix_socket("/a"), address());

  // Padding and the IPv6 flow info are not part of the address.
  sockaddr_in sin = make_sockaddr_in("1.2.3.4", 80);
  std::memset(sin.sin_zero, 0xab, sizeof sin.sin_zero);
  EXPECT_EQ(from(sin), address::ipv4("1.2.3.4", 80));
  EXPECT_EQ(std::hash<address>{}(from(sin)), std::hash<address>{}(address::ipv4("1.2.3.4", 80)));
  sockaddr_in6 sin6 = make_sockaddr_in6("::1", 80);
  sin6.sin6_flowinfo = htonl(12345);
  EXPECT_EQ(from(sin6), address::ipv6("::1", 80));
  EXPECT_EQ(std::hash<address>{}(from(sin6)), std::hash<address>{}(address::ipv6("::1", 80)));
}

TEST(AddressTest, DetectsLoopbackAddresses) {
  for (const char* text : {"127.0.0.1:1", "127.255.3.4:1", "[::1]:1", "[::ffff:127.0.0.1]:1"}) {
    EXPECT_TRUE(address::parse(text)->is_loopback()) << text;
  }
  for (const char* text : {"10.0.0.1:1", "0.0.0.0:1", "128.0.0.1:1", "[::]:1", "[::2]:1",
                           "[::ffff:10.0.0.1]:1", "[fe80::1]:1", "/tmp/x", "@x"}) {
    EXPECT_FALSE(address::parse(text)->is_loopback()) << text;
  }
}

TEST(AddressTest, FromSockaddrReadsEveryFamilyAndNormalizesUnixLengths) {
  EXPECT_EQ(from(make_sockaddr_in("1.2.3.4", 80)).to_string(), "1.2.3.4:80");
  EXPECT_EQ(from(make_sockaddr_in6("::1", 80)).to_string(), "[::1]:80");

  // A pathname, with the length counting its NUL, not counting it, or
  // covering all of sockaddr_un (the kernel may give any of these).
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::strcpy(sun.sun_path, "/tmp/s");
  const address with_nul = from(sun, unix_path_offset + 7);
  const address without_nul = from(sun, unix_path_offset + 6);
  const address whole = from(sun, sizeof sun);
  EXPECT_EQ(with_nul.to_string(), "/tmp/s");
  EXPECT_EQ(with_nul, without_nul);
  EXPECT_EQ(with_nul, whole);
  EXPECT_EQ(whole.size(), unix_path_offset + 7);
  EXPECT_EQ(std::hash<address>{}(with_nul), std::hash<address>{}(whole));

  // The unnamed address of an unbound socket.
  const address unnamed = from(sun, sizeof(sa_family_t));
  EXPECT_TRUE(unnamed.is_unix());
  EXPECT_FALSE(unnamed.is_abstract());
  EXPECT_EQ(unnamed.to_string(), "");
  EXPECT_EQ(unnamed.path(), "");
  EXPECT_NE(unnamed, address());

  // AF_UNSPEC reads as the empty address.
  sockaddr unspec{};
  unspec.sa_family = AF_UNSPEC;
  EXPECT_TRUE(from(unspec).empty());
}

TEST(AddressTest, FromSockaddrRejectsABadLengthOrFamily) {
  const sockaddr_in sin = make_sockaddr_in("1.2.3.4", 80);
  EXPECT_THROW(from(sin, sizeof sin - 1), std::invalid_argument);
  EXPECT_THROW(from(sin, 1), std::invalid_argument);
  const sockaddr_in6 sin6 = make_sockaddr_in6("::1", 80);
  EXPECT_THROW(from(sin6, sizeof sin6 - 1), std::invalid_argument);
  EXPECT_THROW(from(sin6, sizeof(sockaddr_in)), std::invalid_argument);
  sockaddr_storage big{};
  big.ss_family = AF_INET;
  EXPECT_THROW(from(big, sizeof big + 1), std::invalid_argument);
  big.ss_family = AF_UNIX;
  EXPECT_THROW(from(big, sizeof(sockaddr_un) + 1), std::invalid_argument);
  big.ss_family = AF_PACKET;
  EXPECT_THROW(from(big, sizeof big), std::invalid_argument);
  EXPECT_THROW(address::from_sockaddr(nullptr, sizeof sin), std::invalid_argument);
}

TEST(AddressTest, DataMutAndSetSizeTakeWhatTheKernelFillsIn) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  const address bound = address::ipv4("127.0.0.1", 0);
  ASSERT_EQ(::bind(fd, bound.data(), bound.size()), 0);
  // Start from a longer address, so that stale bytes would show.
  address got = address::unix_socket("/" + std::string(address::max_unix_path - 1, 'x'));
  socklen_t len = address::capacity();
  ASSERT_EQ(::getsockname(fd, got.data_mut(), &len), 0);
  got.set_size(len);
  ::close(fd);
  EXPECT_TRUE(got.is_ipv4());
  EXPECT_TRUE(got.is_loopback());
  EXPECT_NE(got.port(), 0);
  EXPECT_EQ(got, address::ipv4("127.0.0.1", got.port()));
  EXPECT_EQ(std::hash<address>{}(got), std::hash<address>{}(address::ipv4("127.0.0.1", got.port())));
}

TEST(AddressTest, AnAbstractUnixAddressSurvivesBindAndGetsockname) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  const address name = address::unix_socket("@spindle-address-test-" + std::to_string(::getpid()));
  ASSERT_EQ(::bind(fd, name.data(), name.size()), 0) << std::strerror(errno);
  address got;
  socklen_t len = address::capacity();
  ASSERT_EQ(::getsockname(fd, got.data_mut(), &len), 0);
  got.set_size(len);
  ::close(fd);
  EXPECT_EQ(got, name);
  EXPECT_EQ(got.to_string(), name.to_string());

  // An unbound socket of a pair has the unnamed address.
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  address peer;
  len = address::capacity();
  ASSERT_EQ(::getpeername(pair[0], peer.data_mut(), &len), 0);
  peer.set_size(len);
  ::close(pair[0]);
  ::close(pair[1]);
  EXPECT_TRUE(peer.is_unix());
  EXPECT_EQ(peer.to_string(), "");
}

TEST(AddressTest, SetSizeWithABadLengthLeavesTheAddressEmptyAndThrows) {
  address a = address::ipv4("1.2.3.4", 80);
  EXPECT_THROW(a.set_size(sizeof(sockaddr_in) - 1), std::invalid_argument);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a, address());
  a = address::ipv4("1.2.3.4", 80);
  EXPECT_THROW(a.set_size(address::capacity() + 1), std::invalid_argument);
  EXPECT_TRUE(a.empty());
}

TEST(AddressTest, TheHashLetsAddressesKeyAnUnorderedSet) {
  std::unordered_set<address> set;
  set.insert(*address::parse("1.2.3.4:80"));
  set.insert(address::ipv4("1.2.3.4", 80));
  set.insert(from(make_sockaddr_in("1.2.3.4", 80)));
  EXPECT_EQ(set.size(), 1u);
  set.insert(*address::parse("1.2.3.4:81"));
  set.insert(*address::parse("[::1]:80"));
  set.insert(*address::parse("[fe80::1%lo]:80"));
  set.insert(*address::parse("[fe80::1]:80"));
  set.insert(address::unix_socket("/tmp/s"));
  set.insert(address::unix_socket("@s"));
  set.insert(address());
  EXPECT_EQ(set.size(), 8u);
  EXPECT_TRUE(set.contains(address::ipv6("::1", 80)));
  EXPECT_TRUE(set.contains(*address::parse("unix:/tmp/s")));
  EXPECT_FALSE(set.contains(address::unix_socket("s")));
}

}  // namespace
