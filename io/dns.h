// spindle::resolve(): host and service names to socket addresses, through
// getaddrinfo() on the runtime's blocking pool (sched/blocking.h).
#pragma once

#include <netdb.h>  // the EAI_* codes of dns_category()
#include <sys/socket.h>

#include <chrono>
#include <string_view>
#include <system_error>
#include <vector>

#include "io/address.h"

namespace spindle {

// dns_category() is the error category of getaddrinfo()'s failures: an
// error_code's value is the EAI_* code (EAI_NONAME, EAI_SERVICE, ...) and
// its message is gai_strerror()'s. EAI_SYSTEM is never reported in it: the
// errno behind it is, in std::system_category(). EAI_MEMORY compares equal
// to std::errc::not_enough_memory, EAI_FAMILY to
// std::errc::address_family_not_supported, EAI_BADFLAGS to
// std::errc::invalid_argument.
//
//   if (ec == std::error_code(EAI_NONAME, spindle::dns_category())) ...
//
// Any thread.
const std::error_category& dns_category() noexcept;

// resolve_options narrow what resolve() returns, as getaddrinfo()'s hints
// do.
struct resolve_options {
  // AF_UNSPEC (both), AF_INET or AF_INET6; anything else fails with
  // EAI_FAMILY.
  int family = AF_UNSPEC;
  // The socket type the addresses are for (SOCK_STREAM, SOCK_DGRAM), or 0
  // for any; it also picks the protocol a service name is looked up for.
  int socktype = SOCK_STREAM;
  // For bind(): an empty host gives the wildcard addresses (0.0.0.0, ::)
  // instead of the loopback ones (AI_PASSIVE).
  bool passive = false;
  // When resolve() gives up on a lookup and reports std::errc::timed_out.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

// resolve() returns the addresses of `host` and `service`, in the order
// getaddrinfo() gives them, each once (getaddrinfo repeats an address for
// each socket type and protocol), with the family and socket type of
// `opts`:
//
//   for (const spindle::address& a : spindle::resolve("example.com", "https")) {
//     if (try_connect(a)) break;
//   }
//   auto local = spindle::resolve("", "8080", {.passive = true});  // to bind
//
// `host` is a name, an IPv4 literal, an IPv6 literal without brackets
// ("fe80::1%eth0" with a scope), or empty: the loopback addresses (::1,
// then 127.0.0.1), or with opts.passive the wildcard ones (0.0.0.0, then
// ::). `service` is a decimal port (0-65535; a larger number is an error,
// not truncated as getaddrinfo does), a service name from /etc/services
// ("http"), or empty for port 0. An empty host with an empty service fails
// with EAI_NONAME.
//
// Fast path: a literal host (or an empty one) with a decimal port is
// built here, at once, without getaddrinfo() or the pool, and never times
// out. Otherwise getaddrinfo() runs on the blocking pool while the calling
// fiber parks (other fibers keep running); on a plain thread it runs
// inline. At opts.deadline the fiber stops waiting and gets
// std::errc::timed_out (a lookup already running finishes in the
// background, its result dropped; a deadline already past fails at once,
// starting nothing).
//
// Errors: dns_category() codes (EAI_NONAME for an unknown host or for no
// address left after the filters, EAI_SERVICE for an unknown service or a
// bad port, EAI_ADDRFAMILY for a literal of the other family, EAI_AGAIN
// when the DNS server did not answer, ...), an errno in
// std::system_category() for EAI_SYSTEM, std::errc::timed_out, or
// std::errc::not_enough_memory. This form throws them as std::system_error;
// the forms taking `ec` set it (and clear it on success) and return no
// addresses on error.
//
// Any fiber or thread.
std::vector<address> resolve(std::string_view host, std::string_view service,
                             const resolve_options& opts = {});
std::vector<address> resolve(std::string_view host, std::string_view service,
                             std::error_code& ec) noexcept;
std::vector<address> resolve(std::string_view host, std::string_view service,
                             const resolve_options& opts, std::error_code& ec) noexcept;

// resolve(host_port) is resolve(host, port) for "host:port" text:
// "example.com:443", "10.0.0.1:80", "[::1]:80", "[fe80::1%eth0]:80",
// ":8080" (empty host), "localhost:http". An IPv6 literal needs brackets;
// text without a ':port' (or with an unbracketed ':' in the host) fails
// with std::errc::invalid_argument.
std::vector<address> resolve(std::string_view host_port, const resolve_options& opts = {});
std::vector<address> resolve(std::string_view host_port, std::error_code& ec) noexcept;
std::vector<address> resolve(std::string_view host_port, const resolve_options& opts,
                             std::error_code& ec) noexcept;

}  // namespace spindle
