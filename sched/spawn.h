// The scheduler's entry points for spawning and joining fibers; used by
// fiber/fiber.h and sched/scheduler.h. Not for users (see fiber/fiber.h).
#pragma once

#include <cstddef>
#include <string_view>

#include "fiber/detail/control_block.h"

namespace spindle::detail {

// spawn() hands a new fiber to the runtime: it gets a stack and an id, and
// becomes runnable on the calling worker (from a plain thread: on a worker
// of the running runtime). With `joinable`, the caller keeps a reference
// (released by join() or detach()); otherwise the fiber is detached.
// Throws std::system_error when no runtime runs or no stack can be mapped;
// on a throw `cb` is untouched and still the caller's. Any thread.
void spawn(control_block* cb, std::string_view name, std::size_t stack_size, bool joinable);

// join() waits until `cb` has finished: parks a fiber, blocks a plain
// thread. The caller holds a joinable reference. Any thread.
void join(control_block* cb) noexcept;

// report_uncaught() prints the uncaught exception of a detached fiber and
// calls std::terminate().
[[noreturn]] void report_uncaught(control_block* cb) noexcept;

}  // namespace spindle::detail
