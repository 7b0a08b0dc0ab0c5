#include "hook/detail/trace.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "fiber/this_fiber.h"
#include "hook/detail/real_calls.h"

namespace spindle::hook_detail {
namespace {
// -1: not read yet; 0: off; 1: on.
constinit std::atomic<int> trace_state{-1};
}  // namespace

bool tracing() noexcept {
  int s = trace_state.load(std::memory_order_relaxed);
  if (s < 0) {
    const char* v = std::getenv("SPINDLE_HOOK_TRACE");
    s = (v != nullptr && v[0] != '\0' && std::strcmp(v, "0") != 0) ? 1 : 0;
    trace_state.store(s, std::memory_order_relaxed);
  }
  return s == 1;
}

void trace_unparked(const char* call, int fd, const char* why, const void* caller) noexcept {
  const int saved = get_errno();
  char line[256];
  int n;
  if (fd >= 0) {
    n = std::snprintf(line, sizeof line, "spindle hook: %s(fd %d) on worker %d may block the worker: %s; called from %p\n",
                      call, fd, spindle::this_fiber::worker_index(), why, caller);
  } else {
    n = std::snprintf(line, sizeof line, "spindle hook: %s on worker %d may block the worker: %s; called from %p\n", call,
                      spindle::this_fiber::worker_index(), why, caller);
  }
  if (n > 0) (void)real::write(2, line, static_cast<std::size_t>(n) < sizeof line ? n : sizeof line - 1);
  set_errno(saved);
}

}  // namespace spindle::hook_detail
