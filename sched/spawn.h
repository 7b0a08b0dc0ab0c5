// The scheduler's entry points for spawning and joining fibers; used by
// fiber/fiber.h and sched/scheduler.h. Not for users (see fiber/fiber.h).
#pragma once

#include <cstddef>
#include <string_view>

#include "fiber/detail/control_block.h"
#include "fiber/detail/stack.h"
#include "fiber/fiber_options.h"

namespace spindle::detail {

// allocate_fiber_stack() takes a stack for a new fiber: `size` bytes, or
// the runtime's default when 0. Throws std::system_error when no stack can
// be mapped. Any thread.
stack allocate_fiber_stack(std::size_t size);

// spawn() hands a new fiber (built by make_record()) to the runtime: it
// gets an id and becomes runnable on the calling worker, or on
// options.worker. From a plain thread it goes to the spindle::run()
// runtime that is running, or else to the default runtime, started on
// first use. With `joinable`, the caller keeps a reference (released by
// join() or detach()); otherwise the fiber is detached. Throws
// std::system_error (errc::invalid_argument for a bad options.worker); on a
// throw `cb` is untouched and still the caller's. Any thread.
void spawn(control_block* cb, const fiber_options& options, bool joinable);

// join() waits until `cb` has finished: parks a fiber, blocks a plain
// thread. The caller holds a joinable reference. Any thread.
void join(control_block* cb) noexcept;

// report_uncaught() prints the uncaught exception of a detached fiber and
// calls std::terminate().
[[noreturn]] void report_uncaught(control_block* cb) noexcept;

}  // namespace spindle::detail
