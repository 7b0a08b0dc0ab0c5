#include "sync/detail/wait_queue.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ctime>
#include <thread>

namespace spindle::detail {
namespace {

// How many times a waiter looks at the lock, a pause apart, before it
// yields its thread once and then sleeps. Few: measured on 2 workers
// (bench/sync/sync_bench.cpp, 4 producers and 4 consumers on a buffered
// channel), 4 looks gave 47 ns an item, 16 looks 60 ns, 64 looks 95 ns;
// the other sync benchmarks did not change.
constexpr int spin_looks = 4;

// The longest a waiter sleeps without being woken: what a missed wake (see
// spinlock) can cost.
constexpr long max_sleep_ns = 200'000;

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t value,
           const struct timespec* timeout) noexcept {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, value, timeout, nullptr, 0);
}

}  // namespace

void spinlock::lock_contended() noexcept {
  // Once we may have slept, we take the lock as "2": there may be other
  // sleepers, and our unlock must wake one of them (Go's lock2 does this).
  std::uint32_t take_as = 1;
  for (;;) {
    for (int i = 0; i < spin_looks; ++i) {
      std::uint32_t expected = 0;
      if (state_.load(std::memory_order_relaxed) == 0 &&
          state_.compare_exchange_weak(expected, take_as, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return;
      }
      __builtin_ia32_pause();
    }
    // The holder's thread may have been preempted (more workers than
    // cores): let it run.
    std::this_thread::yield();
    // Mark that we sleep; if it was free meanwhile, we have it.
    if (state_.exchange(2, std::memory_order_acquire) == 0) return;
    take_as = 2;
    const struct timespec timeout{0, max_sleep_ns};
    futex(&state_, FUTEX_WAIT_PRIVATE, 2, &timeout);
  }
}

void spinlock::wake_one() noexcept { futex(&state_, FUTEX_WAKE_PRIVATE, 1, nullptr); }

void await_released_slow(const std::atomic<bool>& released) noexcept {
  // The waker woke us and is between its unlock and its release: a few
  // instructions, unless its thread was preempted just there (or it has
  // more waiters to unpark first, as notify_all() does).
  for (int i = 0; i < 64; ++i) {
    __builtin_ia32_pause();
    if (released.load(std::memory_order_acquire)) return;
  }
  while (!released.load(std::memory_order_acquire)) std::this_thread::yield();
}

}  // namespace spindle::detail
