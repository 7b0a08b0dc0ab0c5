// spindle::latch: std's <latch> for fibers.
#pragma once

#include <atomic>
#include <cstddef>
#include <limits>

#include "sync/detail/misuse.h"
#include "sync/detail/parking_lot.h"

namespace spindle {

// latch is std::latch for fibers: a single-use counter that wait() waits to
// see at zero.
//
// Destruction: a latch may be destroyed once no fiber is in a call on it.
// The count_down() that reaches zero does not touch it after its store,
// so a lone waiter (or a fiber that saw try_wait() true) may destroy it as
// soon as its wait() returns, even while that count_down() is still
// running; with several waiters, each woken one reads the count until its
// own wait() returns. Destroying it while fibers wait on it is undefined
// and is not detected: its waiters park by address in the parking lot
// (sync/detail/parking_lot.h), and the latch keeps no list or count of
// them. They would stay parked for ever, and spindle::run() with them.
class latch {
 public:
  static constexpr std::ptrdiff_t max() noexcept { return std::numeric_limits<std::ptrdiff_t>::max(); }
  explicit latch(std::ptrdiff_t expected) noexcept : count_(expected) {}
  latch(const latch&) = delete;
  latch& operator=(const latch&) = delete;

  // count_down() lowers the counter; below zero is a caller bug (abort).
  void count_down(std::ptrdiff_t n = 1) noexcept {
    const std::ptrdiff_t now = count_.fetch_sub(n, std::memory_order_acq_rel) - n;
    if (now < 0) detail::sync_misuse("latch::count_down: counter below zero");
    // Not one more touch of *this from here: a waiter that sees zero may
    // destroy the latch at once (a latch on a fiber's stack).
    if (now == 0) (void)detail::unpark_address(this);
  }
  [[nodiscard]] bool try_wait() const noexcept {
    return count_.load(std::memory_order_acquire) == 0;
  }
  void wait() const noexcept {
    while (!try_wait()) {
      (void)detail::park_on(
          this, [this] { return count_.load(std::memory_order_relaxed) != 0; }, nullptr,
          detail::wait_reason::latch);
    }
  }
  void arrive_and_wait(std::ptrdiff_t n = 1) noexcept {
    count_down(n);
    wait();
  }

 private:
  std::atomic<std::ptrdiff_t> count_;
};

}  // namespace spindle
