#include "sync/once.h"

#include "sync/detail/parking_lot.h"

namespace spindle {

bool once_flag::begin() noexcept {
  for (;;) {
    int s = state_.load(std::memory_order_acquire);
    if (s == done_state) return false;
    if (s == idle) {
      if (state_.compare_exchange_weak(s, running, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return true;
      }
      continue;
    }
    // running: wait for the outcome.
    (void)detail::park_on(
        &state_, [this] { return state_.load(std::memory_order_relaxed) == running; }, nullptr,
        detail::wait_reason::once);
  }
}

void once_flag::end(bool done) noexcept {
  state_.store(done ? done_state : idle, std::memory_order_release);
  // Everyone re-checks: after a failure one of them runs it again. Not one
  // more touch of the flag: a caller that sees it done may destroy it.
  (void)detail::unpark_address(&state_);
}

}  // namespace spindle
