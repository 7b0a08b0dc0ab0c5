#include "sync/mutex.h"

#include <system_error>

#include "fiber/this_fiber.h"

namespace spindle {

void mutex::check_not_owner(const char* what) const {
  if (owner_.load(std::memory_order_relaxed) == detail::current_id()) {
    throw std::system_error(std::make_error_code(std::errc::resource_deadlock_would_occur),
                            what);
  }
}

void mutex::lock_slow() {
  check_not_owner("spindle::mutex::lock: the caller already owns the mutex");
  word_.acquire();
}

bool mutex::lock_until(std::chrono::steady_clock::time_point deadline) {
  if (!word_.try_acquire()) {
    check_not_owner("spindle::timed_mutex::try_lock_until: the caller already owns the mutex");
    if (!word_.acquire_until(deadline)) return false;
  }
  owner_.store(detail::current_id(), std::memory_order_relaxed);
  return true;
}

// recursive_mutex's members are its capability's implementation: they hold
// it from the owner check on, which the thread-safety analysis cannot see.

void recursive_mutex::lock() SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
  const std::uint64_t me = detail::current_id();
  if (owner_.load(std::memory_order_relaxed) == me) {
    ++depth_;
    return;
  }
  word_.acquire();
  owner_.store(me, std::memory_order_relaxed);
  depth_ = 1;
}

bool recursive_mutex::try_lock() noexcept SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
  const std::uint64_t me = detail::current_id();
  if (owner_.load(std::memory_order_relaxed) == me) {
    ++depth_;
    return true;
  }
  if (!word_.try_acquire()) return false;
  owner_.store(me, std::memory_order_relaxed);
  depth_ = 1;
  return true;
}

bool recursive_mutex::lock_until(std::chrono::steady_clock::time_point deadline)
    SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
  const std::uint64_t me = detail::current_id();
  if (owner_.load(std::memory_order_relaxed) == me) {
    ++depth_;
    return true;
  }
  if (!word_.acquire_until(deadline)) return false;
  owner_.store(me, std::memory_order_relaxed);
  depth_ = 1;
  return true;
}

void recursive_mutex::unlock() SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
  if (owner_.load(std::memory_order_relaxed) != detail::current_id()) [[unlikely]] {
    detail::sync_misuse("spindle::recursive_mutex::unlock: the caller does not own the mutex");
  }
  if (--depth_ != 0) return;
  owner_.store(0, std::memory_order_relaxed);
  word_.release();
}

}  // namespace spindle
