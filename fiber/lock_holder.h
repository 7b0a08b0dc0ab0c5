// lock_holder: std::unique_lock for Spindle's own code, annotated for
// clang's thread-safety analysis (libstdc++'s std::unique_lock and
// std::lock_guard are not, so the analysis cannot see what they hold); and
// os_mutex, a std::mutex the analysis knows as a lock, for the runtime's
// own short critical sections on OS threads. Internal; the public API
// takes std's lock types, as std's does.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "fiber/thread_annotations.h"

namespace spindle::detail {

class SPINDLE_CAPABILITY("mutex") os_mutex {
 public:
  void lock() SPINDLE_ACQUIRE() { m_.lock(); }
  void unlock() SPINDLE_RELEASE() { m_.unlock(); }
  bool try_lock() SPINDLE_TRY_ACQUIRE(true) { return m_.try_lock(); }

  // wait() and wait_until() wait on `cv` with *this held, as
  // std::condition_variable's do with a unique_lock: the lock is let go
  // while waiting and held again on return.
  void wait(std::condition_variable& cv) SPINDLE_REQUIRES(this) {
    std::unique_lock<std::mutex> l(m_, std::adopt_lock);
    cv.wait(l);
    (void)l.release();
  }
  std::cv_status wait_until(std::condition_variable& cv,
                            std::chrono::steady_clock::time_point t) SPINDLE_REQUIRES(this) {
    std::unique_lock<std::mutex> l(m_, std::adopt_lock);
    const std::cv_status r = cv.wait_until(l, t);
    (void)l.release();
    return r;
  }

 private:
  std::mutex m_;
};

// Holds `m` from construction to destruction, except between an unlock()
// and the next lock(): what a condition variable's wait does with it.
template <class Lockable>
class SPINDLE_SCOPED_CAPABILITY lock_holder {
 public:
  explicit lock_holder(Lockable& m) SPINDLE_ACQUIRE(m) : m_(m) { m_.lock(); }
  ~lock_holder() SPINDLE_RELEASE() {
    if (held_) m_.unlock();
  }
  lock_holder(const lock_holder&) = delete;
  lock_holder& operator=(const lock_holder&) = delete;

  void lock() SPINDLE_ACQUIRE() {
    m_.lock();
    held_ = true;
  }
  void unlock() SPINDLE_RELEASE() {
    held_ = false;
    m_.unlock();
  }

 private:
  Lockable& m_;
  bool held_ = true;
};

}  // namespace spindle::detail
