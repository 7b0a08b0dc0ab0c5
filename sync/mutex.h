// spindle::mutex, timed_mutex, recursive_mutex: std's mutexes for fibers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "sync/detail/wait_queue.h"

namespace spindle {

namespace detail {
[[noreturn]] void misuse_abort(const char* message) noexcept;

// Whether lock_word::release() may release with a plain store (see there):
// set once at start-up when the kernel offers membarrier(2)'s private
// expedited command, which the first waiter of each lock needs. Never in
// ThreadSanitizer builds, which cannot see membarrier's ordering.
inline std::atomic<bool> plain_release_enabled{false};

// A futex-style lock word with a queue of parked waiters (Drepper,
// "Futexes Are Tricky", mutex 2), which costs one locked instruction when
// nobody waits. state_: 0 unlocked; 1 locked and nobody waits; 2 locked
// and someone may wait.
//
// Taking it is one CAS. Releasing it the usual way is one atomic
// decrement, to learn whether anyone waits; a locked instruction costs as
// much as the rest of the lock and unlock together. So a word that has
// never had a waiter releases with a plain store instead and then looks at
// contended_, which the first waiter sets, once for the word's lifetime,
// before it marks the word contended. The store and the load can pass
// each other in the CPU (a store waits in its store buffer), so that
// first waiter then calls membarrier(2), which makes every thread of the
// process execute a full fence: afterwards any release still on its plain
// path either has its store visible to the waiter, or sees contended_ and
// wakes someone (release_raced). From then on the word releases with the
// decrement. One system call (microseconds) the first time a lock is
// contended buys a release without a locked instruction every time it is
// not: the asymmetric fence of user-space RCU, and of biased locks.
class lock_word {
 public:
  bool try_acquire() noexcept {
    std::uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  void acquire() noexcept {
    if (!try_acquire()) acquire_slow(nullptr);
  }
  // False when the deadline passed first.
  bool acquire_until(std::chrono::steady_clock::time_point deadline) noexcept {
    return try_acquire() || acquire_slow(&deadline);
  }
  void release() noexcept {
    if (!contended_.load(std::memory_order_relaxed) &&
        plain_release_enabled.load(std::memory_order_relaxed)) [[likely]] {
      state_.store(0, std::memory_order_release);
      // The load stays after the store in the instruction stream (what the
      // first waiter's membarrier relies on); only the CPU may swap them.
      std::atomic_signal_fence(std::memory_order_seq_cst);
      if (contended_.load(std::memory_order_relaxed)) [[unlikely]] release_raced();
      return;
    }
    if (state_.fetch_sub(1, std::memory_order_release) != 1) release_slow();
  }

 private:
  bool acquire_slow(const std::chrono::steady_clock::time_point* deadline) noexcept;
  void release_slow() noexcept;
  void release_raced() noexcept;
  void become_contended() noexcept;

  std::atomic<std::uint32_t> state_{0};
  std::atomic<bool> contended_{false};  // sticky: set by the first waiter
  wait_queue waiters_;
};

// The timed members of a timed lock, in terms of Derived::lock_until().
template <class Derived>
class timed_lock_members {
 public:
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return self().lock_until(std::chrono::steady_clock::now() +
                             std::chrono::ceil<std::chrono::steady_clock::duration>(timeout));
  }
  template <class Clock, class Duration>
  [[nodiscard]] bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    const auto now = Clock::now();
    return self().lock_until(std::chrono::steady_clock::now() +
                             std::chrono::ceil<std::chrono::steady_clock::duration>(deadline - now));
  }

 private:
  Derived& self() noexcept { return static_cast<Derived&>(*this); }
};
}  // namespace detail

// mutex is std::mutex for fibers: lock() parks the calling fiber (never its
// worker thread) while another holds the mutex, so thousands of fibers can
// contend for it on a few threads. It works across workers and from plain
// threads (which block). Same interface and semantics as std::mutex, so
// std::lock_guard, std::unique_lock and std::scoped_lock work with it:
//
//   spindle::mutex mu;
//   int counter = 0;  // guarded by mu
//   ...
//   { std::lock_guard lock(mu); ++counter; }
//
// Misuse that std leaves undefined is caught: lock() by the owner throws
// std::system_error(errc::resource_deadlock_would_occur) (a fiber would
// otherwise wait for itself forever), and unlock() by anyone but the owner
// aborts with a message. Waiters are woken in FIFO order, but a running
// fiber may take a just-released mutex before the woken one does (no
// hand-off), as with most mutexes: that keeps throughput up.
class mutex {
 public:
  constexpr mutex() noexcept = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  void lock() {
    if (!word_.try_acquire()) [[unlikely]] lock_slow();  // fast path: one CAS
    owner_.store(detail::current_id(), std::memory_order_relaxed);
  }
  [[nodiscard]] bool try_lock() noexcept {
    if (!word_.try_acquire()) return false;
    owner_.store(detail::current_id(), std::memory_order_relaxed);
    return true;
  }
  void unlock() {
    if (owner_.load(std::memory_order_relaxed) != detail::current_id()) [[unlikely]] {
      detail::misuse_abort("spindle::mutex::unlock: the caller does not own the mutex");
    }
    owner_.store(0, std::memory_order_relaxed);
    word_.release();
  }

 protected:
  void lock_slow();
  bool lock_until(std::chrono::steady_clock::time_point deadline);
  void check_not_owner(const char* what) const;

  detail::lock_word word_;
  // The owner's id while locked, 0 otherwise; written by the owner, read
  // racily only to detect misuse.
  std::atomic<std::uint64_t> owner_{0};
};

// timed_mutex adds try_lock_for() and try_lock_until(), as
// std::timed_mutex does.
class timed_mutex : public mutex, public detail::timed_lock_members<timed_mutex> {
 private:
  friend class detail::timed_lock_members<timed_mutex>;
  using mutex::lock_until;
};

// recursive_mutex may be locked again by its owner; it must be unlocked as
// many times. As std::recursive_mutex, with try_lock_for/until as in
// std::recursive_timed_mutex (also spelled recursive_timed_mutex here).
class recursive_mutex : public detail::timed_lock_members<recursive_mutex> {
 public:
  constexpr recursive_mutex() noexcept = default;
  recursive_mutex(const recursive_mutex&) = delete;
  recursive_mutex& operator=(const recursive_mutex&) = delete;

  void lock();
  [[nodiscard]] bool try_lock() noexcept;
  void unlock();

 private:
  friend class detail::timed_lock_members<recursive_mutex>;
  bool lock_until(std::chrono::steady_clock::time_point deadline);

  detail::lock_word word_;
  std::atomic<std::uint64_t> owner_{0};
  std::uint32_t depth_ = 0;  // guarded by the lock itself
};

using recursive_timed_mutex = recursive_mutex;

}  // namespace spindle
