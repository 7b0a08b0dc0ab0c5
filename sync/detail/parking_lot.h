// Waiters parked by address, outside the primitive they wait on: the
// futex's design in user space (WebKit's and Rust's parking_lot, the
// waiter table behind libstdc++'s std::atomic::wait). Internal.
//
// Why not a queue inside the primitive (wait_queue)? Because of what the
// waker does after it changed the state: with the queue inside, it still
// has to lock that queue to wake someone, and by then the one who saw the
// change may have returned and destroyed the primitive. std allows exactly
// that for a mutex ("it is possible for another thread B to lock the same
// mutex, observe that it is no longer in use, unlock it, and destroy it,
// before thread A appears to have returned from its unlock call";
// [thread.mutex.requirements.mutex.general]), and it is the normal use of
// a semaphore or latch on a fiber's stack: release, and the acquirer
// returns and its frame is gone. Here the waker wakes through a table
// keyed by the address, never touching the primitive again: at worst it
// wakes a waiter of a new primitive at the same address, who checks its
// condition and parks again.
//
//   waiter:  park_on(key, [&] { return the condition to wait holds; })
//   waker:   change the state; unpark_address(key, n)
//
// The condition is checked under the bucket's lock that the waker wakes
// under, so no wake falls between the check and the park.
#pragma once

#include <chrono>
#include <cstddef>
#include <limits>

#include "sync/detail/wait_queue.h"

namespace spindle::detail {

enum class park_result {
  woken,    // parked, and an unpark_address() woke us
  invalid,  // the condition did not hold: not parked
  timeout,  // parked, and the deadline passed first (no wake was taken)
};

// A bucket of the table: waiters of every key that hashes to it.
struct alignas(64) parking_bucket {
  spinlock lock;
  wait_list list SPINDLE_GUARDED_BY(lock);  // wait_node::key tells whose each waiter is
};

parking_bucket& parking_bucket_for(const void* key) noexcept;

// Parks the calling fiber (or thread) on `key` if `still_wait()`, called
// under the bucket's lock, returns true; until unpark_address(key, ...) or
// the deadline (none if nullptr). Wakes may be spurious (the late waker of
// an earlier object at the same address, see above): callers check their
// condition again.
template <class Condition>
park_result park_on(const void* key, Condition still_wait,
                    const std::chrono::steady_clock::time_point* deadline,
                    wait_reason reason) noexcept {
  parking_bucket& b = parking_bucket_for(key);
  b.lock.lock();
  if (!still_wait()) {
    b.lock.unlock();
    return park_result::invalid;
  }
  wait_node node;
  node.key = key;
  node.waiter = current_waiter();
  note_wait(node.waiter, reason, key);
  prepare_park(node.waiter);
  b.list.push_back(&node);
  b.lock.unlock();
  const bool woken = deadline == nullptr ? (park(node.waiter), true)
                                         : park_until(node.waiter, *deadline);
  if (woken) {
    // The waker popped our node and unparked us under the lock: once we
    // have taken it, it is done with the node on our stack.
    b.lock.lock();
    b.lock.unlock();
    return park_result::woken;
  }
  b.lock.lock();
  if (node.queued) b.list.remove(&node);  // else a waker popped us and its unpark failed
  b.lock.unlock();
  return park_result::timeout;
}

// Wakes up to `n` waiters parked on `key`, oldest first; returns how many.
// Touches nothing but the table and the waiters.
std::size_t unpark_address(const void* key,
                           std::size_t n = std::numeric_limits<std::size_t>::max()) noexcept;

// parked_count() is how many waiters are parked on `key` now: exact at the
// moment it holds the bucket's lock, under which park_on() queues a waiter
// and a wake or a timeout takes it out (for tests: waiter_census.h).
std::size_t parked_count(const void* key) noexcept;

}  // namespace spindle::detail
