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
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>

#include "fiber/detail/control_block.h"
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
class spinlock {
 public:
  void lock() noexcept {
    std::uint32_t expected = 0;
    if (state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) [[likely]] {
      return;
    }
    lock_contended();
  }
  bool try_lock() noexcept {
    std::uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  void unlock() noexcept {
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

// FIFO of wait_nodes. Every member must be called with the lock held.
class wait_list {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  wait_node* front() const noexcept { return head_; }
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

// wait_queue: a wait_list with its lock and the park/wake steps.
class wait_queue {
 public:
  spinlock& lock() noexcept { return lock_; }

  // enqueue() registers the caller, which holds lock(), as a waiter and
  // releases the lock; from here a wake may come at any moment, and the
  // caller must then call park_enqueued() or park_enqueued_until() (doing
  // in between whatever must happen after it is registered, such as
  // releasing the mutex of a condition variable). `node` must outlive the
  // wait (put it on the caller's stack).
  void enqueue(wait_node& node) noexcept {
    node.waiter = current_waiter();
    prepare_park(node.waiter);
    list_.push_back(&node);
    lock_.unlock();
  }

  void park_enqueued(wait_node& node) noexcept {
    park(node.waiter);
    wait_for_waker();
  }

  // park_enqueued_until(): true when woken, false on timeout (then the
  // node is no longer queued, and no wake was taken).
  bool park_enqueued_until(wait_node& node,
                           std::chrono::steady_clock::time_point deadline) noexcept {
    if (park_until(node.waiter, deadline)) {
      wait_for_waker();
      return true;
    }
    lock_.lock();
    if (node.queued) list_.remove(&node);  // else a waker took it, and its unpark failed
    lock_.unlock();
    return false;
  }

  // wait() parks the caller, which holds lock(), until woken; returns with
  // the lock released.
  void wait(wait_node& node) noexcept {
    enqueue(node);
    park_enqueued(node);
  }

  // wait_until() is wait() with a deadline: true when woken, false on
  // timeout.
  bool wait_until(wait_node& node, std::chrono::steady_clock::time_point deadline) noexcept {
    enqueue(node);
    return park_enqueued_until(node, deadline);
  }

  // wake_one() wakes the first waiter that can still be woken; the caller
  // holds lock(). Returns the woken node (with its payload for the caller
  // to fill in before unlocking... or nullptr). The node stays valid until
  // the caller releases the lock.
  wait_node* wake_one() noexcept {
    while (wait_node* n = list_.pop_front()) {
      if (unpark(n->waiter)) return n;
      // It timed out meanwhile: it will find itself dequeued and report a
      // timeout; the wake goes to the next one.
    }
    return nullptr;
  }

  // wake_all() wakes every waiter; the caller holds lock(). Returns how
  // many were woken.
  std::size_t wake_all() noexcept {
    std::size_t n = 0;
    while (wake_one() != nullptr) ++n;
    return n;
  }

  bool has_waiters() const noexcept { return !list_.empty(); }

 private:
  // The waker unparks us while it holds the lock and touches the queue
  // until it releases it. Taking the lock once makes sure it is done, so
  // that the woken may destroy the primitive at once (a wait_group right
  // after wait()). A primitive that someone who never parked may destroy
  // right after the waker's change (a mutex, a semaphore) needs more: it
  // parks its waiters in parking_lot.h instead.
  void wait_for_waker() noexcept {
    lock_.lock();
    lock_.unlock();
  }

  spinlock lock_;
  wait_list list_;
};

}  // namespace spindle::detail
