// The worker's hot path, inline: picking the next fiber, the switch and
// what follows it, and the first halves of the inline yield and park.
// Shared by worker.cpp (the loop, stealing, timers) and park.cpp (the
// park protocol of sched/park.h), which both switch; one definition, so
// that moving the park protocol out of worker.cpp cost no call on its
// path. Internal to sched/detail; include it only from .cpp files.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "fiber/assert.h"
#include "fiber/detail/overflow.h"
#include "fiber/detail/sanitizer.h"
#include "sched/detail/runtime.h"
#include "sched/detail/worker.h"
#include "sched/park.h"

namespace spindle::detail {

// How often (in switches) a fiber-to-fiber hand-over checks the clock to
// see whether libev is due a poll; a power of two so the check is a mask.
// Reading steady_clock costs 30-40 ns on the project's VM (vDSO), a yield
// ~23 ns: checking every 128 switches keeps the check near 1% of the
// cheapest hand-over (every 32 cost 5% of BM_Yield, by perf).
inline constexpr std::uint32_t poll_check_interval = 128;

// The longest a worker busy with fibers goes without polling libev: bounds
// how late a timer or an I/O readiness is noticed. An epoll_wait without
// timeout costs ~1 us here, so polling this often costs ~1% of the worker.
inline constexpr auto max_poll_interval = std::chrono::microseconds(100);

// Every this many picks the worker serves the runtime's shared queue before
// its own ring, so fibers that overflowed there are not starved (Go: 61,
// "prime, so as not to correlate with user patterns").
inline constexpr std::uint32_t shared_queue_interval = 61;

// The most consecutive runnext picks before the ring gets a turn: two
// fibers that hand the worker to each other through runnext would
// otherwise starve the ring for ever. Go bounds the same streak by a time
// slice; a count is cheaper than a clock read, and 61 (prime, as
// shared_queue_interval, so that the two turns do not fall into step with
// each other or with a program's own period) keeps the ring's wait at a
// few microseconds at ~25 ns a hand-over.
inline constexpr std::uint32_t runnext_max_streak = 61;

// The outcome of trying to take a waiter out of its park.
enum class claim : std::uint8_t {
  none,     // not parking, or someone else already woke it
  parking,  // it had not switched out yet: the switcher will enqueue it
  parked,   // it was parked: the claimer must enqueue it
};

inline claim try_claim(control_block* cb) noexcept {
  fiber_state s = cb->state_.load(std::memory_order_acquire);
  for (;;) {
    if (s == fiber_state::parking) {
      if (cb->state_.compare_exchange_weak(s, fiber_state::notified, std::memory_order_acq_rel,
                                           std::memory_order_acquire)) {
        return claim::parking;
      }
    } else if (s == fiber_state::parked) {
      if (cb->state_.compare_exchange_weak(s, fiber_state::runnable, std::memory_order_acq_rel,
                                           std::memory_order_acquire)) {
        return claim::parked;
      }
    } else {
      return claim::none;
    }
  }
}

// The firer of a cancelled wait's node (see timer_heap::cancel), under the
// heap's lock: claims the fiber as a timer would; returns it if the caller
// must enqueue it (after letting go of the lock).
inline control_block* claim_cancelled(timer_node* n) noexcept {
  const claim c = try_claim(n->cb);
  if (c == claim::none) return nullptr;  // woken by someone else first
  n->fired = true;
  return c == claim::parked ? n->cb : nullptr;
}

// make_runnable() enqueues a fiber whose transition to runnable the caller
// won. With wake_order::next, a fiber woken by a fiber on this worker runs
// as soon as the waker blocks (see worker::enqueue). Any thread.
inline void make_runnable(control_block* cb, wake_order order) noexcept {
  const bool next = order == wake_order::next;
  worker* self = this_worker();
  worker* home = cb->worker_;
  if (self != nullptr && &self->rt() == &home->rt() &&
      (self == home || (cb->pinned_ == 0 && cb->loop_wait_ == nullptr))) {
    self->enqueue(cb, next);
    // Runnable work that nobody else may take for a while: if a worker
    // idles, let it look (Go's ready() calls wakep()).
    if (next) self->rt().wake_idle_worker();
  } else {
    home->schedule_remote(cb);
  }
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

inline const void* stack_bottom(const control_block* cb, bool is_loop) noexcept {
  return is_loop ? cb->asan_stack_bottom_ : cb->stack_.limit();
}

inline std::size_t stack_extent(const control_block* cb, bool is_loop) noexcept {
  return is_loop ? cb->asan_stack_size_ : cb->stack_.size();
}

inline void worker::prefetch_next() noexcept {
  // With many connections, every fiber a worker resumes has gone cold
  // since it parked: its control block, and the stack frames it returns
  // through (about 500 bytes from its saved stack pointer up, for a fiber
  // parked in a socket read). A callback server touches one small struct
  // per event; this is the fiber model's extra memory traffic. Prefetched
  // one fiber ahead (its control block two ahead, to read its ctx_), the
  // misses overlap with running the current fiber. Measured with
  // bench/run_echo_pairs.sh at 1000 connections: one worker went from 0.76
  // to 0.84 of libev's throughput. Only when alone_: with thieves about,
  // a fiber in the ring may be running elsewhere, and reading its ctx_
  // would race with its switches.
  if (control_block* second = ring_.peek(1)) __builtin_prefetch(second);
  if (control_block* first = ring_.peek(0)) {
    // Its frames lie between its saved stack pointer and its control
    // block (at the top of its stack); not beyond, where the next stack's
    // guard page may be (measured: prefetching past it made spawning and
    // joining 1000 fresh fibers 2.3x slower).
    const char* sp = static_cast<const char*>(first->ctx_);
    const char* end = std::min(sp + 512, reinterpret_cast<const char*>(first));
    for (; sp < end; sp += 64) __builtin_prefetch(sp);
  }
}

inline control_block* worker::take_runnext(bool alone) noexcept {
  if (alone) {
    control_block* cb = runnext_.load(std::memory_order_relaxed);
    runnext_.store(nullptr, std::memory_order_relaxed);
    return cb;
  }
  return runnext_.exchange(nullptr, std::memory_order_acq_rel);
}

inline control_block* worker::pop_local() noexcept {
  const bool alone = enter_alone_region();
  control_block* cb = pop_local_in_region(alone);
  leave_alone_region();
  return cb;
}

inline control_block* worker::pop_local_in_region(bool alone) noexcept {
  // runnext_ first, up to a streak (see runnext_streak_).
  if (runnext_.load(std::memory_order_relaxed) != nullptr && runnext_streak_ < runnext_max_streak) {
    if (control_block* cb = take_runnext(alone)) {
      ++runnext_streak_;
      return cb;
    }
  }
  runnext_streak_ = 0;
  ++picks_;
  if (!pinned_.empty() && (picks_ & 1) != 0) return pinned_.pop_front();
  if (--shared_countdown_ == 0) [[unlikely]] {
    shared_countdown_ = shared_queue_interval;
    if (rt_.shared_nonempty()) {
      if (control_block* cb = take_shared()) return cb;
    }
  }
  if (alone) {
    std::uint32_t left;
    if (control_block* cb = ring_.pop_unshared(&left)) {
      if (left >= 2) prefetch_next();  // not for two fibers taking turns
      return cb;
    }
  } else if (control_block* cb = ring_.pop()) {
    return cb;
  }
  if (!overflow_.empty()) return pop_overflow();
  if (!pinned_.empty()) return pinned_.pop_front();
  if (rt_.shared_nonempty()) {
    if (control_block* cb = take_shared()) return cb;
  }
  return take_runnext(alone);
}

inline control_block* worker::pick_next() noexcept {
  if (inbox_nonempty_.load(std::memory_order_relaxed)) drain_inbox();
  if (++switches_since_check_ >= poll_check_interval) [[unlikely]] {
    switches_since_check_ = 0;
    if (std::chrono::steady_clock::now() - last_poll_ >= max_poll_interval) {
      poll_due_ = true;
      return nullptr;
    }
  }
  return pop_local();
}

inline void worker::prepare_switch(control_block* from, control_block* to,
                                   switch_action action) noexcept {
  tsan_block_signals();  // until after_switch_inline (see fiber/detail/sanitizer.h)
  const bool to_loop = to == loop_cb_;
  if (from->check_canary_) [[unlikely]] check_canary(from);
  pending_from_ = from;
  pending_action_ = action;
  current_ = to;
  switches_.store(switches_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  tls_current_fiber = to_loop ? nullptr : to;
  if (!to_loop) {
    to->worker_ = this;
    to->state_.store(fiber_state::running, std::memory_order_relaxed);
  }
  swap_exception_state(static_cast<eh_globals*>(eh_globals_), from, to);
  asan_start_switch(&from->asan_fake_stack_, stack_bottom(to, to_loop), stack_extent(to, to_loop));
  tsan_switch_to(to->tsan_fiber_);
}

inline void worker::switch_to(control_block* from, control_block* to, switch_action action) noexcept {
  prepare_switch(from, to, action);
  void* from_ctx = jump(to->ctx_, to).fctx;
  // Back on `from`'s stack, possibly on another worker's thread: `this`
  // may be stale. The worker that resumed a fiber wrote itself into the
  // fiber's worker_ first; the loop context never moves. (Not a
  // thread_local read: a compiler may keep a thread_local's address across
  // this call, which is wrong once the fiber has migrated.)
  worker* w = from == loop_cb_ ? this : from->worker_;
  w->after_switch_inline(from_ctx);
}

inline void worker::after_switch_inline(void* from_ctx) noexcept {
  const void* previous_bottom = nullptr;
  std::size_t previous_size = 0;
  asan_finish_switch(current_->asan_fake_stack_, &previous_bottom, &previous_size);
  tsan_restore_signals();
  control_block* from = pending_from_;
  if (from == loop_cb_ && loop_cb_->asan_stack_bottom_ == nullptr) {
    // The first switch away from the thread's own stack tells us its extent.
    loop_cb_->asan_stack_bottom_ = previous_bottom;
    loop_cb_->asan_stack_size_ = previous_size;
  }
  // The two actions of the hot paths first, by compare and branch: as
  // one switch the compiler makes a jump table, whose indirect jump made
  // BM_Yield (bench/fiber/fiber_bench.cpp) 45-47 ns against 43 ns, in
  // alternating runs on a machine in its slow state.
  if (pending_action_ == switch_action::yield) [[likely]] {
    from->ctx_ = from_ctx;
    from->state_.store(fiber_state::runnable, std::memory_order_relaxed);
    enqueue(from);
    return;
  }
  if (pending_action_ == switch_action::park_commit) {
    from->ctx_ = from_ctx;
    // Nobody could wake it yet: its wakers find it only once the commit
    // has run (typically: unlocked the lock they look for it under). The
    // release publishes the saved continuation to them.
    from->state_.store(fiber_state::parked, std::memory_order_release);
    if (timer_node* t = pending_timer_; t != nullptr) [[unlikely]] {
      // Parked already, so a firer on another worker can claim it. Before
      // the commit: wakers find the fiber only after it, and by then the
      // fiber may have run and left, node and all. (A timer due at once
      // may resume the fiber elsewhere before the commit has run; it then
      // waits for whatever the commit releases, briefly.) A wait that a
      // stop request cancelled before it got here fires instead.
      pending_timer_ = nullptr;
      const auto when = t->when.time_since_epoch().count();  // *t may go once added
      control_block* wake = nullptr;
      if (timers_.add_or_fire(t, [&wake](timer_node* n) { wake = claim_cancelled(n); })) {
        rt_.timer_added(when);
      }
      if (wake != nullptr) make_runnable(wake, wake_order::queued);
    }
    pending_commit_(pending_commit_arg_);
    return;
  }
  switch (pending_action_) {
    case switch_action::save:
      from->ctx_ = from_ctx;
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
        SPINDLE_ASSERT(expected == fiber_state::notified);
        from->state_.store(fiber_state::runnable, std::memory_order_relaxed);
        enqueue(from);
      }
      break;
    }
    case switch_action::yield:
    case switch_action::park_commit:
      break;  // above
    case switch_action::finish:
      // Its stack is no longer in use: the fiber's own reference can go
      // (with the stack, unless a handle still holds the control block).
      tsan_destroy_fiber(from->tsan_fiber_);
      from->release();
      break;
  }
}

inline control_block* worker::yield_begin() noexcept {
  control_block* self = current_;
  control_block* next = pick_next();
  if (next == nullptr) {
    if (!poll_due_) return nullptr;
    next = loop_cb_;
  }
  prepare_switch(self, next, switch_action::yield);
  return next;
}

inline control_block* worker::park_commit_begin(void (*commit)(void*), void* arg) noexcept {
  control_block* self = current_;
  control_block* next = pick_next();
  if (next == nullptr) next = loop_cb_;
  pending_commit_ = commit;
  pending_commit_arg_ = arg;
  prepare_switch(self, next, switch_action::park_commit);
  return next;
}

}  // namespace spindle::detail
