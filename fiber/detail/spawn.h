// What fiber/ asks of the scheduler: the entry points for spawning and
// joining fibers. Declared here, defined by sched/ (sched/detail/
// runtime.cpp), so that fiber/ includes nothing of the layer above it and
// the dependency is only at link time. Not for users (see fiber/fiber.h).
#pragma once

#include <cstddef>
#include <string_view>
#include <utility>

#include "fiber/detail/control_block.h"
#include "fiber/detail/fiber_record.h"
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
// thread. The caller holds a joinable reference. Any thread. With
// `cancellable`, a stop request on the calling fiber's stop token ends the
// wait: false then, and `cb` has not finished (or its end was not seen).
bool join(control_block* cb, bool cancellable = false) noexcept;

// report_uncaught() prints the uncaught exception of a detached fiber and
// calls std::terminate().
[[noreturn]] void report_uncaught(control_block* cb) noexcept;

// start_fiber() spawns f(args...) as a fiber; detached unless `joinable`,
// in which case it returns the caller's reference (else nullptr). On a
// throw nothing is leaked. The body of spindle::fiber's constructor and
// of spindle::go.
//
// Those are noinline, so that __builtin_return_address(0) in them is the
// spawning call in the caller's code: what the dump names as the place a
// fiber was spawned, at the cost of one call (spawn+join measured within
// noise: docs/benchmarks.md).
// `site` is where it was spawned from (the spawning call's return
// address), for the fiber dump.
template <class F, class... Args>
control_block* start_fiber(const fiber_options& options, bool joinable, const void* site, F&& f,
                           Args&&... args) {
  control_block* cb = make_record(allocate_fiber_stack(options.stack_size), std::forward<F>(f),
                                  std::forward<Args>(args)...);
  cb->spawn_site_ = site;
  try {
    spawn(cb, options, joinable);
  } catch (...) {
    cb->release();
    throw;
  }
  return joinable ? cb : nullptr;
}

}  // namespace spindle::detail
