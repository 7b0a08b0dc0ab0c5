// Helpers shared by the tests.
#pragma once

#include <cstddef>

#include "fiber/detail/sanitizer.h"

namespace spindle::test {

// TSan gives every fiber a thread slot and dies past 8128 of them alive at
// once, so tests that hold many fibers at a time hold fewer under TSan.
constexpr std::size_t max_concurrent_fibers(std::size_t wanted) {
#if SPINDLE_TSAN
  return wanted < 4000 ? wanted : 4000;
#else
  return wanted;
#endif
}

}  // namespace spindle::test

namespace spindle::test {

// Sanitizer builds run several times slower: stress loops run fewer rounds
// there, so that the whole suite stays within CI's time.
constexpr long scaled(long rounds) {
#if SPINDLE_TSAN || SPINDLE_ASAN
  return rounds / 10 > 0 ? rounds / 10 : 1;
#else
  return rounds;
#endif
}

}  // namespace spindle::test

#include <chrono>
#include <thread>

#include "fiber/detail/stack.h"

namespace spindle::test {

// A fiber on the default runtime gives its stack back just after the
// joiner is woken (on its worker's thread, once it has switched away), so a
// test that joins default-runtime fibers waits for that before the leak
// check runs. Polls; gives up (and lets the leak check fail) after 60 s.
inline void await_default_runtime_stacks_released() {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (detail::get_stack_stats().in_use != 0 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::yield();
  }
}

}  // namespace spindle::test

#include <gtest/gtest.h>

#include <string>

#include "sched/scheduler.h"

namespace spindle::test {

// The fixture of suites that run each test on runtimes of several sizes:
// TEST_P(...) bodies call opts() (and workers()), and the suite is
// instantiated with SPINDLE_INSTANTIATE_WORKERS(Suite, 1u, 2u, ...).
class workers_fixture : public testing::TestWithParam<unsigned> {
 protected:
  spindle::options opts() const { return spindle::options{.workers = GetParam()}; }
  unsigned workers() const { return GetParam(); }
};

inline std::string workers_name(const testing::TestParamInfo<unsigned>& info) {
  return std::to_string(info.param) + "Workers";
}

}  // namespace spindle::test

#define SPINDLE_INSTANTIATE_WORKERS(suite, ...) \
  INSTANTIATE_TEST_SUITE_P(Workers, suite, testing::Values(__VA_ARGS__), spindle::test::workers_name)

#include "fiber/fiber.h"
#include "fiber/fiber_options.h"
#include "fiber/this_fiber.h"

namespace spindle::test {

// Yields until `done()` holds; for conditions other fibers or threads make
// true.
template <class Pred>
void yield_until(Pred done) {
  while (!done()) spindle::this_fiber::yield();
}

// A spin-wait hint to the CPU, for busy work of a test's own.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  asm volatile("" ::: "memory");
#endif
}

// Returns once worker `w` has run a fiber started by this call. Called
// after a fiber pinned to `w` has begun running there, it proves that
// fiber has parked (or finished) since: a worker runs one fiber at a time.
inline void await_worker_free(int w) {
  spindle::fiber probe(spindle::fiber_options{.worker = w, .pinned = true}, [] {});
  probe.join();
}

}  // namespace spindle::test

#include <sys/resource.h>

namespace spindle::test {

// Raises the soft limit on descriptors to the hard limit; returns it.
inline rlim_t raise_descriptor_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return 1024;
  if (r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &r);
    (void)::getrlimit(RLIMIT_NOFILE, &r);
  }
  return r.rlim_cur;
}

}  // namespace spindle::test
