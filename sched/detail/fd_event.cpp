// fd_event (see fd_event.h for the contract).
//
// A wait is a node on the waiting fiber's stack with an ev_io (the
// fd_event's own watcher, reused from wait to wait) and an optional
// ev_timer, both started in the loop of the worker the fiber parks on.
// Up to four parties may try to wake it: the watcher's callback, the
// timer's, cancel() and interrupt(). The node's `res` decides: the one
// whose compare-and-swap takes it from `pending` is the one that unparks
// the fiber; the others do nothing. The node is registered as the fiber's
// loop_wait, so whoever makes it runnable routes it through its worker,
// which stops both watchers (loop_wait::cancel) before the fiber can run
// anywhere: libev loops are single-threaded.
#include "sched/detail/fd_event.h"

#include <ev.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "fiber/detail/control_block.h"
#include "sched/detail/worker.h"
#include "sched/park.h"

namespace spindle::detail {

static_assert(sizeof(ev_io) <= 64 && alignof(ev_io) <= 16, "fd_event::io_ is too small for ev_io");

namespace {
// A wait_node's `res` before its outcome is settled: no io_wait_result.
constexpr std::uint8_t pending = 0xff;

// How often a plain thread blocked in poll(2) wakes to check for cancel().
constexpr std::chrono::milliseconds plain_wait_slice{50};

int ev_mask(io_direction dir) noexcept { return dir == io_direction::write ? EV_WRITE : EV_READ; }

ev_io* io_of(unsigned char* storage) noexcept { return reinterpret_cast<ev_io*>(storage); }

std::chrono::steady_clock::time_point earliest(
    std::chrono::steady_clock::time_point deadline,
    const std::atomic<fd_event::deadline_rep>* shared) noexcept {
  if (shared == nullptr) return deadline;
  const auto other = std::chrono::steady_clock::time_point(
      std::chrono::steady_clock::duration(shared->load(std::memory_order_seq_cst)));
  return std::min(deadline, other);
}
}  // namespace

// `base` must stay the first member (cancel_wait casts back).
struct fd_event::wait_node {
  loop_wait base;
  ev_timer timer;
  control_block* cb;
  worker* owner;
  ev_io* io;
  bool has_timer;
  // pending until the first waker's compare-and-swap sets the outcome.
  std::atomic<std::uint8_t> res{pending};

  bool settle(result why) noexcept {
    std::uint8_t expected = pending;
    return res.compare_exchange_strong(expected, static_cast<std::uint8_t>(why),
                                       std::memory_order_acq_rel, std::memory_order_acquire);
  }
};

namespace {

// loop_wait::cancel: on the worker the fiber parked on, before it runs.
void cancel_wait(loop_wait* lw) noexcept {
  auto* node = reinterpret_cast<fd_event::wait_node*>(lw);
  ev_io_stop(node->owner->ev(), node->io);
  if (node->has_timer) ev_timer_stop(node->owner->ev(), &node->timer);
}

// Both callbacks run in the loop context of the worker the fiber parked
// on, so the fiber has switched out by then.
// Also for EV_ERROR (libev's fd_kill, after an epoll_ctl error it does not
// assert on: the watcher is stopped already): ready, and the retried
// operation reports what is wrong.
void on_ready(struct ev_loop* loop, ev_io* w, int) {
  auto* node = static_cast<fd_event::wait_node*>(w->data);
  ev_io_stop(loop, w);  // one readiness, one wake (level-triggered otherwise)
  if (node->settle(fd_event::result::ready)) wake(node->cb, wake_order::queued);
}

void on_deadline(struct ev_loop*, ev_timer* t, int) {
  auto* node = static_cast<fd_event::wait_node*>(t->data);
  if (node->settle(fd_event::result::timed_out)) wake(node->cb, wake_order::queued);
}

}  // namespace

fd_event::fd_event(int fd, io_direction dir) noexcept : fd_(fd), dir_(dir) {
  ev_io_init(io_of(io_), on_ready, fd, ev_mask(dir));
}

fd_event::~fd_event() = default;

void fd_event::lock() noexcept {
  while (lock_.exchange(true, std::memory_order_acquire)) {
    while (lock_.load(std::memory_order_relaxed)) std::this_thread::yield();
  }
}

fd_event::result fd_event::wait(time_point deadline,
                                const std::atomic<deadline_rep>* shared_deadline) noexcept {
  control_block* self = tls_current_fiber;
  if (self == nullptr) return wait_plain(deadline, shared_deadline);
  if (canceled()) return result::canceled;

  worker* w = self->worker_;
  ev_io* io = io_of(io_);
  wait_node node;
  node.base.cancel = cancel_wait;
  node.cb = self;
  node.owner = w;
  node.io = io;
  node.has_timer = false;
  io->data = &node;

  // First start in this loop since the fd was opened: ev_io_set makes
  // libev (re)register the fd with this loop's epoll, whatever it
  // remembers about an earlier fd of the same number.
  if (started_runtime_ != &w->rt()) {
    started_runtime_ = &w->rt();
    started_in_ = 0;
  }
  const unsigned index = w->index();
  const std::uint64_t bit = index < 64 ? std::uint64_t{1} << index : 0;
  if (bit == 0 || (started_in_ & bit) == 0) {
    ev_io_set(io, fd_, ev_mask(dir_));
    started_in_ |= bit;
  }

  self->loop_wait_ = &node.base;
  // A spare does not retire while a watcher of its loop waits (the fiber
  // comes back to this worker: its wakers route it home).
  w->loop_wait_here(+1);
  note_wait(self, dir_ == io_direction::read ? wait_reason::fd_read : wait_reason::fd_write, this,
            fd_);
  prepare_park(self);
  lock();
  waiter_ = &node;
  unlock();
  // From here cancel() and interrupt() see the node. One that came just
  // before did not: look at what it left.
  if (canceled()) node.settle(result::canceled);
  const time_point until = earliest(deadline, shared_deadline);
  if (node.res.load(std::memory_order_acquire) == pending) {
    ev_io_start(w->ev(), io);
    if (until != time_point::max()) {
      ev_now_update(w->ev());  // ev_now is stale after running fibers a while
      const double after =
          std::chrono::duration<double>(until - std::chrono::steady_clock::now()).count();
      ev_timer_init(&node.timer, on_deadline, after > 0 ? after : 0.0, 0.0);
      node.timer.data = &node;
      ev_timer_start(w->ev(), &node.timer);
      node.has_timer = true;
    }
    park(self);
  } else if (node.res.load(std::memory_order_acquire) ==
             static_cast<std::uint8_t>(result::canceled)) {
    // We settled it ourselves (or a cancel() did, and unparked us): either
    // way nothing is started; consume a wake that may have come.
    cancel_park(self);
    self->loop_wait_ = nullptr;
  } else {
    cancel_park(self);  // an interrupt() that came before we started
    self->loop_wait_ = nullptr;
  }
  // A waker may still be looking at the node under the lock.
  lock();
  waiter_ = nullptr;
  unlock();
  w->loop_wait_here(-1);
  return static_cast<result>(node.res.load(std::memory_order_acquire));
}

void fd_event::wake_waiter(result why) noexcept {
  lock();
  if (wait_node* node = waiter_; node != nullptr && node->settle(why)) {
    // Routed through the node's worker (loop_wait), which stops its
    // watchers before the fiber runs.
    unpark(node->cb);
  }
  unlock();
}

void fd_event::cancel() noexcept {
  canceled_.store(true, std::memory_order_seq_cst);
  wake_waiter(result::canceled);
}

void fd_event::interrupt() noexcept { wake_waiter(result::interrupted); }

fd_event::result fd_event::wait_plain(time_point deadline,
                                      const std::atomic<deadline_rep>* shared_deadline) noexcept {
  for (;;) {
    if (canceled()) return result::canceled;
    const time_point until = earliest(deadline, shared_deadline);
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) return result::timed_out;
    auto slice = plain_wait_slice;
    if (until - now < slice) {
      slice = std::chrono::ceil<std::chrono::milliseconds>(until - now);
    }
    pollfd p{fd_, static_cast<short>(dir_ == io_direction::write ? POLLOUT : POLLIN), 0};
    const int n = ::poll(&p, 1, static_cast<int>(slice.count()));
    if (n > 0) return result::ready;  // errors and hang-ups too: the retry reports them
    if (n < 0 && errno != EINTR) return result::ready;
  }
}

// The contract of sched/io_wait.h: one fd_event per wait (its watcher is
// set up anew, which costs libev one epoll_ctl at the first start; the
// waits it serves, on the signal pipe, are rare).
io_wait_result wait_fd_ready(int fd, io_direction dir, io_time_point deadline) noexcept {
  fd_event event(fd, dir);
  return event.wait(deadline, nullptr);
}

}  // namespace spindle::detail
