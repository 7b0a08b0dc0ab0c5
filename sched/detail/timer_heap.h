// The deadlines of parked fibers: one heap per worker, which any worker
// may run. Internal to sched/.
//
// Why not libev's timers (the first design): an ev_timer lives in one
// worker's loop, and libev loops are single-threaded, so a fiber with a
// deadline could only time out when that worker ran its loop, and a waker
// on another thread had to route the fiber through that worker (its inbox)
// so that the worker stopped the timer before the fiber ran. A worker busy
// in one fiber that computes for seconds then held every such fiber, and
// every sleep_for() due on it, hostage while other workers idled. Go's
// runtime had the same shape until 1.14 (one timer goroutine per P) and
// moved to per-P heaps that idle Ps run too ("checkTimers" in stealWork);
// this is that.
//
// A timer_node lives on the parked fiber's stack. The heap's lock guards
// every node in it: a firer pops a node, claims its fiber and records that
// it fired, all under the lock; the fiber, once resumed (by the firer or by
// anyone else), takes the same lock to take its node out if it is still
// there, and only then returns (and its node goes). So no firer ever
// touches a node after its fiber has left.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <vector>

#include "sched/detail/spin_lock.h"

namespace spindle::detail {

struct control_block;

struct timer_node {
  static constexpr std::uint32_t npos = std::numeric_limits<std::uint32_t>::max();
  std::chrono::steady_clock::time_point when;
  control_block* cb = nullptr;
  // Its position in the heap, npos when in none. Guarded by the heap's
  // lock.
  std::uint32_t index = npos;
  // The timer fired and its firer claimed the fiber (the wake was the
  // timeout's, or a stop request's). Written under the heap's lock.
  bool fired = false;
  // A stop request cancelled the wait (see worker::park_commit_until):
  // the node fires at once if it is in the heap, and instead of going in
  // if it is not there yet. Written under the heap's lock.
  bool cancelled = false;
};

class timer_heap {
 public:
  using rep = std::chrono::steady_clock::rep;
  static constexpr rep none = std::numeric_limits<rep>::max();

  timer_heap() { heap_.reserve(64); }
  timer_heap(const timer_heap&) = delete;
  timer_heap& operator=(const timer_heap&) = delete;

  // add() inserts `n`; true when it became the earliest. Any thread.
  bool add(timer_node* n) noexcept;
  // remove() takes `n` out if it is still in (a no-op once fired). Any
  // thread; the node's fiber calls it before its node goes away.
  void remove(timer_node* n) noexcept;

  // For a wait that a stop request may cancel. add_or_fire() is add(),
  // except that a node already cancelled is not added: fire(n) is called
  // instead, under the lock; returns whether it became the earliest.
  // cancel() marks the node cancelled and, if it is in the heap, takes it
  // out and calls fire(n) under the lock. Any thread.
  template <class Fire>
  bool add_or_fire(timer_node* n, Fire&& fire) noexcept {
    lock();
    bool first = false;
    if (n->cancelled) {
      fire(n);
    } else {
      first = insert(n);
    }
    unlock();
    return first;
  }
  template <class Fire>
  void cancel(timer_node* n, Fire&& fire) noexcept {
    lock();
    n->cancelled = true;
    if (n->index != timer_node::npos) {
      const bool was_first = n->index == 0;
      erase_at(n->index);
      if (was_first) publish_earliest();
      fire(n);
    }
    unlock();
  }
  // The earliest deadline (time_since_epoch().count()), `none` when empty.
  // A hint, read without the lock; seq_cst, for the handshake with a worker
  // about to sleep without a timeout (see worker::loop).
  rep earliest() const noexcept { return earliest_.load(std::memory_order_seq_cst); }
  bool due(rep now) const noexcept { return earliest_.load(std::memory_order_relaxed) <= now; }

  // Pops every node due at `now` and calls fire(node) for each, under the
  // lock (fire must not touch the node after it returns). Any thread.
  template <class Fire>
  void run_due(rep now, Fire&& fire) noexcept {
    if (!due(now)) return;
    lock();
    while (!heap_.empty() && heap_[0].when <= now) {
      timer_node* n = heap_[0].n;
      erase_at(0);
      fire(n);
    }
    publish_earliest();
    unlock();
  }

 private:
  // Held for a heap operation: a few dozen nanoseconds. Contended only when
  // another worker runs this heap's due timers, or a fiber woken elsewhere
  // takes its node out.
  void lock() noexcept SPINDLE_ACQUIRE(lock_) { lock_.lock(); }
  void unlock() noexcept SPINDLE_RELEASE(lock_) { lock_.unlock(); }
  bool insert(timer_node* n) noexcept SPINDLE_REQUIRES(lock_);
  void erase_at(std::uint32_t i) noexcept SPINDLE_REQUIRES(lock_);
  void sift_up(std::uint32_t i) noexcept SPINDLE_REQUIRES(lock_);
  void sift_down(std::uint32_t i) noexcept SPINDLE_REQUIRES(lock_);
  // A heap entry holds its node's deadline as well as the node: the
  // comparisons of a sift then read the heap's own array, not the nodes,
  // each on another parked fiber's stack and, with a thousand fibers
  // waiting, seldom in cache (Go 1.23 keeps `when` in its heap entries for
  // the same reason). Four children a node, as Go's timer heaps have: half
  // the levels of a binary heap, whose children share a cache line here.
  struct entry {
    rep when;
    timer_node* n;
  };
  static constexpr std::uint32_t arity = 4;
  void place(std::uint32_t i, entry e) noexcept SPINDLE_REQUIRES(lock_) {
    heap_[i] = e;
    e.n->index = i;
  }
  void publish_earliest() noexcept SPINDLE_REQUIRES(lock_) {
    earliest_.store(heap_.empty() ? none : heap_[0].when, std::memory_order_seq_cst);
  }

  spin_lock lock_;
  std::vector<entry> heap_ SPINDLE_GUARDED_BY(lock_);  // a 4-ary min-heap by `when`
  std::atomic<rep> earliest_{none};
};

}  // namespace spindle::detail
