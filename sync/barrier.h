// spindle::barrier: std's <barrier> for fibers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>

#include "fiber/thread_annotations.h"
#include "sync/detail/cv_core.h"
#include "fiber/lock_holder.h"
#include "sync/detail/misuse.h"
#include "sync/mutex.h"

namespace spindle {

namespace detail {
struct no_completion {
  void operator()() noexcept {}
};
}  // namespace detail

// barrier is std::barrier for fibers: a reusable rendezvous of a fixed
// number of participants per phase; the completion function runs once per
// phase, on the last fiber to arrive, before any is released.
//
// A completion function that throws ends the process (std::terminate), as
// std's since LWG 3898: the phase cannot complete, and its waiters would
// wait for ever.
//
// Destruction: a barrier may be destroyed once no fiber is in a call on it:
// every wait() (and arrive_and_wait()) must have returned, since a released
// waiter takes the barrier's lock again on its way out. Destroying it while
// fibers wait for a phase to complete is undefined, and is caught while a
// spindle::run() runtime runs (see sync/detail/misuse.h): the destructor
// aborts with "spindle: barrier 0x... destroyed while fibers wait on it (N
// waiters); let the phase complete and their wait() calls return first"
// (otherwise they would stay parked for ever, and spindle::run() would wait
// for them). The check costs the destructor one uncontended lock; it cannot
// see a waiter already released but not yet returned.
template <class CompletionFunction = detail::no_completion>
class barrier {
 public:
  // An arrival_token names the phase it was handed out in.
  class arrival_token {
   public:
    arrival_token(arrival_token&&) noexcept = default;
    arrival_token& operator=(arrival_token&&) noexcept = default;

   private:
    friend class barrier;
    explicit arrival_token(std::uint64_t phase) noexcept : phase_(phase) {}
    std::uint64_t phase_;
  };

  static constexpr std::ptrdiff_t max() noexcept { return std::numeric_limits<std::ptrdiff_t>::max(); }

  // constexpr, as std's (for constinit globals).
  constexpr explicit barrier(std::ptrdiff_t expected, CompletionFunction f = CompletionFunction())
      : expected_(expected), remaining_(expected), completion_(std::move(f)) {}
  barrier(const barrier&) = delete;
  barrier& operator=(const barrier&) = delete;
  ~barrier() { cv_.abort_if_waited_on("barrier", this); }

  [[nodiscard]] arrival_token arrive(std::ptrdiff_t n = 1) {
    detail::lock_holder lock(mu_);
    const std::uint64_t phase = phase_;
    remaining_ -= n;
    if (remaining_ < 0) detail::sync_misuse("barrier::arrive: more arrivals than expected");
    if (remaining_ == 0) complete_phase();
    return arrival_token(phase);
  }
  void wait(arrival_token&& token) const {
    detail::outer_wait reason(detail::wait_reason::barrier, this);
    detail::lock_holder lock(mu_);
    while (phase_ == token.phase_) cv_.wait(lock);
  }
  void arrive_and_wait() { wait(arrive()); }
  // arrive_and_drop() arrives and leaves: later phases expect one fewer.
  void arrive_and_drop() {
    detail::lock_holder lock(mu_);
    --expected_;
    --remaining_;
    if (remaining_ == 0) complete_phase();
  }

 private:
  friend struct detail::waiter_census;

  // noexcept: a throwing completion reaches std::terminate.
  void complete_phase() noexcept SPINDLE_REQUIRES(mu_) {
    completion_();
    remaining_ = expected_;
    ++phase_;
    cv_.notify_all();
  }

  mutable mutex mu_;
  mutable detail::cv_core cv_;  // a condition variable on mu_
  std::ptrdiff_t expected_ SPINDLE_GUARDED_BY(mu_);
  std::ptrdiff_t remaining_ SPINDLE_GUARDED_BY(mu_);
  std::uint64_t phase_ SPINDLE_GUARDED_BY(mu_) = 0;
  CompletionFunction completion_;
};

}  // namespace spindle
