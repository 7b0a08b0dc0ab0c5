#include "sync/wait_group.h"

#include <cstdio>
#include <cstdlib>

namespace spindle {

void wait_group::add(std::int64_t delta) noexcept {
  const std::int64_t now = count_.fetch_add(delta, std::memory_order_acq_rel) + delta;
  if (now < 0) {
    std::fprintf(stderr, "spindle: wait_group: counter below zero (done() called too many times?)\n");
    std::abort();
  }
  if (now == 0 && delta != 0) {
    waiters_.lock().lock();
    (void)waiters_.wake_all();
    waiters_.lock().unlock();
  }
}

void wait_group::wait() noexcept {
  if (count_.load(std::memory_order_acquire) == 0) return;  // fast path
  waiters_.lock().lock();
  // Checked under the lock that add() wakes under: no lost wakeup.
  if (count_.load(std::memory_order_acquire) == 0) {
    waiters_.lock().unlock();
    return;
  }
  detail::wait_node node;
  waiters_.wait(node);
}

}  // namespace spindle
