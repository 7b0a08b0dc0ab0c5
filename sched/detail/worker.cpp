// Workers and the park/unpark protocol.
//
// A worker is an OS thread with a run queue and a libev loop of its own
// (ev_loop_new, never the default loop, which belongs to the application).
// Its thread stack runs the worker's loop; fibers run on their own stacks.
//
// Switching. A fiber that suspends (yield, park, finish) picks the next
// runnable fiber itself and switches straight to it: one context switch per
// hand-over, as Boost.Fiber does, instead of two through the worker's loop
// (the rejected design: marl-style "always return to the scheduler", which
// doubles the cost of yield). It switches to the loop context only when the
// run queue is empty or a poll of libev is due.
//
// Publish after switch. A fiber must not become visible as parked (or be
// put in a run queue) while it is still running on its stack: another
// worker could resume it on two threads at once (Boost.Fiber #212, #251,
// Photon #1598). So the switching context only records what should happen
// to it (pending_from_, pending_action_), and the context switched TO does
// it, in after_switch(), once the old stack is no longer in use. The
// context to save comes back as the result of jump() (or as the argument
// of a new fiber's entry function), the same way in every case. A fiber
// that ends makes one last jump and never comes back; the context it
// jumped to releases its control block, and with it the stack.
//
// Fairness. Fibers that keep handing the worker to each other never pass
// through the loop, so timers and I/O readiness would starve. Every
// poll_check_interval switches the worker reads the clock, and if
// max_poll_interval has passed since libev was last polled, it goes
// through the loop, which polls without blocking before running the next
// fiber.
//
// Idle. A worker with nothing to run blocks in ev_run(EVRUN_ONCE): no
// spinning. Other threads wake it with ev_async_send(), only when its
// sleeping_ flag says it may be blocked (libev coalesces sends).
#include "sched/detail/worker.h"

#include <cxxabi.h>
#include <ev.h>

#include <cassert>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <system_error>

#include "fiber/detail/overflow.h"
#include "fiber/detail/sanitizer.h"
#include "sched/park.h"

namespace spindle::detail {
namespace {

thread_local worker* tls_worker __attribute__((tls_model("initial-exec"))) = nullptr;

// How often (in switches) a fiber-to-fiber hand-over checks the clock to
// see whether libev is due a poll; a power of two so the check is a mask.
// Reading steady_clock costs ~20 ns (vDSO), a switch ~10 ns: checking every
// 32 switches keeps the check under 10% of the cheapest hand-over.
constexpr std::uint32_t poll_check_interval = 32;

// The longest a worker busy with fibers goes without polling libev: bounds
// how late a timer or an I/O readiness is noticed. An epoll_wait without
// timeout costs ~1 us here, so polling this often costs ~1% of the worker.
constexpr auto max_poll_interval = std::chrono::microseconds(100);

// The worker thread's own stack, as a control block to switch back to.
class loop_context final : public control_block {
 public:
  ~loop_context() override = default;

 protected:
  void destroy() noexcept override { delete this; }  // not on a fiber stack
};

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

// A parked fiber's deadline; lives on the parked fiber's stack.
struct timer_node {
  ev_timer timer;
  control_block* cb;
  bool fired;  // the timer's unpark() was the one that woke the fiber
};

void on_timer(struct ev_loop*, ev_timer* w, int) {
  auto* node = static_cast<timer_node*>(w->data);
  node->fired = unpark(node->cb);
}

void on_async(struct ev_loop*, ev_async*, int) {
  // Nothing: the loop drains the inbox after every ev_run.
}

// The layout of __cxa_eh_globals fixed by the Itanium C++ ABI (2.5.2);
// <cxxabi.h> declares the type but not its members.
struct eh_globals {
  void* caught_exceptions;
  unsigned int uncaught_exceptions;
};

// Moves the thread's exception state from the context switching away into
// its control block, and the target's into the thread. `g` is the worker
// thread's __cxa_eh_globals, looked up once per worker (the lookup goes
// through __tls_get_addr). Invariant: a running context's eh_ fields are
// zero, so the common case (no exception anywhere) writes nothing.
inline void swap_exception_state(eh_globals* g, control_block* from, control_block* to) noexcept {
  void* caught = g->caught_exceptions;
  const unsigned int uncaught = g->uncaught_exceptions;
  if ((caught != nullptr) | (uncaught != 0) | (to->eh_caught_ != nullptr) |
      (to->eh_uncaught_ != 0)) [[unlikely]] {
    if (from != nullptr) {
      from->eh_caught_ = caught;
      from->eh_uncaught_ = uncaught;
    }
    g->caught_exceptions = to->eh_caught_;
    g->uncaught_exceptions = to->eh_uncaught_;
    to->eh_caught_ = nullptr;
    to->eh_uncaught_ = 0;
  }
}

const void* stack_bottom(const control_block* cb, bool is_loop) noexcept {
  return is_loop ? cb->asan_stack_bottom_ : cb->stack_.limit();
}
std::size_t stack_extent(const control_block* cb, bool is_loop) noexcept {
  return is_loop ? cb->asan_stack_size_ : cb->stack_.size();
}

}  // namespace

__attribute__((noinline)) worker* this_worker() noexcept {
  worker* w = tls_worker;
  // Keep the compiler from treating the TLS read as invariant.
  asm volatile("" : "+r"(w));
  return w;
}

worker::worker(runtime& rt, unsigned index)
    : loop_cb_(new loop_context), rt_(rt), index_(index), async_(std::make_unique<ev_async>()) {
  // EVFLAG_NOSIGMASK: signals are not libev's business here (spindle's
  // signal channel, in io/, uses its own loop).
  loop_ = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
  if (loop_ == nullptr) {
    loop_cb_->release();
    throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                            "spindle: cannot create a libev loop for a worker");
  }
  ev_async_init(async_.get(), on_async);
  ev_async_start(loop_, async_.get());
  loop_cb_->state_.store(fiber_state::running, std::memory_order_relaxed);
}

worker::~worker() {
  ev_async_stop(loop_, async_.get());
  ev_loop_destroy(loop_);
  loop_cb_->release();
}

void worker::loop() noexcept {
  tls_worker = this;
  eh_globals_ = abi::__cxa_get_globals();
  alt_signal_stack alt_stack;
  current_ = loop_cb_;
  loop_cb_->tsan_fiber_ = tsan_current_fiber();
  last_poll_ = std::chrono::steady_clock::now();
  for (;;) {
    drain_inbox();
    if (poll_due_) poll_events(false);
    if (control_block* next = run_queue_.pop_front()) {
      switch_to(loop_cb_, next, switch_action::save);
      continue;
    }
    if (rt_.stopping()) break;
    poll_events(true);
  }
  tls_worker = nullptr;
}

void worker::poll_events(bool block) noexcept {
  if (block) {
    // Dekker-style handshake with schedule_remote(): either we see its
    // inbox_nonempty_, or it sees our sleeping_ and sends the async.
    sleeping_.store(true, std::memory_order_seq_cst);
    if (!inbox_nonempty_.load(std::memory_order_seq_cst) && !rt_.stopping()) {
      ev_run(loop_, EVRUN_ONCE);
    }
    sleeping_.store(false, std::memory_order_relaxed);
  } else {
    ev_run(loop_, EVRUN_NOWAIT);
  }
  last_poll_ = std::chrono::steady_clock::now();
  poll_due_ = false;
  switches_since_check_ = 0;
}

bool worker::drain_inbox() noexcept {
  if (!inbox_nonempty_.load(std::memory_order_relaxed)) return false;
  control_block* first;
  control_block* last;
  {
    std::lock_guard lock(inbox_mu_);
    first = inbox_head_;
    last = inbox_tail_;
    inbox_head_ = inbox_tail_ = nullptr;
    inbox_nonempty_.store(false, std::memory_order_relaxed);
  }
  run_queue_.splice_back(first, last);
  return first != nullptr;
}

void worker::schedule_remote(control_block* cb) noexcept {
  cb->next_ = nullptr;
  {
    std::lock_guard lock(inbox_mu_);
    if (inbox_tail_ != nullptr) {
      inbox_tail_->next_ = cb;
    } else {
      inbox_head_ = cb;
    }
    inbox_tail_ = cb;
    inbox_nonempty_.store(true, std::memory_order_seq_cst);
  }
  if (sleeping_.load(std::memory_order_seq_cst)) wake();
}

void worker::wake() noexcept { ev_async_send(loop_, async_.get()); }

control_block* worker::pick_next() noexcept {
  if (inbox_nonempty_.load(std::memory_order_relaxed)) drain_inbox();
  if (++switches_since_check_ >= poll_check_interval) [[unlikely]] {
    switches_since_check_ = 0;
    if (std::chrono::steady_clock::now() - last_poll_ >= max_poll_interval) {
      poll_due_ = true;
      return nullptr;
    }
  }
  return run_queue_.pop_front();
}

inline void worker::switch_to(control_block* from, control_block* to, switch_action action) noexcept {
  const bool to_loop = to == loop_cb_;
  if (from->check_canary_) [[unlikely]] check_canary(from);
  pending_from_ = from;
  pending_action_ = action;
  current_ = to;
  tls_current_fiber = to_loop ? nullptr : to;
  if (!to_loop) {
    to->worker_ = this;
    to->state_.store(fiber_state::running, std::memory_order_relaxed);
  }
  swap_exception_state(static_cast<eh_globals*>(eh_globals_), from, to);
  asan_start_switch(&from->asan_fake_stack_, stack_bottom(to, to_loop), stack_extent(to, to_loop));
  tsan_switch_to(to->tsan_fiber_);
  void* from_ctx = jump(to->ctx_, to).fctx;
  // Back on `from`'s stack, possibly on another worker's thread: `this`
  // may be stale. The worker that resumed a fiber wrote itself into the
  // fiber's worker_ first; the loop context never moves. (Not a
  // thread_local read: a compiler may keep a thread_local's address across
  // this call, which is wrong once the fiber has migrated.)
  worker* w = from == loop_cb_ ? this : from->worker_;
  w->after_switch_inline(from_ctx);
}

void worker::after_switch(void* from_ctx) noexcept { after_switch_inline(from_ctx); }

inline void worker::after_switch_inline(void* from_ctx) noexcept {
  const void* previous_bottom = nullptr;
  std::size_t previous_size = 0;
  asan_finish_switch(current_->asan_fake_stack_, &previous_bottom, &previous_size);
  control_block* from = pending_from_;
  if (from == loop_cb_ && loop_cb_->asan_stack_bottom_ == nullptr) {
    // The first switch away from the thread's own stack tells us its extent.
    loop_cb_->asan_stack_bottom_ = previous_bottom;
    loop_cb_->asan_stack_size_ = previous_size;
  }
  switch (pending_action_) {
    case switch_action::save:
      from->ctx_ = from_ctx;
      break;
    case switch_action::yield:
      from->ctx_ = from_ctx;
      from->state_.store(fiber_state::runnable, std::memory_order_relaxed);
      run_queue_.push_back(from);
      break;
    case switch_action::park: {
      from->ctx_ = from_ctx;
      // From here an unpark() may take it (the release publishes the
      // saved continuation to the unparker, and through its run queue to
      // the worker that resumes it).
      fiber_state expected = fiber_state::parking;
      if (!from->state_.compare_exchange_strong(expected, fiber_state::parked,
                                                std::memory_order_acq_rel,
                                                std::memory_order_acquire)) {
        // An unpark() came while it was switching out (parking ->
        // notified): that waker left the enqueueing to us.
        assert(expected == fiber_state::notified);
        from->state_.store(fiber_state::runnable, std::memory_order_relaxed);
        run_queue_.push_back(from);
      }
      break;
    }
    case switch_action::finish:
      // Its stack is no longer in use: the fiber's own reference can go
      // (with the stack, unless a handle still holds the control block).
      tsan_destroy_fiber(from->tsan_fiber_);
      from->release();
      break;
  }
}

void worker::yield() noexcept {
  control_block* self = current_;
  control_block* next = pick_next();
  if (next == nullptr) {
    if (!poll_due_) return;  // nothing else is runnable: carry on
    next = loop_cb_;
  }
  switch_to(self, next, switch_action::yield);
}

void worker::park() noexcept {
  control_block* self = current_;
  control_block* next = pick_next();
  switch_to(self, next != nullptr ? next : loop_cb_, switch_action::park);
}

bool worker::park_until(std::chrono::steady_clock::time_point deadline) noexcept {
  timer_node node;
  node.cb = current_;
  node.fired = false;
  ev_now_update(loop_);  // ev_now is stale after running fibers for a while
  const double after = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
  ev_timer_init(&node.timer, on_timer, after > 0 ? after : 0.0, 0.0);
  node.timer.data = &node;
  ev_timer_start(loop_, &node.timer);
  control_block* self = node.cb;
  park();
  // A fiber resumes on the worker it parked on (wakes go to its worker_),
  // so the timer is stopped by the loop it was started on.
  worker* w = self->worker_;
  assert(w == this);
  ev_timer_stop(w->loop_, &node.timer);
  return !node.fired;
}

control_block* worker::finish_current() noexcept {
  control_block* self = current_;
  if (self->check_canary_) [[unlikely]] check_canary(self);
  control_block* next = pick_next();
  if (next == nullptr) next = loop_cb_;
  const bool to_loop = next == loop_cb_;
  pending_from_ = self;
  pending_action_ = switch_action::finish;
  current_ = next;
  tls_current_fiber = to_loop ? nullptr : next;
  if (!to_loop) {
    next->worker_ = this;
    next->state_.store(fiber_state::running, std::memory_order_relaxed);
  }
  // A finished fiber handles no exception: nothing to save.
  swap_exception_state(static_cast<eh_globals*>(eh_globals_), nullptr, next);
  return next;
}


// ---- The park protocol (sched/park.h) ----

control_block* current_waiter() noexcept {
  if (control_block* cb = tls_current_fiber) return cb;
  return &this_thread_waiter();
}

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
}

bool park_until(control_block* self, std::chrono::steady_clock::time_point deadline) noexcept {
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
  return self->worker_->park_until(deadline);
}

void yield_current() noexcept { tls_current_fiber->worker_->yield(); }

bool unpark(control_block* cb) noexcept {
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
  fiber_state s = cb->state_.load(std::memory_order_acquire);
  for (;;) {
    if (s == fiber_state::parking) {
      // Still switching out: whoever completes the switch enqueues it.
      if (cb->state_.compare_exchange_weak(s, fiber_state::notified, std::memory_order_acq_rel,
                                           std::memory_order_acquire)) {
        return true;
      }
    } else if (s == fiber_state::parked) {
      if (cb->state_.compare_exchange_weak(s, fiber_state::runnable, std::memory_order_acq_rel,
                                           std::memory_order_acquire)) {
        // We won the transition: we alone enqueue it, on its own worker.
        worker* target = cb->worker_;
        if (target == this_worker()) {
          target->schedule_local(cb);
        } else {
          target->schedule_remote(cb);
        }
        return true;
      }
    } else {
      return false;  // not waiting, or someone else already woke it
    }
  }
}

}  // namespace spindle::detail
