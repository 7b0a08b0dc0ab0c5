#include "hook/hook.h"

#include <dlfcn.h>
#include <unistd.h>

#include "hook/detail/trace.h"

extern "C" ssize_t read(int, void*, size_t);

namespace spindle::hook {

bool linked() noexcept {
  // The read() the dynamic linker gives everyone is this library's.
  void* global = ::dlsym(RTLD_DEFAULT, "read");
  return global == reinterpret_cast<void*>(&::read);
}

bool tracing() noexcept { return hook_detail::tracing(); }

std::size_t parked_calls() noexcept { return hook_detail::parked_now.load(std::memory_order_relaxed); }

}  // namespace spindle::hook
