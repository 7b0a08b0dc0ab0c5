// spindle::resolve().
//
// getaddrinfo() blocks its thread (it reads files, talks to a DNS server;
// glibc's asynchronous getaddrinfo_a() only runs it on threads of its
// own), so a lookup runs on the blocking pool, as Go's cgo resolver and
// libuv's uv_getaddrinfo() run it on a thread. Rejected: a DNS client of our own on
// the event loop (c-ares, Go's pure-Go resolver) would skip nsswitch.conf
// (mDNS, LDAP, systemd-resolved's NSS module) and is far more code.
//
// Literals need no lookup, and servers resolve them often (every
// "0.0.0.0:8080" of a config file): they are built here directly, as Go's
// resolver does before it looks at any name, with getaddrinfo()'s answers
// (checked against glibc's) for the same hints.
#include "io/dns.h"

#include <cerrno>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include <netinet/in.h>

#include "io/detail/or_throw.h"
#include "sched/blocking.h"

namespace spindle {

namespace {

class dns_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "spindle.dns"; }
  std::string message(int code) const override { return ::gai_strerror(code); }
  std::error_condition default_error_condition(int code) const noexcept override {
    switch (code) {
      case EAI_MEMORY:
        return std::errc::not_enough_memory;
      case EAI_FAMILY:
        return std::errc::address_family_not_supported;
      case EAI_BADFLAGS:
        return std::errc::invalid_argument;
      default:
        return {code, *this};
    }
  }
};

std::error_code dns_error(int eai) noexcept { return {eai, dns_category()}; }

// What one getaddrinfo() call gave, as the pool thread hands it back.
struct lookup_result {
  int rc = 0;         // getaddrinfo()'s return value
  int sys_errno = 0;  // errno, read on the thread that ran it (for EAI_SYSTEM)
  std::vector<address> addrs;
};

// Appends `a` unless it is there already (lists are a handful long).
void add_unique(std::vector<address>& out, const address& a) {
  for (const address& b : out) {
    if (b == a) return;
  }
  out.push_back(a);
}

bool wanted_family(int family, const resolve_options& opts) noexcept {
  return opts.family == AF_UNSPEC || opts.family == family;
}

// Runs getaddrinfo(). Pool thread (or the caller's, on a plain thread).
lookup_result lookup(const std::string& host, const std::string& service,
                     const resolve_options& opts) {
  addrinfo hints{};
  hints.ai_family = opts.family;
  hints.ai_socktype = opts.socktype;
  hints.ai_flags = opts.passive ? AI_PASSIVE : 0;
  addrinfo* list = nullptr;
  lookup_result r;
  // An empty host or service means "none" (getaddrinfo reads "" as a name).
  r.rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(),
                       service.empty() ? nullptr : service.c_str(), &hints, &list);
  r.sys_errno = errno;
  if (r.rc != 0) return r;
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> owner(list, ::freeaddrinfo);
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    // getaddrinfo honours the hints; these checks only guard against an
    // NSS module that does not.
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    if (!wanted_family(ai->ai_family, opts)) continue;
    if (opts.socktype != 0 && ai->ai_socktype != opts.socktype) continue;
    if (ai->ai_addr == nullptr) continue;
    address a;
    try {
      a = address::from_sockaddr(ai->ai_addr, ai->ai_addrlen);
    } catch (const std::invalid_argument&) {
      continue;  // a malformed entry: skip it rather than fail the lookup
    }
    add_unique(r.addrs, a);
  }
  if (r.addrs.empty()) r.rc = EAI_NONAME;
  return r;
}

// The fast path. Returns true when it has answered: `out` holds the
// addresses, or `ec` the error. False when getaddrinfo() is needed (a
// name, a service name, an unusual socket type).
bool resolve_numeric(std::string_view host, std::string_view service,
                     const resolve_options& opts, std::vector<address>& out,
                     std::error_code& ec) {
  if (opts.family != AF_UNSPEC && opts.family != AF_INET && opts.family != AF_INET6) {
    ec = dns_error(EAI_FAMILY);
    return true;
  }
  // Errors that need no lookup. A NUL would cut the C string short and
  // look up something else.
  if (host.find('\0') != std::string_view::npos) {
    ec = dns_error(EAI_NONAME);
    return true;
  }
  std::optional<std::uint16_t> port;
  const auto is_alnum = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  };
  if (service.empty()) {
    port = 0;
  } else if (service.find_first_not_of("0123456789") == std::string_view::npos) {
    // A number (getaddrinfo would truncate one past 65535 to 16 bits).
    port = detail::parse_port(service);
    if (!port) {
      ec = dns_error(EAI_SERVICE);
      return true;
    }
  } else if (!is_alnum(service.front()) || service.find('\0') != std::string_view::npos) {
    // Not a service name either ("-1", " 80", "+80": getaddrinfo would
    // read some of these as numbers).
    ec = dns_error(EAI_SERVICE);
    return true;
  }
  if (host.empty() && service.empty()) {
    ec = dns_error(EAI_NONAME);
    return true;
  }
  if (!port) return false;  // a service name: /etc/services
  // glibc's answers for other socket types (SOCK_RAW, SOCK_SEQPACKET)
  // differ per type: leave those to it.
  if (opts.socktype != 0 && opts.socktype != SOCK_STREAM && opts.socktype != SOCK_DGRAM) {
    return false;
  }

  if (host.empty()) {
    // In the order glibc's getaddrinfo() gives them (after its RFC 3484
    // sort).
    const char* const v4 = opts.passive ? "0.0.0.0" : "127.0.0.1";
    const char* const v6 = opts.passive ? "::" : "::1";
    if (opts.passive && wanted_family(AF_INET, opts)) out.push_back(address::ipv4(v4, *port));
    if (wanted_family(AF_INET6, opts)) out.push_back(address::ipv6(v6, *port));
    if (!opts.passive && wanted_family(AF_INET, opts)) out.push_back(address::ipv4(v4, *port));
    return true;
  }
  std::optional<address> a = detail::parse_ip(host, *port);
  if (!a) return false;  // a name (or a form only inet_aton reads, as "127.1")
  if (!wanted_family(a->family(), opts)) {
    ec = dns_error(EAI_ADDRFAMILY);  // as getaddrinfo reports it
    return true;
  }
  out.push_back(*a);
  return true;
}

std::vector<address> resolve_impl(std::string_view host, std::string_view service,
                                  const resolve_options& opts, std::error_code& ec) noexcept {
  ec.clear();
  try {
    // Fast path: a literal, or an error that needs no lookup.
    std::vector<address> out;
    if (resolve_numeric(host, service, opts, out, ec)) return out;

    // Slow path: getaddrinfo() on the blocking pool.
    const bool has_deadline = opts.deadline != std::chrono::steady_clock::time_point::max();
    if (has_deadline && std::chrono::steady_clock::now() >= opts.deadline) {
      ec = std::make_error_code(std::errc::timed_out);  // start nothing
      return {};
    }
    // The call owns its strings: with a deadline it may outlive this frame.
    auto call = [h = std::string(host), s = std::string(service), opts] {
      return lookup(h, s, opts);
    };
    lookup_result r = has_deadline ? blocking_until(opts.deadline, std::move(call))
                                   : blocking(call);
    if (r.rc == EAI_SYSTEM) {
      ec = std::error_code(r.sys_errno != 0 ? r.sys_errno : EIO, std::system_category());
      return {};
    }
    if (r.rc != 0) {
      ec = dns_error(r.rc);
      return {};
    }
    return std::move(r.addrs);
  } catch (const std::system_error& e) {
    ec = e.code();  // timed_out, from blocking_until()
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
  }
  return {};
}

// or_throw_resolve(): a lookup's throwing form: std::system_error naming
// the call and its arguments (`quoted`, which is built only on failure).
template <class Call, class Quoted>
std::vector<address> or_throw_resolve(Call&& call, Quoted&& quoted) {
  return detail::call_or_raise(std::forward<Call>(call), [&](std::error_code ec, std::size_t) {
    throw std::system_error(ec, "spindle::resolve(" + quoted() + ")");
  });
}

std::vector<address> resolve_host_port(std::string_view host_port, const resolve_options& opts,
                                       std::error_code& ec) noexcept {
  std::string_view host, port;
  bool bracketed = false;
  if (!detail::split_host_port(host_port, host, port, bracketed)) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return {};
  }
  return resolve_impl(host, port, opts, ec);
}

}  // namespace

const std::error_category& dns_category() noexcept {
  static const dns_category_impl category;
  return category;
}

std::vector<address> resolve(std::string_view host, std::string_view service,
                             const resolve_options& opts) {
  return or_throw_resolve([&](std::error_code& ec) { return resolve_impl(host, service, opts, ec); },
                          [&] { return '"' + std::string(host) + "\", \"" + std::string(service) + '"'; });
}

std::vector<address> resolve(std::string_view host, std::string_view service,
                             std::error_code& ec) noexcept {
  return resolve_impl(host, service, resolve_options{}, ec);
}

std::vector<address> resolve(std::string_view host, std::string_view service,
                             const resolve_options& opts, std::error_code& ec) noexcept {
  return resolve_impl(host, service, opts, ec);
}

std::vector<address> resolve(std::string_view host_port, const resolve_options& opts) {
  return or_throw_resolve([&](std::error_code& ec) { return resolve_host_port(host_port, opts, ec); },
                          [&] { return '"' + std::string(host_port) + '"'; });
}

std::vector<address> resolve(std::string_view host_port, std::error_code& ec) noexcept {
  return resolve_host_port(host_port, resolve_options{}, ec);
}

std::vector<address> resolve(std::string_view host_port, const resolve_options& opts,
                             std::error_code& ec) noexcept {
  return resolve_host_port(host_port, opts, ec);
}

}  // namespace spindle
