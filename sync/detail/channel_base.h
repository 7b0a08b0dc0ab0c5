// channel_base and channel_waiter: the part of spindle::channel<T>
// (sync/channel.h) that does not depend on T, which select() (sync/select.h)
// works on too. Internal; the design is in docs/sync.md, "Channels".
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "fiber/thread_annotations.h"
#include "sched/park.h"
#include "sync/detail/wait_queue.h"

namespace spindle {

template <class>
class channel;
template <class>
class recv_case;
template <class>
class send_case;

namespace detail {

class select_engine;

// A parked sender or receiver (or one case of a select): lives on its
// fiber's stack.
//
// The hand-off, Go's: the waker, holding the channel's lock, claims the
// waiter (unpark), moves the value to or from it and records the outcome;
// it unlocks the channel and only then sets `released`, its last touch of
// the waiter and of the channel. The woken fiber does not take the
// channel's lock again (that was two locked instructions per hand-off on
// a line the other side is using); it waits for `released`, which is
// normally set before it even runs. Because the waker lets go of the
// channel before it releases the waiter, a fiber that returns from recv()
// may destroy the channel at once (a channel on its stack).
struct channel_waiter : wait_node {
  enum class state : unsigned char {
    pending,  // not claimed (a timed waiter that timed out)
    done,     // the value went through
    closed,   // the channel was closed
    retry,    // the value's move threw in the waker: try the operation again
  };
  state outcome = state::pending;  // written by the waker under the lock
  // Parked by park_commit() with no deadline, not part of a select and
  // not cancellable (no stop token can end its park): only a holder of
  // the channel's lock can wake it (unpark_sole()).
  bool sole = false;
  std::atomic<bool> released{false};
  // For a select: which case this is, and where the winner is recorded.
  int case_index = -1;
  int* fired_case = nullptr;
  channel_waiter* next_claimed = nullptr;  // close(): the waiters it claimed

  // The woken side: waits until the waker is done with us and the channel.
  state wait_released() noexcept {
    await_released(released);
    return outcome;
  }
  // The waker's side, after it unlocked the channel.
  static void release(channel_waiter* w) noexcept {
    if (w != nullptr) w->released.store(true, std::memory_order_release);
  }
};

class alignas(64) channel_base {
 public:
  spinlock& lock() const noexcept SPINDLE_RETURN_CAPABILITY(lock_) { return lock_; }

 protected:
  // Wakes the first waiter of `list` that can still be woken (a waiter of
  // a select may have been claimed by another channel; a timed one may
  // have timed out) and returns it, claimed, with outcome `retry` until the
  // caller has moved the value; nullptr if none. The caller holds the
  // lock of the channel whose list it is, and must release() the waiter
  // once it has unlocked.
  static channel_waiter* claim_first(wait_list& list) noexcept {
    while (wait_node* n = list.pop_front()) {
      auto* w = static_cast<channel_waiter*>(n);
      if (w->sole) [[likely]] {
        unpark_sole(w->waiter);
      } else if (!unpark(w->waiter)) {
        continue;  // timed out meanwhile, or another case of its select won
      }
      if (w->fired_case != nullptr) *w->fired_case = w->case_index;
      w->outcome = channel_waiter::state::retry;
      return w;
    }
    return nullptr;
  }

  // A parking sender's or receiver's commit (park_commit): lets go of the
  // channel once it has switched out.
  static void unlock_channel(void* lock) noexcept SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
    static_cast<spinlock*>(lock)->unlock();  // taken by the parking fiber, before its switch
  }

  // Parks `w`'s fiber, which the caller queued under lock_; lock_ is let
  // go once the fiber has switched out (park_commit), so that no waker
  // meets it half parked. True when woken, false when the deadline (none
  // if null) passed first. Not analyzed: the analysis cannot see the
  // commit release the lock. Inline, so that the switch is made in the
  // frame of send() or recv() (docs/sync.md, "Parking under the lock").
  //
  // With `cancellable` (the waiter is a fiber that observes a stop token:
  // it was queued with sole = false), the park is a cancel point: false
  // also when stop is requested on the token (time_point::max() when there
  // is no deadline).
  [[gnu::always_inline]] bool park_unlocking(channel_waiter& w,
                                             const std::chrono::steady_clock::time_point* deadline,
                                             bool cancellable = false)
      noexcept SPINDLE_RELEASE(lock_) SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
    if (cancellable) [[unlikely]] {
      return park_commit_until(
          w.waiter, deadline != nullptr ? *deadline : std::chrono::steady_clock::time_point::max(),
          unlock_channel, &lock_, cancel_point::yes);
    }
    if (deadline == nullptr) {
      park_commit_inline(w.waiter, unlock_channel, &lock_);
      return true;
    }
    return park_commit_until(w.waiter, *deadline, unlock_channel, &lock_);
  }

  // The destructor's check (channel, "Destruction"): aborts if fibers are
  // still parked in a send, a receive or a select on the channel. Costs
  // the destructor one uncontended lock, and sends and receives nothing.
  void abort_if_waited_on() const noexcept {
    lock_.lock();
    const bool waited = !senders_.empty() || !receivers_.empty();
    lock_.unlock();
    if (waited) [[unlikely]] report_waited_on();
  }
  [[gnu::cold]] void report_waited_on() const noexcept;

  // How many are parked in a send, a receive or a select on the channel
  // now: exact under lock_, which a waiter holds from queuing itself until
  // it has switched out (for tests: waiter_census.h).
  std::size_t count_waiters() const noexcept {
    lock_.lock();
    const std::size_t n = senders_.size() + receivers_.size();
    lock_.unlock();
    return n;
  }

  // Everything a send or receive touches sits on this one cache line (the
  // channel is aligned to it): with senders and receivers on different
  // workers, each operation moves one line between cores, not four (the
  // lock, a std::deque's iterators, ...). The values live in a ring of
  // `ring_size_` slots at `slots_`, grown geometrically up to the
  // capacity as the buffer fills (Go allocates the whole buffer up front).
  mutable spinlock lock_;
  bool closed_ SPINDLE_GUARDED_BY(lock_) = false;
  std::uint32_t head_ SPINDLE_GUARDED_BY(lock_) = 0;       // the oldest buffered value's slot
  std::uint32_t count_ SPINDLE_GUARDED_BY(lock_) = 0;      // values buffered
  std::uint32_t ring_size_ SPINDLE_GUARDED_BY(lock_) = 0;  // slots allocated
  std::uint32_t capacity_ = 0;  // set by the constructor, then read only
  void* slots_ SPINDLE_GUARDED_BY(lock_) = nullptr;
  // channel_waiter with payload: T* to move from.
  wait_list senders_ SPINDLE_GUARDED_BY(lock_);
  // channel_waiter with payload: std::optional<T>* to fill.
  wait_list receivers_ SPINDLE_GUARDED_BY(lock_);

  template <class>
  friend class channel;
  friend class select_engine;
  friend struct waiter_census;
};

static_assert(sizeof(channel_base) == 64, "a channel's hot fields fill one cache line");

}  // namespace detail
}  // namespace spindle
