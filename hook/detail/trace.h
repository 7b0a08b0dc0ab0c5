// SPINDLE_HOOK_TRACE=1: a line on stderr for each hooked call that a
// fiber made and that may block its worker because the hook could not
// park it (docs/hook.md, "Checking a library").
#pragma once

#include <atomic>
#include <cstddef>

namespace spindle::hook_detail {

// Hooked calls parked now (spindle::hook::parked_calls(), for tests that
// must know a fiber is parked in one before they wake it). A parked_scope
// counts its caller for its lifetime; only slow paths make one.
inline constinit std::atomic<std::size_t> parked_now{0};
class parked_scope {
 public:
  parked_scope() noexcept { parked_now.fetch_add(1, std::memory_order_relaxed); }
  ~parked_scope() { parked_now.fetch_sub(1, std::memory_order_relaxed); }
  parked_scope(const parked_scope&) = delete;
  parked_scope& operator=(const parked_scope&) = delete;
};

// tracing() reads the environment once.
bool tracing() noexcept;
// trace_unparked() writes "spindle hook: <call>(fd N) on worker W may
// block the worker: <why>; called from 0x..." with write(2), without
// allocating.
void trace_unparked(const char* call, int fd, const char* why, const void* caller) noexcept;

}  // namespace spindle::hook_detail
