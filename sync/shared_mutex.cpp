#include "sync/shared_mutex.h"

#include "sync/detail/misuse.h"

namespace spindle {

void shared_mutex::report_waited_on() noexcept {
  lock_.lock();
  const std::size_t readers = readers_.size();
  const std::size_t writers = writers_.size();
  lock_.unlock();
  detail::destroyed_while_waited_on("shared_mutex", this, {readers, "readers"},
                                    {writers, "writers"}, "unlock it and let them leave first");
}

bool shared_mutex::try_acquire_exclusive() noexcept {
  lock_.lock();
  const bool ok = !writer_ && readers_count_ == 0;
  if (ok) writer_ = true;
  lock_.unlock();
  return ok;
}

bool shared_mutex::try_acquire_shared() noexcept {
  lock_.lock();
  const bool ok = !writer_ && writers_waiting_ == 0;
  if (ok) ++readers_count_;
  lock_.unlock();
  return ok;
}

bool shared_mutex::acquire_exclusive(
    const std::chrono::steady_clock::time_point* deadline) noexcept {
  lock_.lock();
  if (!writer_ && readers_count_ == 0) {
    writer_ = true;
    lock_.unlock();
    return true;
  }
  ++writers_waiting_;
  const bool woken = wait_in(writers_, deadline, true);
  lock_.unlock();
  return woken;
}

bool shared_mutex::acquire_shared(
    const std::chrono::steady_clock::time_point* deadline) noexcept {
  lock_.lock();
  if (!writer_ && writers_waiting_ == 0) {
    ++readers_count_;
    lock_.unlock();
    return true;
  }
  const bool woken = wait_in(readers_, deadline, false);
  lock_.unlock();
  return woken;
}

bool shared_mutex::wait_in(detail::wait_list& list,
                           const std::chrono::steady_clock::time_point* deadline,
                           bool writer) noexcept {
  detail::wait_node node;
  node.waiter = detail::current_waiter();
  detail::note_wait(node.waiter, detail::wait_reason::shared_mutex, this, writer ? 0 : 1);
  detail::prepare_park(node.waiter);
  list.push_back(&node);
  lock_.unlock();
  const bool woken = deadline == nullptr ? (detail::park(node.waiter), true)
                                         : detail::park_until(node.waiter, *deadline);
  // Woken: hand_off() gave us the lock under lock_; taking lock_ once (the
  // caller lets it go) makes sure it is done with the mutex. Timed out:
  // withdraw if still queued (if a hand-off popped us, its unpark failed
  // and it passed the lock on).
  lock_.lock();
  if (!woken && node.queued) {
    list.remove(&node);
    if (writer) {
      --writers_waiting_;
      // Readers held back only by this waiting writer may go now.
      if (writers_waiting_ == 0 && !writer_) hand_off();
    }
  }
  return woken;
}

void shared_mutex::hand_off() noexcept {
  while (detail::wait_node* w = writers_.pop_front()) {
    --writers_waiting_;
    if (detail::unpark(w->waiter)) {
      writer_ = true;
      return;
    }
  }
  if (writers_waiting_ == 0) {
    while (detail::wait_node* r = readers_.pop_front()) {
      if (detail::unpark(r->waiter)) ++readers_count_;
    }
  }
}

void shared_mutex::release_exclusive() noexcept {
  lock_.lock();
  writer_ = false;
  hand_off();
  lock_.unlock();
}

void shared_mutex::release_shared() noexcept {
  lock_.lock();
  if (--readers_count_ == 0) hand_off();
  lock_.unlock();
}

}  // namespace spindle
