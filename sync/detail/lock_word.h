// lock_word: the lock inside spindle::mutex, timed_mutex and
// recursive_mutex (sync/mutex.h), and the process-wide switches it reads.
// Internal; the design, with measurements, is in docs/sync.md, "Mutexes".
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "fiber/sanitizers.h"
#include "sync/detail/parking_lot.h"

namespace spindle::detail {

// Whether a lock_word may release with a plain store (see there): set once
// at start-up when the kernel offers membarrier(2)'s private expedited
// command, which the first waiter of each word needs. Never in
// ThreadSanitizer builds, which cannot see membarrier's ordering.
inline std::atomic<bool> plain_release_enabled{false};

// Moved on by every lock_word's first waiter and by every revocation of a
// bias, each before its membarrier(2); a release on a plain path reads it
// before and after its store (see lock_word, "Release").
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

// A futex-style lock word (Drepper, "Futexes Are Tricky", mutex 2) whose
// waiters park by its address in the parking lot (parking_lot.h). Taking
// it costs one CAS when nobody waits, and no locked instruction at all
// once it is biased to the thread that keeps taking it. state_: 0
// unlocked; 1 locked and nobody waits; 2 locked and someone may wait. A
// waiter marks it 2 and parks while it still reads 2 (checked under the
// bucket's lock); a release that finds 2 wakes one waiter, who tries
// again.
//
// Destruction. std lets another thread take the word after a release, see
// it unused, release it and destroy it before the first release has
// returned (the refcounted object that holds its own mutex). So a release
// reads the word's own fields only up to the store that lets it go; after
// that store it reads only fence_epoch, a global, and wakes through the
// parking lot by address: at worst a spurious wake of a new word at the
// same address, whose waiter checks its condition and parks again.
//
// Release. A word that has had a waiter (contended_, set for good by the
// first one), or a process without plain releases, releases with one
// atomic decrement, whose result says whether anyone may wait. A word
// that has never had a waiter releases with a plain store instead: a
// locked instruction costs as much as the rest of a lock and unlock
// together. The plain release runs
//
//   e0 = fence_epoch; contended_ clear?; state_ = 0; e1 = fence_epoch
//
// and wakes one waiter of its address if e1 != e0. The first waiter sets
// contended_, then moves fence_epoch on, then calls membarrier(2), which
// makes every thread of the process execute a full fence, and only then
// marks state_ 2 and parks. A release that found contended_ clear read e0
// before the epoch moved. The CPU may let its load of e1 pass its store (a
// store waits in the store buffer; the compiler keeps them in order), but
// not across the fence: either its store is visible to the waiter, which
// then takes the word instead of parking, or it reads e1 after the fence,
// sees the epoch moved, and wakes the waiter. One system call
// (microseconds) the first time a word is contended buys a release without
// a locked instruction every time it is not: the asymmetric fence of
// user-space RCU. An epoch that moved for another word costs a spurious
// wake of this address, which finds nobody or a waiter that parks again.
//
// Biased locking. Once one thread has taken the word bias_threshold times
// in a row, and nobody ever waited for it, the word is biased to that
// thread (bias_ holds its thread_token()). That thread then takes it with
// plain stores: biased_held_ = 1, then a look at bias_ (the word is still
// its own to read). It releases the same way as a plain release, with
// biased_held_ = 0 for the store: e0, a look at bias_, the store, e1. Any
// other taker (or the bias thread while one of its own fibers holds it)
// takes state_ as usual and then revokes the bias: bias_ = revoking, the
// epoch moved on, membarrier(2), and it waits (parked on the address)
// until biased_held_ is 0. By the argument above, a biased take in flight
// is either visible to the revoker, which waits for its release, or sees
// the revocation and backs out; a biased release in flight either is
// visible to it or sees the epoch moved and wakes it. Revoked, the word
// is as if never biased, for good. A fiber that took the word biased may
// release it from another thread (it migrated): only the taking is
// reserved to the bias thread. So a lock used by one thread costs no
// locked instruction at all, and a lock that turns out to be shared pays
// one more system call, once (the quickly reacquirable locks of Dice,
// Moir and Scherer; the JVM's biased locking, which revoked at a safepoint
// instead).
//
// lock_word is not a capability for the thread-safety analysis: the mutex
// that holds it is, and its members are that mutex's implementation.
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
      // From here, *this may be gone ("Destruction" above). The load stays
      // after the store in the instruction stream ("Release").
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
    std::atomic_signal_fence(std::memory_order_seq_cst);  // see "Biased locking"
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
      // From here, *this may be gone ("Destruction" above). The load stays
      // after the store in the instruction stream (what the first waiter's
      // membarrier relies on); only the CPU may swap them.
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
};

// Whether SPINDLE_MUTEX_BIAS's value (null when unset) asks for biased
// locking: anything but "0" does.
bool biased_locking_wanted(const char* env) noexcept;

// Turns biasing of locks on or off from now on (benchmarks and tests
// compare the two); false where the build or the kernel cannot have it.
bool set_biased_locking(bool on) noexcept;

}  // namespace spindle::detail
