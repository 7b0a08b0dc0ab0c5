// The hooked resolver calls: getaddrinfo, gethostbyname(_r),
// gethostbyname2(_r). glibc's resolver reaches its sockets and its poll()
// (with a 5 s timeout per try) through internal aliases no hook sees, so
// on a fiber the whole call runs on the blocking pool while the fiber
// parks. errno and h_errno, which the call sets on the pool's thread, are
// carried back to the caller's.
#include <netdb.h>
#include <sys/socket.h>

#include <cerrno>

#include "hook/detail/real_calls.h"
#include "hook/detail/trace.h"
#include "sched/blocking.h"
#include "sched/io_wait.h"

#define SPINDLE_HOOK_API extern "C" __attribute__((visibility("default")))

namespace spindle::hook_detail {
namespace {

// on_pool(f) runs f() on the blocking pool and returns its result, with
// the errno and h_errno it left set on the calling thread.
template <class F>
auto on_pool(F f) noexcept -> decltype(f()) {
  int e = 0;
  int he = 0;
  decltype(f()) r{};
  try {
    parked_scope parked;
    r = spindle::blocking([&] {
      auto x = f();
      e = errno;
      he = h_errno;
      return x;
    });
  } catch (...) {  // the pool could not take it: run it here
    return f();
  }
  set_errno(e);
  h_errno = he;
  return r;
}

}  // namespace
}  // namespace spindle::hook_detail

using namespace spindle::hook_detail;

SPINDLE_HOOK_API int getaddrinfo(const char* node, const char* service, const addrinfo* hints, addrinfo** res) {
  if (!spindle::detail::on_fiber()) return real::getaddrinfo(node, service, hints, res);
  return on_pool([&] { return real::getaddrinfo(node, service, hints, res); });
}

SPINDLE_HOOK_API hostent* gethostbyname(const char* name) {
  if (!spindle::detail::on_fiber()) return real::gethostbyname(name);
  return on_pool([&] { return real::gethostbyname(name); });
}

SPINDLE_HOOK_API hostent* gethostbyname2(const char* name, int af) {
  if (!spindle::detail::on_fiber()) return real::gethostbyname2(name, af);
  return on_pool([&] { return real::gethostbyname2(name, af); });
}

SPINDLE_HOOK_API int gethostbyname_r(const char* name, hostent* ret, char* buf, size_t len, hostent** result,
                                     int* err) {
  if (!spindle::detail::on_fiber()) return real::gethostbyname_r(name, ret, buf, len, result, err);
  return on_pool([&] { return real::gethostbyname_r(name, ret, buf, len, result, err); });
}

SPINDLE_HOOK_API int gethostbyname2_r(const char* name, int af, hostent* ret, char* buf, size_t len,
                                      hostent** result, int* err) {
  if (!spindle::detail::on_fiber()) return real::gethostbyname2_r(name, af, ret, buf, len, result, err);
  return on_pool([&] { return real::gethostbyname2_r(name, af, ret, buf, len, result, err); });
}
