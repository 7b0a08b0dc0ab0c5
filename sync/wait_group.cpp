#include "sync/wait_group.h"

#include "sync/detail/misuse.h"

namespace spindle {

void wait_group::add(std::int64_t delta) noexcept {
  const std::uint64_t before =
      state_.fetch_add(static_cast<std::uint64_t>(delta) << 32, std::memory_order_acq_rel);
  const std::uint64_t after = before + (static_cast<std::uint64_t>(delta) << 32);
  const auto counter = static_cast<std::int32_t>(after >> 32);
  const auto waiters = static_cast<std::uint32_t>(after);
  if (counter < 0) {
    detail::sync_misuse("wait_group: counter below zero (done() called too many times?)");
  }
  // Nobody waits, or not done yet: touch nothing more (a waiter that saw
  // zero may already have destroyed *this).
  if (counter > 0 || waiters == 0 || delta == 0) return;
  // Zero with waiters: they registered under the lock and are parked or
  // parking in waiters_; each returns only once we have let go of the lock
  // and released it, our last touch of it (and then may destroy *this).
  waiters_.lock().lock();
  state_.store(0, std::memory_order_release);
  detail::queue_node* woken = waiters_.wake_all();
  waiters_.lock().unlock();
  detail::wait_queue::release(woken);
}

void wait_group::wait() noexcept {
  for (;;) {
    std::uint64_t s = state_.load(std::memory_order_acquire);
    if ((s >> 32) == 0) return;  // the counter is zero
    waiters_.lock().lock();
    // Registered as a waiter only if the counter has not moved meanwhile:
    // then the add() that zeroes it sees us and wakes us under this lock.
    if (state_.compare_exchange_strong(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
      detail::queue_node node;
      waiters_.wait(node, detail::wait_reason::wait_group);  // releases the lock; returns once woken
      return;
    }
    waiters_.lock().unlock();
  }
}

void wait_group::report_waited_on(std::uint32_t waiters) const noexcept {
  detail::destroyed_while_waited_on("wait_group", this, {waiters, "waiters"}, {},
                                    "let its counter reach zero first");
}

}  // namespace spindle
