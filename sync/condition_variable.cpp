#include "sync/condition_variable.h"

namespace spindle::detail {

void cv_core::notify_one() noexcept {
  waiters_.lock().lock();
  (void)waiters_.wake_one();
  waiters_.lock().unlock();
}

void cv_core::notify_all() noexcept {
  waiters_.lock().lock();
  (void)waiters_.wake_all();
  waiters_.lock().unlock();
}

}  // namespace spindle::detail
