#include "sync/once.h"

namespace spindle {

bool once_flag::begin() noexcept {
  for (;;) {
    waiters_.lock().lock();
    const int s = state_.load(std::memory_order_acquire);
    if (s == done_state) {
      waiters_.lock().unlock();
      return false;
    }
    if (s == idle) {
      state_.store(running, std::memory_order_relaxed);
      waiters_.lock().unlock();
      return true;
    }
    detail::wait_node node;  // running: wait for the outcome
    waiters_.wait(node);
  }
}

void once_flag::end(bool done) noexcept {
  waiters_.lock().lock();
  state_.store(done ? done_state : idle, std::memory_order_release);
  // Everyone re-checks: after a failure one of them runs it again.
  (void)waiters_.wake_all();
  waiters_.lock().unlock();
}

}  // namespace spindle
