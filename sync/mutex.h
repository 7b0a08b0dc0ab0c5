// spindle::mutex, timed_mutex, recursive_mutex: std's mutexes for fibers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "fiber/detail/sanitizer.h"
#include "sched/clock.h"
#include "sync/detail/parking_lot.h"
#include "sync/detail/wait_queue.h"

namespace spindle {

namespace detail {
[[noreturn]] void misuse_abort(const char* message) noexcept;

// Whether lock_word::release() may release with a plain store (see there):
// set once at start-up when the kernel offers membarrier(2)'s private
// expedited command, which the first waiter of each lock needs. Never in
// ThreadSanitizer builds, which cannot see membarrier's ordering.
inline std::atomic<bool> plain_release_enabled{false};

// Moved on by every lock_word's first waiter and by every revocation of a
// bias, each before its membarrier(2): a release on a plain path reads it
// before and after its store instead of reading the lock word after it (see
// lock_word, "Destruction").
inline std::atomic<std::uint64_t> fence_epoch{0};

// Whether a lock_word may be biased to the thread that keeps taking it (see
// there): on where plain releases are, unless the environment variable
// SPINDLE_MUTEX_BIAS is "0" at start-up. The library reads it only when a
// lock is about to be biased; set_biased_locking() flips it for benchmarks
// and tests (locks already biased stay biased).
inline std::atomic<bool> biased_locking_enabled{false};

// Compiled out of ThreadSanitizer builds: TSan cannot see the ordering that
// membarrier(2) gives the biased path.
#if SPINDLE_TSAN
inline constexpr bool biased_locking_compiled = false;
#else
inline constexpr bool biased_locking_compiled = true;
#endif

// The calling thread's thread pointer: unique among running threads, and
// read afresh at every call (a fiber that parks may resume on another
// thread, and a cached thread-local address would then be wrong).
std::uintptr_t thread_token_slow() noexcept;
inline std::uintptr_t thread_token() noexcept {
#if defined(__x86_64__)
  std::uintptr_t tp;
  asm volatile("mov %%fs:0, %0" : "=r"(tp));
  return tp;
#elif defined(__aarch64__)
  std::uintptr_t tp;
  asm volatile("mrs %0, tpidr_el0" : "=r"(tp));
  return tp;
#else
  return thread_token_slow();
#endif
}

// A futex-style lock word with a queue of parked waiters (Drepper,
// "Futexes Are Tricky", mutex 2), which costs one locked instruction when
// nobody waits, and none at all once it is biased to the thread that keeps
// taking it. state_: 0 unlocked; 1 locked and nobody waits; 2 locked and
// someone may wait.
//
// Plain release. Taking the word is one CAS. Releasing it the usual way is
// one atomic decrement, to learn whether anyone waits; a locked
// instruction costs as much as the rest of the lock and unlock together.
// So a word that has never had a waiter releases with a plain store
// instead and then looks at contended_, which the first waiter sets, once
// for the word's lifetime, before it marks the word contended. The store
// and the load can pass each other in the CPU (a store waits in its store
// buffer), so that first waiter then calls membarrier(2), which makes
// every thread of the process execute a full fence: afterwards any release
// still on its plain path either has its store visible to the waiter, or
// sees contended_ and wakes someone (release_raced). From then on the word
// releases with the decrement. One system call (microseconds) the first
// time a lock is contended buys a release without a locked instruction
// every time it is not: the asymmetric fence of user-space RCU.
//
// Biased locking. Once one thread has taken the word bias_threshold times
// in a row, and nobody ever waited for it, the word is biased to that
// thread (bias_ holds its thread_token()). That thread then takes it with
// plain stores: biased_held_ = 1, then a look at bias_; it releases with
// biased_held_ = 0, then a look at bias_. Any other taker (or the bias
// thread while one of its own fibers holds it) takes state_ as usual and
// then revokes the bias: bias_ = revoking, membarrier(2), and it waits
// until biased_held_ is 0. By the same argument as above, a biased
// acquisition in flight either is visible to the revoker, which waits for
// its release, or sees the revocation and backs out; a biased release
// that sees it wakes the revoker. Revoked, the word is as if never biased,
// for good. A fiber that took the word biased may release it from another
// thread (it migrated): only the taking is reserved to the bias thread.
// So a lock used by one thread costs no locked instruction at all, and a
// lock that turns out to be shared pays one more system call, once (the
// quickly reacquirable locks of Dice, Moir and Scherer; the JVM's biased
// locking, which revoked at a safepoint instead).
//
// Destruction. Once a release has let the word go, another thread may take
// it, see it unused, release it and destroy it before the first release
// returns; std requires that to work (the refcounted object that holds its
// own mutex). So a release touches the word only until the store that lets
// it go. Waiters park on the word's address in the parking lot
// (parking_lot.h), which the releaser wakes without touching the word.
// And where the plain paths above looked at the word again after their
// store (contended_, bias_), they now look at fence_epoch, a global that
// the first waiter and a revoker move on before their membarrier: they
// read it before the store, check the word's flag (still theirs to read),
// store, and read it again. If it moved, some lock in the process got its
// first waiter or lost its bias meanwhile, perhaps this one, and they wake
// this address in the parking lot, which costs a spurious wake at worst.
// The argument is the one above: the flag is set before the epoch moves,
// so a release that found the flag clear read the epoch before it moved;
// after the membarrier, either its store is visible or its second read
// sees the epoch moved.
class lock_word {
 public:
  // Never blocks (a revocation it must make may still cost a system call).
  bool try_acquire() noexcept {
    if constexpr (biased_locking_compiled) {
      const std::uintptr_t b = bias_.load(std::memory_order_relaxed);
      if (b == thread_token() && try_acquire_biased(b)) [[likely]] {
        held_biased_ = true;
        return true;
      }
    }
    return try_acquire_word() && word_acquired(nullptr, /*may_block=*/false);
  }
  void acquire() noexcept {
    if (!try_acquire()) [[unlikely]] (void)acquire_slow(nullptr);
  }
  // False when the deadline passed first.
  bool acquire_until(std::chrono::steady_clock::time_point deadline) noexcept {
    return try_acquire() || acquire_slow(&deadline);
  }
  void release() noexcept {
    if (biased_locking_compiled && held_biased_) {
      const std::uint64_t epoch = fence_epoch.load(std::memory_order_acquire);
      if (bias_.load(std::memory_order_relaxed) <= bias_revoking) [[unlikely]] {
        // Being revoked: the revoker waits for this release.
        biased_held_.store(0, std::memory_order_release);
        (void)unpark_address(this);
        return;
      }
      biased_held_.store(0, std::memory_order_release);
      // From here, *this may be gone (the class comment, "Destruction").
      std::atomic_signal_fence(std::memory_order_seq_cst);
      if (fence_epoch.load(std::memory_order_relaxed) != epoch) [[unlikely]] {
        (void)unpark_address(this);
      }
      return;
    }
    release_word();
  }

  // Taken this many times in a row by one thread, a word is biased to it.
  static constexpr std::uint32_t bias_threshold = 1024;

  // Whether the word is biased to a thread now (for tests).
  bool biased() const noexcept { return bias_.load(std::memory_order_relaxed) > bias_revoking; }

 private:
  // bias_: never biased yet; biased no more; revoked but perhaps still
  // held biased; otherwise the thread_token() of the bias thread.
  static constexpr std::uintptr_t bias_none = 0;
  static constexpr std::uintptr_t bias_revoked = 1;
  static constexpr std::uintptr_t bias_revoking = 2;

  bool try_acquire_word() noexcept {
    std::uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  // Called by the bias thread, b being its token.
  bool try_acquire_biased(std::uintptr_t b) noexcept {
    // Another of this thread's fibers holds it (or a fiber that took it
    // here holds it on another thread): take the word, which revokes.
    if (biased_held_.load(std::memory_order_acquire) != 0) return false;
    biased_held_.store(1, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);  // see the class comment
    if (bias_.load(std::memory_order_relaxed) == b) [[likely]] return true;
    back_out_biased();
    return false;
  }
  // After state_ was taken: counts the run of takes by one thread (and
  // biases the word at the end of a long one), or revokes a bias; notes
  // how the word is held. False when it gave the word back (may_block
  // false and still held biased, or the deadline passed while waiting for
  // the biased holder).
  bool word_acquired(const std::chrono::steady_clock::time_point* deadline,
                     bool may_block) noexcept {
    if constexpr (biased_locking_compiled) {
      const std::uintptr_t b = bias_.load(std::memory_order_relaxed);
      if (b == bias_none) {
        const std::uintptr_t t = thread_token();
        if (t != run_token_) {
          run_token_ = t;
          run_length_ = 0;
        } else if (++run_length_ == bias_threshold) [[unlikely]] {
          bias_to(t);
          return true;
        }
      } else if (b != bias_revoked) [[unlikely]] {
        return revoke_bias(deadline, may_block);
      }
    }
    held_biased_ = false;
    return true;
  }
  void release_word() noexcept {
    const std::uint64_t epoch = fence_epoch.load(std::memory_order_acquire);
    if (!contended_.load(std::memory_order_relaxed) &&
        plain_release_enabled.load(std::memory_order_relaxed)) [[likely]] {
      state_.store(0, std::memory_order_release);
      // From here, *this may be gone (the class comment, "Destruction").
      // The load stays after the store in the instruction stream (what the
      // first waiter's membarrier relies on); only the CPU may swap them.
      std::atomic_signal_fence(std::memory_order_seq_cst);
      if (fence_epoch.load(std::memory_order_relaxed) != epoch) [[unlikely]] release_raced();
      return;
    }
    if (state_.fetch_sub(1, std::memory_order_release) != 1) release_slow();
  }
  bool acquire_slow(const std::chrono::steady_clock::time_point* deadline) noexcept;
  void release_slow() noexcept;
  void release_raced() noexcept;
  void become_contended() noexcept;
  void bias_to(std::uintptr_t token) noexcept;
  bool revoke_bias(const std::chrono::steady_clock::time_point* deadline,
                   bool may_block) noexcept;
  void back_out_biased() noexcept;
  void wake_revoker() noexcept;

  std::atomic<std::uint32_t> state_{0};
  std::atomic<bool> contended_{false};  // sticky: set by the first waiter
  std::atomic<std::uint8_t> biased_held_{0};  // 1 while taken through the bias
  // How the holder took the word (so that a fiber that took it biased and
  // moved to another thread releases it the same way). Written by the
  // holder once it holds the word alone: during a revocation the biased
  // holder and the revoker both hold, and the revoker writes it only after
  // the biased holder has released.
  bool held_biased_ = false;
  std::atomic<std::uintptr_t> bias_{bias_none};
  // The thread that took state_ last, and how many times in a row; written
  // only by state_'s holder.
  std::uintptr_t run_token_ = 0;
  std::uint32_t run_length_ = 0;
  // Waiters for state_ (and a revoker waiting for a biased holder) park on
  // this's address in the parking lot.
};

// Whether SPINDLE_MUTEX_BIAS's value (null when unset) asks for biased
// locking: anything but "0" does.
bool biased_locking_wanted(const char* env) noexcept;

// Turns biasing of locks on or off from now on (benchmarks and tests
// compare the two); false where the build or the kernel cannot have it.
bool set_biased_locking(bool on) noexcept;

// The timed members of a timed lock, in terms of Derived::lock_until().
template <class Derived>
class timed_lock_members {
 public:
  // try_lock_for() on steady_clock; a duration too long to add to now
  // waits without a deadline.
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return self().lock_until(steady_after(timeout));
  }
  // try_lock_until() gives up only once `deadline` has passed on its own
  // clock (see sched/clock.h's until_on_clock).
  template <class Clock, class Duration>
  [[nodiscard]] bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    return until_on_clock(deadline, [this](steady_time d) { return self().lock_until(d); });
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
//
// Destruction: as std's, a mutex may be destroyed once it is unlocked and
// no fiber waits for it, even before the unlock() that released it has
// returned ("it is possible for another thread B to lock the same mutex,
// observe that it is no longer in use, unlock it, and destroy it, before
// thread A appears to have returned from its unlock call"): an unlock
// touches the mutex only until the store that lets it go (lock_word,
// "Destruction"). Destroying it while it is locked, or while fibers wait
// in lock(), is undefined, as std's, and is not detected: its waiters
// park by address in the parking lot (sync/detail/parking_lot.h), so the
// mutex keeps no list or count of them to check, and its destructor stays
// trivial. Such waiters would stay parked for ever (spindle::run() with
// them), or wake into freed memory when the holder unlocks.
class mutex {
 public:
  constexpr mutex() noexcept = default;
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;

  void lock() {
    if (!word_.try_acquire()) [[unlikely]] lock_slow();
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
// std::timed_mutex does. Destruction: as mutex's; a waiter whose deadline
// passed touches it until its call returns.
class timed_mutex : public mutex, public detail::timed_lock_members<timed_mutex> {
 private:
  friend class detail::timed_lock_members<timed_mutex>;
  using mutex::lock_until;
};

// recursive_mutex may be locked again by its owner; it must be unlocked as
// many times. As std::recursive_mutex, with try_lock_for/until as in
// std::recursive_timed_mutex (also spelled recursive_timed_mutex here).
// Destruction: as mutex's (once unlocked as often as locked).
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
