#include "sync/detail/cv_core.h"

#include "sync/detail/misuse.h"

namespace spindle::detail {

void cv_core::notify_one() noexcept {
  waiters_.lock().lock();
  queue_node* woken = waiters_.wake_one();
  waiters_.lock().unlock();
  wait_queue::release(woken);  // the last touch: the woken may destroy *this now
}

void cv_core::notify_all() noexcept {
  waiters_.lock().lock();
  queue_node* woken = waiters_.wake_all();
  waiters_.lock().unlock();
  wait_queue::release(woken);  // the last touch: the woken may destroy *this now
}

void cv_core::report_waited_on(const char* what, const void* object) noexcept {
  waiters_.lock().lock();
  const std::size_t n = waiters_.waiter_count();
  waiters_.lock().unlock();
  destroyed_while_waited_on(what, object, {n, "waiters"}, {}, "notify them first");
}

}  // namespace spindle::detail
