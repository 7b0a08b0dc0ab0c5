// spindle::counting_semaphore, binary_semaphore, latch, barrier: std's
// <semaphore>, <latch> and <barrier> for fibers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <utility>

#include "sync/condition_variable.h"
#include "sync/detail/wait_queue.h"

namespace spindle {

namespace detail {
[[noreturn]] inline void sync_misuse(const char* message) noexcept {
  std::fprintf(stderr, "spindle: %s\n", message);
  std::abort();
}

// A counter that waiters take from; the core of counting_semaphore.
class semaphore_core {
 public:
  explicit semaphore_core(std::ptrdiff_t initial) noexcept : count_(initial) {}

  bool try_acquire() noexcept {
    std::ptrdiff_t c = count_.load(std::memory_order_relaxed);
    while (c > 0) {
      if (count_.compare_exchange_weak(c, c - 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  // acquire_until(nullptr) waits for ever.
  bool acquire_until(const std::chrono::steady_clock::time_point* deadline) noexcept {
    for (;;) {
      if (try_acquire()) return true;
      waiters_.lock().lock();
      // Checked under the lock release() wakes under: no lost wakeup.
      if (count_.load(std::memory_order_relaxed) > 0) {
        waiters_.lock().unlock();
        continue;
      }
      wait_node node;
      if (deadline == nullptr) {
        waiters_.wait(node);
      } else if (!waiters_.wait_until(node, *deadline)) {
        return try_acquire();
      }
    }
  }

  void release(std::ptrdiff_t update) noexcept {
    count_.fetch_add(update, std::memory_order_release);
    waiters_.lock().lock();
    for (std::ptrdiff_t i = 0; i < update && waiters_.wake_one() != nullptr; ++i) {
    }
    waiters_.lock().unlock();
  }

 private:
  std::atomic<std::ptrdiff_t> count_;
  wait_queue waiters_;
};
}  // namespace detail

// counting_semaphore is std::counting_semaphore for fibers: acquire()
// parks the calling fiber while the count is zero. Any fiber or thread.
template <std::ptrdiff_t LeastMaxValue = std::numeric_limits<std::ptrdiff_t>::max()>
class counting_semaphore {
 public:
  static constexpr std::ptrdiff_t max() noexcept { return LeastMaxValue; }

  explicit counting_semaphore(std::ptrdiff_t desired) noexcept : core_(desired) {}
  counting_semaphore(const counting_semaphore&) = delete;
  counting_semaphore& operator=(const counting_semaphore&) = delete;

  // release() adds `update` (>= 0) to the count and wakes as many waiters.
  void release(std::ptrdiff_t update = 1) noexcept {
    if (update < 0) detail::sync_misuse("counting_semaphore::release: negative update");
    core_.release(update);
  }
  void acquire() noexcept { core_.acquire_until(nullptr); }
  [[nodiscard]] bool try_acquire() noexcept { return core_.try_acquire(); }
  template <class Rep, class Period>
  [[nodiscard]] bool try_acquire_for(const std::chrono::duration<Rep, Period>& timeout) {
    return try_acquire_until(std::chrono::steady_clock::now() + timeout);
  }
  template <class Clock, class Duration>
  [[nodiscard]] bool try_acquire_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    const auto d = detail::to_steady(deadline);
    return core_.acquire_until(&d);
  }

 private:
  detail::semaphore_core core_;
};

using binary_semaphore = counting_semaphore<1>;

// latch is std::latch for fibers: a single-use counter that wait() waits to
// see at zero.
class latch {
 public:
  static constexpr std::ptrdiff_t max() noexcept { return std::numeric_limits<std::ptrdiff_t>::max(); }
  explicit latch(std::ptrdiff_t expected) noexcept : count_(expected) {}
  latch(const latch&) = delete;
  latch& operator=(const latch&) = delete;

  // count_down() lowers the counter; below zero is a caller bug (abort).
  void count_down(std::ptrdiff_t n = 1) noexcept {
    const std::ptrdiff_t now = count_.fetch_sub(n, std::memory_order_acq_rel) - n;
    if (now < 0) detail::sync_misuse("latch::count_down: counter below zero");
    if (now == 0) {
      waiters_.lock().lock();
      (void)waiters_.wake_all();
      waiters_.lock().unlock();
    }
  }
  [[nodiscard]] bool try_wait() const noexcept {
    return count_.load(std::memory_order_acquire) == 0;
  }
  void wait() const noexcept {
    if (try_wait()) return;
    waiters_.lock().lock();
    if (try_wait()) {
      waiters_.lock().unlock();
      return;
    }
    detail::wait_node node;
    waiters_.wait(node);
  }
  void arrive_and_wait(std::ptrdiff_t n = 1) noexcept {
    count_down(n);
    wait();
  }

 private:
  std::atomic<std::ptrdiff_t> count_;
  mutable detail::wait_queue waiters_;
};

namespace detail {
struct no_completion {
  void operator()() noexcept {}
};
}  // namespace detail

// barrier is std::barrier for fibers: a reusable rendezvous of a fixed
// number of participants per phase; the completion function runs once per
// phase, on the last fiber to arrive, before any is released.
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

  explicit barrier(std::ptrdiff_t expected, CompletionFunction f = CompletionFunction())
      : expected_(expected), remaining_(expected), completion_(std::move(f)) {}
  barrier(const barrier&) = delete;
  barrier& operator=(const barrier&) = delete;

  [[nodiscard]] arrival_token arrive(std::ptrdiff_t n = 1) {
    std::unique_lock lock(mu_);
    const std::uint64_t phase = phase_;
    remaining_ -= n;
    if (remaining_ < 0) detail::sync_misuse("barrier::arrive: more arrivals than expected");
    if (remaining_ == 0) complete_phase();
    return arrival_token(phase);
  }
  void wait(arrival_token&& token) const {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return phase_ != token.phase_; });
  }
  void arrive_and_wait() { wait(arrive()); }
  // arrive_and_drop() arrives and leaves: later phases expect one fewer.
  void arrive_and_drop() {
    std::unique_lock lock(mu_);
    --expected_;
    --remaining_;
    if (remaining_ == 0) complete_phase();
  }

 private:
  // Holds mu_.
  void complete_phase() {
    completion_();
    remaining_ = expected_;
    ++phase_;
    cv_.notify_all();
  }

  mutable mutex mu_;
  mutable condition_variable cv_;
  std::ptrdiff_t expected_;   // guarded by mu_
  std::ptrdiff_t remaining_;  // guarded by mu_
  std::uint64_t phase_ = 0;   // guarded by mu_
  CompletionFunction completion_;
};

}  // namespace spindle
