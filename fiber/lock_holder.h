// lock_holder: std::unique_lock for sync/'s own code, annotated for clang's
// thread-safety analysis (libstdc++'s std::unique_lock and std::lock_guard
// are not, so the analysis cannot see what they hold). Internal; the public
// API takes std's lock types, as std's does.
#pragma once

#include "fiber/thread_annotations.h"

namespace spindle::detail {

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
