// The park protocol (sched/park.h): how a fiber or a plain thread waits,
// and how a waker takes it out of its wait and makes it runnable.
//
// States (control_block::state_): a waiter announces `parking`
// (prepare_park), then switches out; the switch publishes it `parked`
// (after_switch), and only then may a waker enqueue it. A waker that comes
// while it is still switching out marks it `notified` and leaves the
// enqueueing to the switch (try_claim's claim::parking), so a fiber is
// never in a run queue while it still runs on its stack. A plain thread
// waits on a condition variable of its own (thread_waiter) instead.
#include "sched/park.h"

#include <condition_variable>
#include <mutex>
#include <thread>

#include "fiber/assert.h"
#include "fiber/this_fiber.h"
#include "sched/detail/runtime.h"
#include "sched/detail/worker.h"
#include "sched/detail/worker_inl.h"

namespace spindle::detail {
namespace {

// A plain thread's stand-in in the park protocol: it waits on a condition
// variable. The waker changes its state and notifies while holding mu_, so
// the thread cannot return from park (and exit, destroying this) before
// the waker is done with it.
class thread_waiter final : public control_block {
 public:
  thread_waiter() noexcept { is_thread_ = true; }
  ~thread_waiter() override = default;
  // Never released: a thread_local that dies with its thread.
  void destroy() noexcept override {}

  std::mutex mu_;
  std::condition_variable cv_;
};

thread_waiter& this_thread_waiter() noexcept {
  thread_local thread_waiter waiter;
  return waiter;
}

}  // namespace

control_block* current_waiter() noexcept {
  if (control_block* cb = tls_current_fiber) return cb;
  return &this_thread_waiter();
}

constinit thread_local std::int64_t tls_coarse_now __attribute__((tls_model("initial-exec"))) = 0;

namespace {
// After a park: the fiber runs again, and waits for nothing.
inline void clear_wait(control_block* self) noexcept {
  self->wait_reason_.store(wait_reason::none, std::memory_order_relaxed);
}
}  // namespace

void prepare_park(control_block* self) noexcept {
  self->state_.store(fiber_state::parking, std::memory_order_relaxed);
}

void cancel_park(control_block* self) noexcept {
  // parking -> running, or notified -> running: a waker that got in first
  // woke a fiber that was not asleep, which is harmless.
  self->state_.store(fiber_state::running, std::memory_order_relaxed);
}

void park(control_block* self) noexcept {
  if (self->is_thread_) {
    auto* t = static_cast<thread_waiter*>(self);
    std::unique_lock lock(t->mu_);
    t->cv_.wait(lock, [t] {
      return t->state_.load(std::memory_order_acquire) != fiber_state::parking;
    });
    t->state_.store(fiber_state::running, std::memory_order_relaxed);
    return;
  }
  self->worker_->park();
  clear_wait(self);
}

bool park_until(control_block* self, std::chrono::steady_clock::time_point deadline) noexcept {
  return park_until(self, deadline, cancel_point::no);
}

bool park_until(control_block* self, std::chrono::steady_clock::time_point deadline,
                cancel_point cp) noexcept {
  if (self->is_thread_) {
    auto* t = static_cast<thread_waiter*>(self);
    std::unique_lock lock(t->mu_);
    while (t->state_.load(std::memory_order_acquire) == fiber_state::parking) {
      if (t->cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
        // Wakers change the state under mu_, which we hold: no race here.
        if (t->state_.load(std::memory_order_acquire) == fiber_state::parking) {
          t->state_.store(fiber_state::running, std::memory_order_relaxed);
          return false;
        }
      }
    }
    t->state_.store(fiber_state::running, std::memory_order_relaxed);
    return true;
  }
  const bool woken = self->worker_->park_until(deadline, cp == cancel_point::yes);
  clear_wait(self);
  return woken;
}

void park_commit(control_block* self, void (*commit)(void*), void* arg) noexcept {
  if (self->is_thread_) {
    prepare_park(self);
    commit(arg);
    park(self);
    return;
  }
  self->worker_->park_commit(commit, arg);
  clear_wait(self);
}

bool park_commit_until(control_block* self, std::chrono::steady_clock::time_point deadline,
                       void (*commit)(void*), void* arg, cancel_point cp) noexcept {
  if (self->is_thread_) {
    prepare_park(self);
    commit(arg);
    return park_until(self, deadline);
  }
  const bool woken =
      self->worker_->park_commit_until(deadline, commit, arg, cp == cancel_point::yes);
  clear_wait(self);
  return woken;
}

switch_target park_commit_begin(control_block* self, void (*commit)(void*), void* arg) noexcept {
#if SPINDLE_ASAN || SPINDLE_TSAN
  // As in yield_begin(): no inline switch in sanitizer builds.
  park_commit(self, commit, arg);
  return {};
#else
  if (self->is_thread_) {
    park_commit(self, commit, arg);
    return {};
  }
  control_block* next = self->worker_->park_commit_begin(commit, arg);
  return {next->ctx_, next};
#endif
}

void park_end(void* from_ctx) noexcept {
  // No clear_wait(): the inline park is a channel's, which always notes
  // its reason first.
  tls_current_fiber->worker_->after_switch_inline(from_ctx);
}

void unpark_sole(control_block* cb) noexcept {
  if (cb->is_thread_) {
    (void)wake(cb, wake_order::next);
    return;
  }
  // Parked (park_commit() published that before its commit let us find
  // it), and we are its only waker: the transition is ours without a CAS.
  SPINDLE_ASSERT(cb->state_.load(std::memory_order_relaxed) == fiber_state::parked);
  cb->state_.store(fiber_state::runnable, std::memory_order_relaxed);
  make_runnable(cb, wake_order::next);
}

bool parallel_workers() noexcept {
  const control_block* self = tls_current_fiber;
  return self == nullptr || self->worker_->rt().worker_count() > 1;
}

// ---- this_fiber::yield() (fiber/this_fiber.h) ----

void yield_slow() noexcept {
  if (control_block* self = tls_current_fiber) {
    self->worker_->yield();
  } else {
    std::this_thread::yield();
  }
}

yield_target yield_begin() noexcept {
#if SPINDLE_ASAN || SPINDLE_TSAN
  // The sanitizers' switch annotations must sit next to the jump, in one
  // function: no inline switch.
  yield_slow();
  return {};
#else
  control_block* self = tls_current_fiber;
  if (self == nullptr) {
    std::this_thread::yield();
    return {};
  }
  control_block* next = self->worker_->yield_begin();
  if (next == nullptr) return {};
  return {next->ctx_, next};
#endif
}

void yield_end(void* from_ctx) noexcept {
  // The fiber resumed: whoever switched to it made it the thread's current
  // fiber and wrote its worker into it.
  tls_current_fiber->worker_->after_switch_inline(from_ctx);
}

bool unpark(control_block* cb) noexcept { return wake(cb, wake_order::next); }

bool wake(control_block* cb, wake_order order) noexcept {
  if (cb->is_thread_) {
    auto* t = static_cast<thread_waiter*>(cb);
    std::lock_guard lock(t->mu_);
    fiber_state expected = fiber_state::parking;
    if (!t->state_.compare_exchange_strong(expected, fiber_state::notified,
                                           std::memory_order_acq_rel)) {
      return false;
    }
    t->cv_.notify_one();
    return true;
  }
  switch (try_claim(cb)) {
    case claim::none:
      return false;  // not waiting, or someone else already woke it
    case claim::parking:
      return true;  // still switching out: whoever completes the switch enqueues it
    case claim::parked:
      make_runnable(cb, order);  // we won the transition: we alone enqueue it
      return true;
  }
  return false;
}

}  // namespace spindle::detail
