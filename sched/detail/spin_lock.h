// spin_lock: the scheduler's lock for critical sections of a few dozen
// instructions (a timer heap's operation, a poll descriptor's hand-off):
// it spins with pause instructions, then yields its thread, so that a
// holder preempted by the OS gets to run. Never parks (the scheduler is
// what parking needs). A capability for clang's thread-safety analysis.
#pragma once

#include <atomic>
#include <thread>

#include "fiber/thread_annotations.h"

namespace spindle::detail {

class SPINDLE_CAPABILITY("spinlock") spin_lock {
 public:
  void lock() noexcept SPINDLE_ACQUIRE() {
    while (held_.exchange(true, std::memory_order_acquire)) {
      for (int i = 0; held_.load(std::memory_order_relaxed); ++i) {
        if (i < spins_before_yield) {
#if defined(__x86_64__) || defined(__i386__)
          __builtin_ia32_pause();
#endif
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  void unlock() noexcept SPINDLE_RELEASE() { held_.store(false, std::memory_order_release); }

 private:
  // Pause instructions before yielding: the lock is held for a few dozen
  // instructions, so a spin usually wins.
  static constexpr int spins_before_yield = 64;

  std::atomic<bool> held_{false};
};

}  // namespace spindle::detail
