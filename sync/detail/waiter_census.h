// waiter_census: how many fibers (or plain threads) wait on a sync/
// primitive now, for tests that must know a waiter is parked before they
// go on (test/test_util.h's await_parked()). Internal; nothing in the
// library calls it.
//
// A waiter counts from the moment it is registered where the primitive's
// wakers look for it, under the lock they look under: a wake from then on
// reaches it. Each count is taken under that lock, so it is exact at that
// moment:
//   - primitives that park by address (mutexes, semaphores, latch,
//     once_flag): the waiters with the object's key in its parking-lot
//     bucket, under the bucket's lock (parked_count());
//   - primitives with a queue inside (condition variables, barrier,
//     wait_group): the queue's length under its lock;
//   - channels: the senders, receivers and select() cases queued, under
//     the channel's lock, which a waiter holds until it has switched out;
//   - shared_mutex: its waiting readers and writers, under its lock.
// A waiter on a queue or in the parking lot may not have switched out yet
// when it is counted (it lets the lock go first); a wake that comes then is
// not lost (sched/park.h), so to the primitive it is parked. A mutex's
// count includes a fiber revoking its bias (lock_word.h), which also parks
// on its address.
#pragma once

#include <cstddef>

#include "sync/barrier.h"
#include "sync/channel.h"
#include "sync/condition_variable.h"
#include "sync/detail/parking_lot.h"
#include "sync/latch.h"
#include "sync/mutex.h"
#include "sync/once.h"
#include "sync/semaphore.h"
#include "sync/shared_mutex.h"
#include "sync/wait_group.h"

namespace spindle::detail {

struct waiter_census {
  // Parked by address.
  static std::size_t count(const mutex& m) noexcept { return parked_count(&m.word_); }
  static std::size_t count(const recursive_mutex& m) noexcept { return parked_count(&m.word_); }
  template <std::ptrdiff_t N>
  static std::size_t count(const counting_semaphore<N>& s) noexcept {
    return parked_count(&s.core_);
  }
  static std::size_t count(const latch& l) noexcept { return parked_count(&l); }
  static std::size_t count(const once_flag& f) noexcept { return parked_count(&f.state_); }

  // Queued inside.
  static std::size_t count(const condition_variable_any& cv) noexcept {
    return cv.core_.count_waiters();
  }
  static std::size_t count(const condition_variable& cv) noexcept { return count(cv.any_); }
  template <class F>
  static std::size_t count(const barrier<F>& b) noexcept {
    return b.cv_.count_waiters();
  }
  static std::size_t count(const wait_group& wg) noexcept { return wg.waiters_.count_waiters(); }
  template <class T>
  static std::size_t count(const channel<T>& ch) noexcept {
    return static_cast<const channel_base&>(ch).count_waiters();
  }
  static std::size_t count(const shared_mutex& m) noexcept SPINDLE_EXCLUDES(m.lock_) {
    m.lock_.lock();
    const std::size_t n = m.readers_.size() + m.writers_.size();
    m.lock_.unlock();
    return n;
  }
};

}  // namespace spindle::detail
