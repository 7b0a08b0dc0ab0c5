#include "hook/detail/real.h"

#include <cerrno>
#include <cstring>
#include <dlfcn.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace spindle::hook_detail {
namespace {

long missing_function() noexcept {
  errno = ENOSYS;
  return -1;
}

}  // namespace

void* resolve_next(const char* name) noexcept {
  void* f = ::dlsym(RTLD_NEXT, name);
  if (f != nullptr) return f;
  // No libc behind us (a static program): say so and fail the call.
  static constexpr char prefix[] = "spindle hook: no next definition of ";
  ssize_t ignored = ::syscall(SYS_write, 2, prefix, sizeof prefix - 1);
  ignored = ::syscall(SYS_write, 2, name, std::strlen(name));
  ignored = ::syscall(SYS_write, 2, "\n", 1);
  (void)ignored;
  return reinterpret_cast<void*>(&missing_function);
}

__attribute__((noinline)) int get_errno() noexcept { return errno; }
__attribute__((noinline)) void set_errno(int e) noexcept { errno = e; }

}  // namespace spindle::hook_detail
