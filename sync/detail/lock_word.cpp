#include "sync/detail/lock_word.h"

#include <cstdlib>
#include <string_view>

#include "fiber/sanitizers.h"
#include "sched/park.h"

namespace spindle::detail {

namespace {

// Turns plain releases on where membarrier's private expedited command
// works (sched/park.h's process_fence_available()).
[[maybe_unused]] const bool plain_release_setup = [] {
#if !SPINDLE_TSAN
  if (process_fence_available()) {
    plain_release_enabled.store(true, std::memory_order_seq_cst);
    biased_locking_enabled.store(biased_locking_wanted(std::getenv("SPINDLE_MUTEX_BIAS")),
                                 std::memory_order_seq_cst);
  }
#endif
  return true;
}();

// Spinning before parking: attempts, and pauses between them. Go spins
// 4 x 30 pauses. A waiter that parks turns every later release into a
// wake, and a wake across workers costs microseconds, so spinning longer
// pays while the holder keeps releasing quickly: 8 fibers contending on 2
// workers (sync_bench's BM_MutexContended8Fibers2Workers), alternating
// runs, 23-39 ns an operation with 8 x 60 against 30-46 ns with 4 x 30
// (a pause costs about 27 ns on that machine; about 13 µs of spinning in
// all). Finer checks (24 x 5) were far worse, 72-116 ns: each look pulls
// the lock's line from the holder's core.
constexpr int spin_attempts = 8;
constexpr int spin_pauses = 60;
}  // namespace

bool lock_word::acquire_slow(const std::chrono::steady_clock::time_point* deadline) noexcept {
  // Spin a little first, when the holder can be running on another worker
  // at the same moment: a critical section is usually shorter than a park
  // and a wake (Go's sync.Mutex spins too, and only on multicore). With a
  // single worker the holder cannot run while we spin, so we do not.
  if (parallel_workers()) {
    for (int i = 0; i < spin_attempts; ++i) {
      for (int k = 0; k < spin_pauses; ++k) __builtin_ia32_pause();
      if (state_.load(std::memory_order_relaxed) == 0 && try_acquire_word()) {
        return word_acquired(deadline, /*may_block=*/true);
      }
    }
  }
  if (!contended_.load(std::memory_order_relaxed)) become_contended();
  // Mark the word contended; if it was free meanwhile, we have it.
  std::uint32_t c = state_.exchange(2, std::memory_order_acquire);
  while (c != 0) {
    // Park only while the word still says "locked, contended", checked
    // under the parking lot's lock that release_slow() wakes under.
    const park_result r = park_on(
        this, [this] { return state_.load(std::memory_order_relaxed) == 2; }, deadline,
        wait_reason::mutex);
    if (r == park_result::timeout) return false;
    // Woken, or released meanwhile: try again, staying "contended" since
    // others may still wait.
    c = state_.exchange(2, std::memory_order_acquire);
  }
  return word_acquired(deadline, /*may_block=*/true);
}

void lock_word::release_slow() noexcept {
  state_.store(0, std::memory_order_release);
  release_raced();
}

void lock_word::release_raced() noexcept {
  // Released already (by release_slow(), or by a plain store that may have
  // raced with a first waiter): wake one waiter, who tries again. By
  // address only: *this may be gone already (lock_word.h, "Destruction").
  (void)unpark_address(this, 1);
}

void lock_word::become_contended() noexcept {
  // Only the waiter that sets the flag fences; later ones find it set,
  // and find this first one still on its way to the lock (it has not
  // parked before its fence returned), so any wake it may need follows.
  if (contended_.exchange(true, std::memory_order_seq_cst)) return;
  // A lock that has had a waiter is never biased (one already biased is
  // revoked by whoever takes state_ next).
  std::uintptr_t none = bias_none;
  (void)bias_.compare_exchange_strong(none, bias_revoked, std::memory_order_relaxed);
  if (plain_release_enabled.load(std::memory_order_seq_cst)) {
    // After contended_, before the fence (lock_word.h, "Release").
    fence_epoch.fetch_add(1, std::memory_order_seq_cst);
    process_wide_fence();
  }
}

void lock_word::bias_to(std::uintptr_t token) noexcept {
  // The caller holds state_; a first waiter may race to mark the word
  // never-biased, hence the CAS. Waiters past or present: no bias.
  held_biased_ = false;
  std::uintptr_t none = bias_none;
  const bool bias = biased_locking_enabled.load(std::memory_order_relaxed) &&
                    !contended_.load(std::memory_order_relaxed);
  if (!bias_.compare_exchange_strong(none, bias ? token : bias_revoked,
                                     std::memory_order_relaxed) ||
      !bias) {
    return;
  }
  // From here the bias thread takes the word through biased_held_, and the
  // caller, which may park before it releases (letting another fiber of
  // this thread try), must be seen to hold it that way: turn its hold
  // into a biased one, then let go of state_. A taker of state_ then finds
  // the bias and waits for this hold's release like any other.
  biased_held_.store(1, std::memory_order_relaxed);
  held_biased_ = true;
  release_word();
}

bool lock_word::revoke_bias(const std::chrono::steady_clock::time_point* deadline,
                            bool may_block) noexcept {
  // The caller holds state_, and only state_'s holder moves bias_ on from a
  // thread's token, so this is the one revoker.
  if (bias_.load(std::memory_order_relaxed) != bias_revoking) {
    bias_.store(bias_revoking, std::memory_order_seq_cst);
    // After bias_, before the fence: a biased release in flight reads the
    // epoch, not bias_, after its store (lock_word.h, "Biased locking").
    fence_epoch.fetch_add(1, std::memory_order_seq_cst);
    // After the fence a biased take in flight is visible below, or it will
    // see the revocation and back out (lock_word.h, "Biased locking").
    process_wide_fence();
  }
  // Wait until the biased holder, if any, has released.
  while (biased_held_.load(std::memory_order_acquire) != 0) {
    if (!may_block) {
      release_word();
      return false;
    }
    // Checked under the parking lot's lock that its release wakes under.
    const park_result r = park_on(
        this, [this] { return biased_held_.load(std::memory_order_relaxed) != 0; }, deadline,
        wait_reason::mutex);
    if (r == park_result::timeout) {
      release_word();
      return false;
    }
  }
  bias_.store(bias_revoked, std::memory_order_relaxed);
  held_biased_ = false;
  return true;
}

void lock_word::back_out_biased() noexcept {
  // The bias was revoked while we took it: undo, and wake the revoker in
  // case it saw our take.
  biased_held_.store(0, std::memory_order_release);
  wake_revoker();
}

void lock_word::wake_revoker() noexcept {
  // The revoker parks on the same address as any waiters for state_ (who
  // wake, find state_ still taken and park again): wake them all. This
  // happens once in a word's life.
  (void)unpark_address(this);
}

__attribute__((noinline)) std::uintptr_t thread_token_slow() noexcept {
  static thread_local char token;
  return reinterpret_cast<std::uintptr_t>(&token);
}

bool biased_locking_wanted(const char* env) noexcept {
  return env == nullptr || std::string_view(env) != "0";
}

bool set_biased_locking(bool on) noexcept {
  if (!biased_locking_compiled || !plain_release_enabled.load(std::memory_order_relaxed)) {
    return false;
  }
  biased_locking_enabled.store(on, std::memory_order_relaxed);
  return on;
}

}  // namespace spindle::detail
