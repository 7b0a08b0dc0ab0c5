// Run queues. Internal to sched/.
//
// Each worker has a run_ring: a bounded FIFO ring that its owner pushes to
// and pops from, and that other workers steal half of when they run out of
// work. It is Go's per-P runq (runtime/proc.go: runqput, runqget,
// runqgrab): the owner pushes with a plain store and a release of tail_,
// every consumer (owner or thief) takes from head_ with a CAS, and a thief
// copies the slots it wants before its CAS, discarding the copy when the CAS
// fails. Rejected: a mutex-protected deque (a lock per push and pop on the
// owner's hot path) and a Chase-Lev deque (its owner end is LIFO, and
// Spindle keeps FIFO order so that yield is round-robin).
#pragma once

#include <atomic>
#include <cstdint>

#include "fiber/detail/control_block.h"

namespace spindle::detail {

// An intrusive FIFO linked through control_block::next_. Not thread-safe:
// owner-only, or guarded by its user's lock.
class fifo {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  void push_back(control_block* cb) noexcept {
    cb->next_ = nullptr;
    if (tail_ != nullptr) {
      tail_->next_ = cb;
    } else {
      head_ = cb;
    }
    tail_ = cb;
  }
  // Appends a chain first..last (linked through next_, last->next_ null).
  void splice_back(control_block* first, control_block* last) noexcept {
    if (first == nullptr) return;
    if (tail_ != nullptr) {
      tail_->next_ = first;
    } else {
      head_ = first;
    }
    tail_ = last;
  }
  void push_front(control_block* cb) noexcept {
    cb->next_ = head_;
    head_ = cb;
    if (tail_ == nullptr) tail_ = cb;
  }
  control_block* pop_front() noexcept {
    control_block* cb = head_;
    if (cb != nullptr) {
      head_ = cb->next_;
      if (head_ == nullptr) tail_ = nullptr;
      cb->next_ = nullptr;
    }
    return cb;
  }
  // Takes the whole chain out; returns its first element.
  control_block* take_all(control_block** last) noexcept {
    control_block* first = head_;
    *last = tail_;
    head_ = tail_ = nullptr;
    return first;
  }

 private:
  control_block* head_ = nullptr;
  control_block* tail_ = nullptr;
};

class run_ring {
 public:
  // Go's runq has 256 slots: enough that overflow to the shared queue only
  // happens in spawn bursts; small enough to scan when stealing.
  static constexpr std::uint32_t capacity = 256;

  // push() appends and returns the number of fibers in the ring before
  // it (as far as the owner can tell); -1 when the ring is full. Owner only.
  int push(control_block* cb) noexcept {
    const std::uint32_t h = head_.load(std::memory_order_acquire);
    const std::uint32_t t = tail_.load(std::memory_order_relaxed);
    if (t - h >= capacity) return -1;
    slots_[t % capacity].store(cb, std::memory_order_relaxed);
    // Publishes the slot, and everything written to the fiber before it
    // became runnable (its saved context), to whoever takes it.
    tail_.store(t + 1, std::memory_order_release);
    return static_cast<int>(t - h);
  }

  // pop() takes the oldest fiber, or nullptr. Owner only.
  control_block* pop() noexcept {
    std::uint32_t h = head_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint32_t t = tail_.load(std::memory_order_relaxed);
      if (h == t) return nullptr;
      control_block* cb = slots_[h % capacity].load(std::memory_order_relaxed);
      // A thief may take the same slot: the CAS decides.
      if (head_.compare_exchange_weak(h, h + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        return cb;
      }
    }
  }

  // pop_unshared() is pop() for a ring that nobody steals from (its
  // worker is the runtime's only one): no CAS. A work-stealing pop cannot
  // avoid an atomic read-modify-write or a store-load fence when thieves
  // may be about (Attiya et al., "Laws of Order", POPL 2011), and that one
  // locked instruction is a third of a yield; a one-worker runtime need
  // not pay it. `*left` is how many remain. Owner only.
  control_block* pop_unshared(std::uint32_t* left) noexcept {
    const std::uint32_t h = head_.load(std::memory_order_relaxed);
    const std::uint32_t t = tail_.load(std::memory_order_relaxed);
    if (h == t) return nullptr;
    control_block* cb = slots_[h % capacity].load(std::memory_order_relaxed);
    head_.store(h + 1, std::memory_order_relaxed);
    *left = t - h - 1;
    return cb;
  }

  // peek(i) is the i-th oldest fiber, or nullptr: a hint for prefetching.
  // With thieves about it may be taken (and run) meanwhile. Owner only.
  control_block* peek(std::uint32_t i) const noexcept {
    const std::uint32_t h = head_.load(std::memory_order_relaxed);
    if (tail_.load(std::memory_order_relaxed) - h <= i) return nullptr;
    return slots_[(h + i) % capacity].load(std::memory_order_relaxed);
  }

  // grab() takes the older half (rounded up) of the ring, at most `max`,
  // into `out`; returns how many. Any thread (a thief).
  std::uint32_t grab(control_block** out, std::uint32_t max) noexcept {
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      const std::uint32_t t = tail_.load(std::memory_order_acquire);
      std::uint32_t n = t - h;
      n -= n / 2;
      if (n == 0) return 0;
      if (n > capacity / 2) continue;  // h and t read at different moments
      if (n > max) n = max;
      for (std::uint32_t i = 0; i < n; ++i) {
        out[i] = slots_[(h + i) % capacity].load(std::memory_order_relaxed);
      }
      if (head_.compare_exchange_weak(h, h + n, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        return n;
      }
    }
  }

  // size() is approximate when other threads steal. Any thread.
  std::uint32_t size() const noexcept {
    const std::uint32_t h = head_.load(std::memory_order_acquire);
    const std::uint32_t t = tail_.load(std::memory_order_acquire);
    const std::uint32_t n = t - h;
    return n > capacity ? 0 : n;
  }

 private:
  // head_ is advanced by any consumer (CAS); tail_ only by the owner. They
  // sit on separate cache lines so thieves' CASes do not slow the owner's
  // pushes more than necessary.
  alignas(64) std::atomic<std::uint32_t> head_{0};
  alignas(64) std::atomic<std::uint32_t> tail_{0};
  std::atomic<control_block*> slots_[capacity] = {};
};

}  // namespace spindle::detail
