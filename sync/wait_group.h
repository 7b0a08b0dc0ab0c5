// spindle::wait_group: Go's sync.WaitGroup for fibers.
#pragma once

#include <atomic>
#include <cstdint>

#include "sync/detail/wait_queue.h"

namespace spindle {

// wait_group has a counter that add() raises, done() lowers, and wait()
// waits to see at zero, as Go's sync.WaitGroup:
//
//   spindle::wait_group wg;
//   for (auto& job : jobs) {
//     wg.add(1);
//     spindle::go([&wg, &job] { job.run(); wg.done(); });
//   }
//   wg.wait();  // parks until every job called done()
//
// Everything a fiber did before its done() is visible to a fiber whose
// wait() returns. When wait() returns, the wait_group may be destroyed or
// reused. Any fiber or thread.
//
// Destruction: a wait_group may be destroyed once no fiber is in a call on
// it. In particular any waiter may destroy it as soon as its wait()
// returns, even while other waiters woken with it have not returned yet and
// while the add() or done() that woke them is still running: neither
// touches it after the wake. Destroying it while fibers wait on it (the
// counter not yet zero) is undefined, and is caught while a spindle::run()
// runtime runs (see sync/detail/misuse.h): the destructor aborts with
// "spindle: wait_group 0x... destroyed while fibers wait on it (N waiters);
// let its counter reach zero first" (otherwise they would stay parked for
// ever, and spindle::run() would wait for them). The check is one load in
// the destructor.
class wait_group {
 public:
  wait_group() = default;
  wait_group(const wait_group&) = delete;
  wait_group& operator=(const wait_group&) = delete;
  ~wait_group() {
    const auto waiters = static_cast<std::uint32_t>(state_.load(std::memory_order_acquire));
    if (waiters != 0) [[unlikely]] report_waited_on(waiters);
  }

  // add() adds `delta` (which may be negative) to the counter (32 bits,
  // as in Go), waking the waiters when it reaches zero. A counter below
  // zero is a caller bug: add() aborts with "spindle: wait_group: counter
  // below zero".
  void add(std::int64_t delta = 1) noexcept;

  // done() is add(-1).
  void done() noexcept { add(-1); }

  // wait() returns once the counter is zero (at once if it is).
  void wait() noexcept;

  // count() is the counter now (for diagnostics).
  std::int64_t count() const noexcept {
    return static_cast<std::int32_t>(state_.load(std::memory_order_acquire) >> 32);
  }

 private:
  friend struct detail::waiter_census;
  [[gnu::cold]] void report_waited_on(std::uint32_t waiters) const noexcept;

  // The counter (high 32 bits, signed) and the number of waiters (low 32
  // bits), in one word as in Go's WaitGroup: an add() that brings the
  // counter to zero touches nothing else unless someone waits, so a waiter
  // that sees zero may destroy the wait_group at once.
  std::atomic<std::uint64_t> state_{0};
  detail::wait_queue waiters_;
};

}  // namespace spindle
