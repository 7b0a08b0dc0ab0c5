#include "sched/detail/netpoll.h"

#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <thread>

#include "fiber/detail/control_block.h"
#include "sched/park.h"

namespace spindle::detail {

namespace {

// The pool of poll_descs: allocated in batches, never freed.
std::mutex pool_mu;
poll_desc* free_list = nullptr;  // guarded by pool_mu

// Descriptors registered now: workers poll the netpoll directly only when
// there are some (an epoll_wait is a syscall, wasted on a runtime that
// does no I/O).
std::atomic<std::uint32_t> registered{0};

constexpr std::uint64_t pointer_mask = (std::uint64_t{1} << 48) - 1;

// What every descriptor is watched for; EPOLLOUT joins them once a write
// waits. EPOLLPRI costs no edge of its own: the wake-up that brings TCP
// urgent data brings EPOLLIN too, and epoll reports an edge only for a
// wake-up whose events are watched.
constexpr std::uint32_t watched = EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLET;

std::uint64_t pack(poll_desc* d, std::uint16_t gen) noexcept {
  return (reinterpret_cast<std::uint64_t>(d) & pointer_mask) | (std::uint64_t{gen} << 48);
}

}  // namespace

int netpoll_fd() noexcept {
  static const int fd = ::epoll_create1(EPOLL_CLOEXEC);
  return fd;
}

poll_desc* poll_desc::open(int fd, bool watch_write) noexcept {
  const int ep = netpoll_fd();
  if (ep < 0) return nullptr;
  poll_desc* d;
  {
    std::lock_guard lock(pool_mu);
    if (free_list == nullptr) {
      constexpr int batch = 64;
      auto* block = new (std::nothrow) poll_desc[batch];
      if (block == nullptr) {
        errno = ENOMEM;
        return nullptr;
      }
      for (int i = 0; i < batch; ++i) {
        block[i].next_free_ = free_list;
        free_list = &block[i];
      }
    }
    d = free_list;
    free_list = d->next_free_;
  }
  d->lock();
  d->fd_ = fd;
  ++d->gen_;
  d->waiter_[0].store(nullptr, std::memory_order_relaxed);
  d->waiter_[1].store(nullptr, std::memory_order_relaxed);
  d->ready_[0].store(false, std::memory_order_relaxed);
  d->ready_[1].store(false, std::memory_order_relaxed);
  d->final_[0].store(false, std::memory_order_relaxed);
  d->final_[1].store(false, std::memory_order_relaxed);
  d->urgent_.store(false, std::memory_order_relaxed);
  d->canceled_ = false;
  d->out_armed_ = watch_write;
  const std::uint16_t gen = d->gen_;
  d->unlock();
  epoll_event ev{};
  ev.events = watch_write ? watched | EPOLLOUT : watched;  // else EPOLLOUT once a write waits
  ev.data.u64 = pack(d, gen);
  if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
    const int e = errno;
    d->recycle();
    errno = e;
    return nullptr;
  }
  registered.fetch_add(1, std::memory_order_relaxed);
  return d;
}

void poll_desc::close() noexcept {
  const int fd = recycle_begin();
  if (fd >= 0) ::epoll_ctl(netpoll_fd(), EPOLL_CTL_DEL, fd, nullptr);
  registered.fetch_sub(1, std::memory_order_relaxed);
  recycle_end();
}

void poll_desc::recycle() noexcept {
  recycle_begin();
  recycle_end();
}

int poll_desc::recycle_begin() noexcept {
  lock();
  const int fd = fd_;
  fd_ = -1;
  ++gen_;  // edges collected before this are stale from now on
  unlock();
  return fd;
}

void poll_desc::recycle_end() noexcept {
  std::lock_guard lock(pool_mu);
  next_free_ = free_list;
  free_list = this;
}

void poll_desc::lock() noexcept {
  while (lock_.exchange(true, std::memory_order_acquire)) {
    for (int i = 0; lock_.load(std::memory_order_relaxed); ++i) {
      if (i < 64) {
        __builtin_ia32_pause();
      } else {
        std::this_thread::yield();
      }
    }
  }
}

void poll_desc::wake_locked(direction dir, result why) noexcept {
  if (control_block* w = waiter_[dir].load(std::memory_order_relaxed)) {
    waiter_[dir].store(nullptr, std::memory_order_relaxed);
    result_[dir] = why;
    // Readiness queues the fiber behind those already runnable (FIFO, and
    // stealable); a cancel or an interrupt comes from a fiber, whose
    // worker runs the woken one next.
    wake(w, /*next=*/why != result::ready);
  }
}

void poll_desc::prefetch_waiter() const noexcept {
  if (const control_block* w = waiter_[read].load(std::memory_order_relaxed)) {
    __builtin_prefetch(&w->state_, 1);
  }
}

void poll_desc::deliver(std::uint32_t events, std::uint16_t gen) noexcept {
  const bool hung_up = (events & (EPOLLHUP | EPOLLERR)) != 0;
  const bool readable = hung_up || (events & (EPOLLIN | EPOLLPRI | EPOLLRDHUP)) != 0;
  const bool writable = hung_up || (events & EPOLLOUT) != 0;
  lock();
  if (gen == gen_) {
    // EPOLLHUP alone is final too (a pipe whose writers are gone reports
    // nothing else). A socket not yet connected or listening reports it as
    // well (tcp_poll: state TCP_CLOSE), which is why io/ registers sockets
    // only once they are (see netpoll.h).
    if (hung_up || (events & EPOLLRDHUP) != 0) final_[read].store(true, std::memory_order_relaxed);
    if (hung_up) final_[write].store(true, std::memory_order_relaxed);
    if ((events & EPOLLPRI) != 0) urgent_.store(true, std::memory_order_relaxed);
    if (readable) {
      if (waiter_[read].load(std::memory_order_relaxed) != nullptr) {
        wake_locked(read, result::ready);
      } else {
        ready_[read].store(true, std::memory_order_relaxed);
      }
    }
    if (writable) {
      if (waiter_[write].load(std::memory_order_relaxed) != nullptr) {
        wake_locked(write, result::ready);
      } else {
        ready_[write].store(true, std::memory_order_relaxed);
      }
    }
  }
  unlock();
}

poll_desc::result poll_desc::wait(direction dir, time_point deadline,
                                  const std::atomic<deadline_rep>* shared_deadline) noexcept {
  control_block* self = tls_current_fiber;
  if (self == nullptr) return wait_plain(dir, deadline, shared_deadline);
  lock();
  if (canceled_) {
    unlock();
    return result::canceled;
  }
  // Not final_: see netpoll.h (a wait follows an EAGAIN; only an edge
  // can change that).
  if (ready_[dir].load(std::memory_order_relaxed)) {
    ready_[dir].store(false, std::memory_order_relaxed);
    unlock();
    return result::ready;
  }
  if (dir == write && !out_armed_) {
    // The first wait for room (or for a connect): from now on the fd is
    // watched for EPOLLOUT too. Not before: every ACK that frees send
    // buffer space would be an edge, one more epoll event per request for
    // a server whose writes never block (measured: the echo server's
    // kernel time, and libev only watches EPOLLOUT while a writer waits).
    // If there is room already, the modification reports it at once, so
    // the wait cannot miss it.
    out_armed_ = true;
    epoll_event ev{};
    ev.events = watched | EPOLLOUT;
    ev.data.u64 = pack(this, gen_);
    if (::epoll_ctl(netpoll_fd(), EPOLL_CTL_MOD, fd_, &ev) != 0) {
      unlock();
      return result::ready;  // the retried operation reports what is wrong
    }
  }
  prepare_park(self);
  waiter_[dir].store(self, std::memory_order_relaxed);
  // Read under the lock, after registering: a deadline changed from now on
  // comes with an interrupt() that finds us.
  time_point until = deadline;
  if (shared_deadline != nullptr) {
    until = std::min(until, time_point(std::chrono::steady_clock::duration(
                                shared_deadline->load(std::memory_order_seq_cst))));
  }
  unlock();
  const bool woken = until == time_point::max() ? (park(self), true) : park_until(self, until);
  lock();
  result r;
  if (!woken && waiter_[dir].load(std::memory_order_relaxed) == self) {
    waiter_[dir].store(nullptr, std::memory_order_relaxed);  // nobody claimed us: a plain timeout
    r = result::timed_out;
  } else {
    r = result_[dir];  // a waker claimed us (its unpark may have lost to the timer)
  }
  unlock();
  return r;
}

void poll_desc::cancel() noexcept {
  lock();
  canceled_ = true;
  wake_locked(read, result::canceled);
  wake_locked(write, result::canceled);
  unlock();
}

void poll_desc::interrupt(direction dir) noexcept {
  lock();
  wake_locked(dir, result::interrupted);
  unlock();
}

poll_desc::result poll_desc::wait_plain(direction dir, time_point deadline,
                                        const std::atomic<deadline_rep>* shared_deadline) noexcept {
  for (;;) {
    lock();
    const bool canceled = canceled_;
    const int fd = fd_;
    unlock();
    if (canceled) return result::canceled;
    time_point until = deadline;
    if (shared_deadline != nullptr) {
      until = std::min(until, time_point(std::chrono::steady_clock::duration(
                                  shared_deadline->load(std::memory_order_seq_cst))));
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) return result::timed_out;
    auto slice = std::chrono::milliseconds(50);
    if (until - now < slice) slice = std::chrono::ceil<std::chrono::milliseconds>(until - now);
    pollfd p{fd, static_cast<short>(dir == write ? POLLOUT : POLLIN), 0};
    const int n = ::poll(&p, 1, static_cast<int>(slice.count()));
    if (n > 0 || (n < 0 && errno != EINTR)) return result::ready;  // the retry reports errors
  }
}

bool netpoll_in_use() noexcept { return registered.load(std::memory_order_relaxed) != 0; }

std::uint32_t netpoll_poll(std::uint32_t max) noexcept {
  constexpr std::uint32_t batch = 128;
  epoll_event events[batch];
  std::uint32_t taken = 0;
  while (taken < max) {
    const int want = static_cast<int>(std::min(batch, max - taken));
    const int n = ::epoll_wait(netpoll_fd(), events, want, 0);
    if (n <= 0) break;
    // With many sockets their poll_descs and fibers are cold, and each
    // deliver() takes a lock and claims a fiber: locked instructions, which
    // let no later load start early, so cold misses met there come one
    // after the other. Fetch all the lines first, together; then deliver.
    auto desc = [&events](int i) {
      return reinterpret_cast<poll_desc*>(events[i].data.u64 & pointer_mask);
    };
    for (int i = 0; i < n; ++i) __builtin_prefetch(desc(i), 1);
    for (int i = 0; i < n; ++i) desc(i)->prefetch_waiter();
    for (int i = 0; i < n; ++i) {
      desc(i)->deliver(events[i].events, static_cast<std::uint16_t>(events[i].data.u64 >> 48));
    }
    taken += static_cast<std::uint32_t>(n);
    if (n < want) break;
  }
  return taken;
}

}  // namespace spindle::detail
