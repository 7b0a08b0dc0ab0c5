// The runtime: workers that run fibers. Design notes: docs/sched.md.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include "fiber/detail/fiber_record.h"
#include "fiber/detail/stack.h"

namespace spindle {

// options configure a runtime started by spindle::run().
struct options {
  // Usable stack bytes of a fiber that does not ask for a size
  // (fiber_options::stack_size). Only touched pages cost memory.
  std::size_t stack_size = detail::default_stack_size;
  // Worker threads; 0 means one per hardware thread. The calling thread of
  // run() is worker 0.
  unsigned workers = 1;
};

namespace detail {
// run_main() runs `main` (a fresh fiber record) as the first fiber and
// returns once every fiber has finished; rethrows main's exception.
void run_main(control_block* main, const options& opts);
}  // namespace detail

// run() starts a runtime on the calling thread, runs `main(args...)` as its
// first fiber, and returns once `main` and every fiber started inside the
// runtime have finished; the worker threads are joined by then. An
// exception escaping `main` is rethrown by run() (after the other fibers
// have finished). One runtime runs at a time: run() throws
// std::system_error with errc::device_or_resource_busy if one is already
// running, and with errc::operation_not_permitted when called on a fiber.
//
//   int main() {
//     spindle::run([] {
//       spindle::go([] { std::puts("hello from a fiber"); });
//     });
//   }
//
// Plain thread only.
template <class F, class... Args>
  requires(!std::is_same_v<std::remove_cvref_t<F>, options>)
void run(F&& main, Args&&... args) {
  auto* cb = new detail::fiber_record_for<F, Args...>(std::forward<F>(main),
                                                      std::forward<Args>(args)...);
  detail::run_main(cb, options{});
}

template <class F, class... Args>
void run(const options& opts, F&& main, Args&&... args) {
  auto* cb = new detail::fiber_record_for<F, Args...>(std::forward<F>(main),
                                                      std::forward<Args>(args)...);
  detail::run_main(cb, opts);
}

}  // namespace spindle
