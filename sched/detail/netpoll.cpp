#include "sched/detail/netpoll.h"

#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <thread>

#include "fiber/detail/control_block.h"
#include "fiber/lock_holder.h"
#include "sched/park.h"

namespace spindle::detail {

namespace {

// The pool of poll_descs: allocated in batches, never freed.
os_mutex pool_mu;
poll_desc* free_list SPINDLE_GUARDED_BY(pool_mu) = nullptr;

// Descriptors registered now: workers poll the netpoll directly only when
// there are some (an epoll_wait is a syscall, wasted on a runtime that
// does no I/O).
std::atomic<std::uint32_t> registered{0};

// The epoll data word carries a poll_desc pointer in its low 48 bits (the
// width of a user-space address on x86-64 and AArch64 with 4-level page
// tables) and the generation in the 16 above them.
constexpr int pointer_bits = 48;
constexpr std::uint64_t pointer_mask = (std::uint64_t{1} << pointer_bits) - 1;
static_assert(pointer_bits + 16 == 64, "the generation is a std::uint16_t");

// poll_descs allocated at a time: one allocation for many sockets, small
// enough not to matter for a process with a handful.
constexpr int pool_batch = 64;

// How often a plain thread blocked in poll(2) wakes to check for cancel().
constexpr std::chrono::milliseconds plain_wait_slice{50};

// Edges collected per epoll_wait: the stack array's size.
constexpr std::uint32_t poll_batch = 128;

// What every descriptor is watched for; EPOLLOUT joins them once a write
// waits. EPOLLPRI costs no edge of its own: the wake-up that brings TCP
// urgent data brings EPOLLIN too, and epoll reports an edge only for a
// wake-up whose events are watched.
constexpr std::uint32_t watched = EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLET;

std::uint64_t pack(poll_desc* d, std::uint16_t gen) noexcept {
  return (reinterpret_cast<std::uint64_t>(d) & pointer_mask) | (std::uint64_t{gen} << pointer_bits);
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
    lock_holder lock(pool_mu);
    if (free_list == nullptr) {
      auto* block = new (std::nothrow) poll_desc[pool_batch];
      if (block == nullptr) {
        errno = ENOMEM;
        return nullptr;
      }
      for (int i = 0; i < pool_batch; ++i) {
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
  for (int i = 0; i < direction_count; ++i) {
    d->waiter_[i].store(nullptr, std::memory_order_relaxed);
    d->ready_[i].store(false, std::memory_order_relaxed);
    d->final_[i].store(false, std::memory_order_relaxed);
  }
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
  lock_holder lock(pool_mu);
  next_free_ = free_list;
  free_list = this;
}

void poll_desc::wake_locked(io_direction dir, result why) noexcept {
  const int i = direction_index(dir);
  if (control_block* w = waiter_[i].load(std::memory_order_relaxed)) {
    waiter_[i].store(nullptr, std::memory_order_relaxed);
    result_[i] = why;
    // Readiness queues the fiber behind those already runnable (FIFO, and
    // stealable); a cancel or an interrupt comes from a fiber, whose
    // worker runs the woken one next.
    wake(w, why != result::ready ? wake_order::next : wake_order::queued);
  }
}

void poll_desc::prefetch_waiter() const noexcept {
  if (const control_block* w = waiter_[direction_index(io_direction::read)].load(std::memory_order_relaxed)) {
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
    constexpr int r = direction_index(io_direction::read);
    constexpr int w = direction_index(io_direction::write);
    if (hung_up || (events & EPOLLRDHUP) != 0) final_[r].store(true, std::memory_order_relaxed);
    if (hung_up) final_[w].store(true, std::memory_order_relaxed);
    if ((events & EPOLLPRI) != 0) urgent_.store(true, std::memory_order_relaxed);
    if (readable) edge_locked(io_direction::read);
    if (writable) edge_locked(io_direction::write);
  }
  unlock();
}

void poll_desc::edge_locked(io_direction dir) noexcept {
  if (waiter_[direction_index(dir)].load(std::memory_order_relaxed) != nullptr) {
    wake_locked(dir, result::ready);
  } else {
    ready_[direction_index(dir)].store(true, std::memory_order_relaxed);
  }
}

poll_desc::result poll_desc::wait(io_direction dir, time_point deadline,
                                  const std::atomic<deadline_rep>* shared_deadline,
                                  bool cancellable) noexcept {
  control_block* self = tls_current_fiber;
  if (self == nullptr) return wait_plain(dir, deadline, shared_deadline);
  const int i = direction_index(dir);
  lock();
  if (canceled_) {
    unlock();
    return result::canceled;
  }
  // Not final_: see netpoll.h (a wait follows an EAGAIN; only an edge
  // can change that).
  if (ready_[i].load(std::memory_order_relaxed)) {
    ready_[i].store(false, std::memory_order_relaxed);
    unlock();
    return result::ready;
  }
  if (dir == io_direction::write && !out_armed_) {
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
  note_wait(self, dir == io_direction::read ? wait_reason::fd_read : wait_reason::fd_write, this,
            fd_);
  prepare_park(self);
  waiter_[i].store(self, std::memory_order_relaxed);
  // Read under the lock, after registering: a deadline changed from now on
  // comes with an interrupt() that finds us.
  time_point until = deadline;
  if (shared_deadline != nullptr) {
    until = std::min(until, time_point(std::chrono::steady_clock::duration(
                                shared_deadline->load(std::memory_order_seq_cst))));
  }
  unlock();
  // A cancellable fiber parks with a cancel point (a stop ends the park as
  // a deadline would: time_point::max() never passes); any other keeps the
  // plain park when there is no deadline.
  const bool cancel = cancellable && detail::cancellable(self);
  bool woken;
  if (cancel) [[unlikely]] {
    woken = park_until(self, until, cancel_point::yes);
  } else {
    woken = until == time_point::max() ? (park(self), true) : park_until(self, until);
  }
  lock();
  result r;
  if (!woken && waiter_[i].load(std::memory_order_relaxed) == self) {
    // Nobody claimed us: a plain timeout, or a stop. No edge is lost: one
    // that comes from now on finds no waiter and is kept in ready_.
    waiter_[i].store(nullptr, std::memory_order_relaxed);
    r = cancel && stop_requested(self) ? result::canceled : result::timed_out;
  } else {
    r = result_[i];  // a waker claimed us (its unpark may have lost to the timer)
  }
  unlock();
  return r;
}

void poll_desc::cancel() noexcept {
  lock();
  canceled_ = true;
  wake_locked(io_direction::read, result::canceled);
  wake_locked(io_direction::write, result::canceled);
  unlock();
}

void poll_desc::interrupt(io_direction dir) noexcept {
  lock();
  wake_locked(dir, result::interrupted);
  unlock();
}

poll_desc::result poll_desc::wait_plain(io_direction dir, time_point deadline,
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
    auto slice = plain_wait_slice;
    if (until - now < slice) slice = std::chrono::ceil<std::chrono::milliseconds>(until - now);
    pollfd p{fd, static_cast<short>(dir == io_direction::write ? POLLOUT : POLLIN), 0};
    const int n = ::poll(&p, 1, static_cast<int>(slice.count()));
    if (n > 0 || (n < 0 && errno != EINTR)) return result::ready;  // the retry reports errors
  }
}

bool netpoll_in_use() noexcept { return registered.load(std::memory_order_relaxed) != 0; }

std::size_t netpoll_descriptors() noexcept { return registered.load(std::memory_order_relaxed); }

std::uint32_t netpoll_poll(std::uint32_t max) noexcept {
  epoll_event events[poll_batch];
  std::uint32_t taken = 0;
  while (taken < max) {
    const int want = static_cast<int>(std::min(poll_batch, max - taken));
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
      desc(i)->deliver(events[i].events, static_cast<std::uint16_t>(events[i].data.u64 >> pointer_bits));
    }
    taken += static_cast<std::uint32_t>(n);
    if (n < want) break;
  }
  return taken;
}

// ---- The contract of sched/io_wait.h ----

poll_desc* netpoll_open(int fd, bool watch_write) noexcept { return poll_desc::open(fd, watch_write); }
void netpoll_close(poll_desc* pd) noexcept { pd->close(); }
io_wait_result netpoll_wait(poll_desc* pd, io_direction dir, io_time_point deadline,
                            const std::atomic<io_deadline_rep>* shared_deadline,
                            bool cancellable) noexcept {
  return pd->wait(dir, deadline, shared_deadline, cancellable);
}
void netpoll_cancel(poll_desc* pd) noexcept { pd->cancel(); }
void netpoll_interrupt(poll_desc* pd, io_direction dir) noexcept { pd->interrupt(dir); }
bool netpoll_ready_hint(const poll_desc* pd, io_direction dir) noexcept { return pd->ready_hint(dir); }
bool netpoll_urgent_seen(const poll_desc* pd) noexcept { return pd->urgent_seen(); }

}  // namespace spindle::detail
