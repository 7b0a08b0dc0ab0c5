// A queue of parked waiters guarded by a tiny spinlock, kept inside the
// primitive: the building block of condition variables and wait groups
// (shared mutexes and channels use its pieces). Primitives that may be destroyed
// by someone who never parked park by address instead (parking_lot.h).
// Internal.
//
// The protocol is the futex one, with fibers (or plain threads) parked
// through sched/park.h instead of sleeping in the kernel:
//
//   waiter:  lock; if (the condition to wait still holds) { enqueue self;
//            prepare_park; unlock; park } else unlock
//   waker:   change the state; lock; dequeue a waiter and unpark it; unlock
//
// Because the waiter checks the state and enqueues itself under the same
// lock the waker dequeues under, a wake cannot fall between the check and
// the park (no lost wakeup). A waiter that gives up (a timed wait) removes
// itself under the lock; if a waker dequeued it first, the waker's unpark()
// failed (the timer had claimed the waiter) and the waker passed the wake
// on to the next waiter, so no wake is lost either. The waker unparks while
// it holds the lock: a timed-out waiter cannot get past the lock, return,
// and let its fiber (and the control block the waker is touching) die
// while the waker is still at work.
//
// A woken waiter never touches the primitive again: the waker, once it has
// let go of the lock, sets the waiter's `released` flag, its last touch of
// the waiter, and the woken waits for that flag on its own stack (normally
// set before it even runs) rather than for the lock. So the primitive may
// be destroyed as soon as every waiter has been woken, before any of them
// has returned: what std allows for a condition variable ("only the
// notification to unblock the wait needs to happen before destruction",
// [thread.condition.condvar]), and what lets any waiter of a wait_group
// destroy it as its wait() returns. Channels hand off the same way
// (channel_waiter).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>

#include "fiber/thread_annotations.h"
#include "sched/park.h"

namespace spindle::detail {

// A lock for critical sections of a few instructions (a queue of waiters,
// a channel's buffer). Never held across a park.
//
// Uncontended it costs one exchange to take and a plain store to release.
// A waiter spins a little and then sleeps on a futex, as the Go runtime's
// lock does. Sleeping matters when several workers hammer one lock (four
// producers and four consumers on one channel, say): spinning waiters keep
// pulling the lock's cache line, and the data next to it, away from the
// holder, and every operation pays for several cache-line transfers. With
// waiters asleep the holder's worker runs a burst of operations on lines
// it already owns. Measured with bench/sync/sync_bench.cpp on 2 workers:
// 4x4 buffered channel 130 ns an item with spinning, 47 ns with sleeping.
//
// The unlocker wakes a sleeper only if it saw one (state 2) before its
// store: a waiter that marks itself in the moment between that load and
// the store can miss its wake, so sleeps are bounded (max_sleep), and a
// waiter whose futex word changed before it slept does not sleep at all.
class SPINDLE_CAPABILITY("spinlock") spinlock {
 public:
  void lock() noexcept SPINDLE_ACQUIRE() {
    std::uint32_t expected = 0;
    if (state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) [[likely]] {
      return;
    }
    lock_contended();
  }
  bool try_lock() noexcept SPINDLE_TRY_ACQUIRE(true) {
    std::uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  void unlock() noexcept SPINDLE_RELEASE() {
    const std::uint32_t s = state_.load(std::memory_order_relaxed);
    state_.store(0, std::memory_order_release);
    if (s == 2) [[unlikely]] wake_one();
  }

 private:
  void lock_contended() noexcept;
  void wake_one() noexcept;

  // 0: free; 1: held; 2: held, and a waiter may be asleep.
  std::atomic<std::uint32_t> state_{0};
};

// await_released() returns once `released` is true: the woken side of a
// hand-off whose waker lets go of the primitive and then sets the flag, as
// its last touch (queue_node, channel_waiter). Normally already set.
void await_released_slow(const std::atomic<bool>& released) noexcept;
inline void await_released(const std::atomic<bool>& released) noexcept {
  if (!released.load(std::memory_order_acquire)) [[unlikely]] await_released_slow(released);
}

// A waiter's place in a queue; lives on the waiter's stack while it waits.
struct wait_node {
  control_block* waiter = nullptr;
  wait_node* next = nullptr;
  wait_node* prev = nullptr;
  bool queued = false;
  // Free for the primitive's use (a value handed over by a channel, ...).
  void* payload = nullptr;
  // What it waits on, in a parking_bucket (parking_lot.h).
  const void* key = nullptr;
};

// waiter_census counts the waiters of each primitive, for tests
// (waiter_census.h); the primitives befriend it.
struct waiter_census;

// FIFO of wait_nodes. Every member must be called with the lock held
// that guards the list: declare it SPINDLE_GUARDED_BY that lock, and the
// analysis checks each call.
class wait_list {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  wait_node* front() const noexcept { return head_; }
  // How many are queued: walks the list (for diagnostics).
  std::size_t size() const noexcept {
    std::size_t n = 0;
    for (const wait_node* w = head_; w != nullptr; w = w->next) ++n;
    return n;
  }
  void push_back(wait_node* n) noexcept {
    n->next = nullptr;
    n->prev = tail_;
    if (tail_ != nullptr) {
      tail_->next = n;
    } else {
      head_ = n;
    }
    tail_ = n;
    n->queued = true;
  }
  wait_node* pop_front() noexcept {
    wait_node* n = head_;
    if (n != nullptr) remove(n);
    return n;
  }
  void remove(wait_node* n) noexcept {
    if (n->prev != nullptr) {
      n->prev->next = n->next;
    } else {
      head_ = n->next;
    }
    if (n->next != nullptr) {
      n->next->prev = n->prev;
    } else {
      tail_ = n->prev;
    }
    n->next = n->prev = nullptr;
    n->queued = false;
  }

 private:
  wait_node* head_ = nullptr;
  wait_node* tail_ = nullptr;
};

// A waiter's place in a wait_queue.
struct queue_node : wait_node {
  std::atomic<bool> released{false};  // the waker is done with us (see the top)
  queue_node* next_woken = nullptr;   // wake_all(): the others it woke
};

// wait_queue: a wait_list with its lock and the park/wake steps.
class wait_queue {
 public:
  spinlock& lock() const noexcept SPINDLE_RETURN_CAPABILITY(lock_) { return lock_; }

  // enqueue() registers the caller, which holds lock(), as a waiter and
  // releases the lock; from here a wake may come at any moment, and the
  // caller must then call park_enqueued() or park_enqueued_until() (doing
  // in between whatever must happen after it is registered, such as
  // releasing the mutex of a condition variable). `node` must outlive the
  // wait (put it on the caller's stack).
  void enqueue(queue_node& node, wait_reason reason) noexcept SPINDLE_RELEASE(lock_) {
    node.waiter = current_waiter();
    note_wait(node.waiter, reason, this);
    prepare_park(node.waiter);
    list_.push_back(&node);
    lock_.unlock();
  }

  // park_enqueued() returns once woken; it does not touch the queue again
  // (see the top).
  void park_enqueued(queue_node& node) noexcept SPINDLE_EXCLUDES(lock_) {
    park(node.waiter);
    await_released(node.released);
  }

  // park_enqueued_until(): true when woken, false on timeout (then the
  // node is no longer queued, and no wake was taken). Only a timed-out
  // waiter touches the queue after its park.
  bool park_enqueued_until(queue_node& node,
                           std::chrono::steady_clock::time_point deadline) noexcept
      SPINDLE_EXCLUDES(lock_) {
    if (park_until(node.waiter, deadline)) {
      await_released(node.released);
      return true;
    }
    lock_.lock();
    if (node.queued) list_.remove(&node);  // else a waker took it, and its unpark failed
    lock_.unlock();
    return false;
  }

  // wait() parks the caller, which holds lock(), until woken; returns with
  // the lock released.
  void wait(queue_node& node, wait_reason reason) noexcept SPINDLE_RELEASE(lock_) {
    enqueue(node, reason);
    park_enqueued(node);
  }

  // wait_until() is wait() with a deadline: true when woken, false on
  // timeout.
  bool wait_until(queue_node& node, std::chrono::steady_clock::time_point deadline,
                  wait_reason reason) noexcept SPINDLE_RELEASE(lock_) {
    enqueue(node, reason);
    return park_enqueued_until(node, deadline);
  }

  // wake_one() wakes the first waiter that can still be woken; the caller
  // holds lock(). Returns the woken node, or nullptr. The caller must pass
  // it to release() once it has let go of the lock and is done with the
  // primitive: the woken waits for that, and may then destroy it.
  queue_node* wake_one() noexcept SPINDLE_REQUIRES(lock_) {
    while (wait_node* n = list_.pop_front()) {
      if (unpark(n->waiter)) return static_cast<queue_node*>(n);
      // It timed out meanwhile: it will find itself dequeued and report a
      // timeout; the wake goes to the next one.
    }
    return nullptr;
  }

  // wake_queued() wakes `node` alone if it is still queued (a stop request
  // on a condition_variable_any waiter's stop token); the caller holds
  // lock(). Returns it, for release() as wake_one()'s, or nullptr if it
  // was no longer queued (a notify took it) or had timed out.
  queue_node* wake_queued(queue_node& node) noexcept SPINDLE_REQUIRES(lock_) {
    if (!node.queued) return nullptr;
    list_.remove(&node);
    return unpark(node.waiter) ? &node : nullptr;
  }

  // wake_all() wakes every waiter; the caller holds lock(). Returns them
  // chained through next_woken, for release() as wake_one()'s.
  queue_node* wake_all() noexcept SPINDLE_REQUIRES(lock_) {
    queue_node* woken = nullptr;
    while (queue_node* n = wake_one()) {
      n->next_woken = woken;
      woken = n;
    }
    return woken;
  }

  // release() lets the waiters that wake_one() or wake_all() returned go
  // on. The caller has let go of the lock, and this is its last touch of
  // the primitive: each waiter may return and destroy it the moment its
  // flag is set.
  static void release(queue_node* woken) noexcept {
    while (woken != nullptr) {
      queue_node* next = woken->next_woken;  // read before its owner may go
      woken->released.store(true, std::memory_order_release);
      woken = next;
    }
  }

  bool has_waiters() const noexcept SPINDLE_REQUIRES(lock_) { return !list_.empty(); }
  std::size_t waiter_count() const noexcept SPINDLE_REQUIRES(lock_) { return list_.size(); }

  // count_waiters() is how many waiters are queued now, exact at the
  // moment it holds the lock: each was queued (enqueue()) under it, and a
  // wake or a timeout takes it out under it (for tests: waiter_census.h).
  std::size_t count_waiters() const noexcept SPINDLE_EXCLUDES(lock_) {
    lock_.lock();
    const std::size_t n = list_.size();
    lock_.unlock();
    return n;
  }

 private:
  mutable spinlock lock_;  // mutable: count_waiters() is const
  wait_list list_ SPINDLE_GUARDED_BY(lock_);
};

}  // namespace spindle::detail
