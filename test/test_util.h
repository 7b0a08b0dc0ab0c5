// Helpers shared by the tests.
#pragma once

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "fiber/detail/sanitizer.h"
#include "fiber/detail/stack.h"
#include "fiber/fiber.h"
#include "fiber/fiber_options.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"
#include "sync/detail/waiter_census.h"

namespace spindle::test {

// ---- Sizing for the sanitizer builds ----

// TSan gives every fiber a thread slot and dies past 8128 of them alive at
// once, so tests that hold many fibers at a time hold fewer under TSan.
constexpr std::size_t max_concurrent_fibers(std::size_t wanted) {
#if SPINDLE_TSAN
  return wanted < 4000 ? wanted : 4000;
#else
  return wanted;
#endif
}

// Sanitizer builds run several times slower: stress loops run fewer rounds
// there, so that the whole suite stays within CI's time.
constexpr long scaled(long rounds) {
#if SPINDLE_TSAN || SPINDLE_ASAN
  return rounds / 10 > 0 ? rounds / 10 : 1;
#else
  return rounds;
#endif
}

// ---- Runtimes of several sizes ----

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

// ---- Waiting for other fibers, without sleeping ----

// Yields until `done()` holds; for conditions other fibers or threads make
// true.
template <class Pred>
void yield_until(Pred done) {
  while (!done()) spindle::this_fiber::yield();
}

// await_parked() returns once at least `n` fibers (or plain threads) are
// parked on `object`, a sync/ primitive (mutex, condition variable,
// channel, semaphore, ...): registered where its wakers look, so that a
// wake from now on reaches them (sync/detail/waiter_census.h says what
// counts for each type). Yields between looks; no timing. A test whose
// point is that a fiber waits calls it before it wakes that fiber: without
// it, the test passes as well when the waiter had not got there yet, and
// tests only half of what it claims.
template <class Object>
void await_parked(const Object& object, std::size_t n = 1) {
  yield_until([&] { return spindle::detail::waiter_census::count(object) >= n; });
}

// Returns once worker `w` has run a fiber started by this call. Called
// after a fiber pinned to `w` has begun running there, it proves that
// fiber has parked (or finished) since: a worker runs one fiber at a time.
inline void await_worker_free(int w) {
  spindle::fiber probe(spindle::fiber_options{.worker = w, .pinned = true}, [] {});
  probe.join();
}

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

// A spin-wait hint to the CPU, for busy work of a test's own.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  asm volatile("" ::: "memory");
#endif
}

// ---- The process ----

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

// ---- Bytes ----

// pattern() is `size` bytes that differ from file to file (by `seed`) and
// have no short period, so a misplaced chunk shows.
inline std::vector<std::byte> pattern(std::uint32_t seed, std::size_t size) {
  std::vector<std::byte> out(size);
  for (std::size_t i = 0; i < size; ++i) {
    const std::uint32_t x = static_cast<std::uint32_t>(i) * 2654435761u + seed * 40503u + seed;
    out[i] = static_cast<std::byte>(x >> 24 ^ x >> 8);
  }
  return out;
}

inline std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span(s)); }

inline testing::AssertionResult same_bytes(std::span<const std::byte> got,
                                    std::span<const std::byte> want) {
  if (got.size() != want.size()) {
    return testing::AssertionFailure() << "got " << got.size() << " bytes, want " << want.size();
  }
  const auto diff = std::mismatch(got.begin(), got.end(), want.begin());
  if (diff.first != got.end()) {
    return testing::AssertionFailure() << "first difference at byte " << (diff.first - got.begin());
  }
  return testing::AssertionSuccess();
}

}  // namespace spindle::test

#define SPINDLE_INSTANTIATE_WORKERS(suite, ...) \
  INSTANTIATE_TEST_SUITE_P(Workers, suite, testing::Values(__VA_ARGS__), spindle::test::workers_name)
