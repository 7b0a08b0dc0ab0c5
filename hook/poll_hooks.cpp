// The hooked waits on several descriptors: poll, ppoll, select, pselect,
// epoll_wait, epoll_pwait (and _FORTIFY_SOURCE's __poll_chk,
// __ppoll_chk). On a fiber, with a timeout other than zero, a wait that
// is not satisfied at once parks on all the descriptors together: they
// go into a private epoll (level-triggered, the events each asked for),
// and that epoll into the netpoll; every wake-up re-runs the caller's
// wait with a zero timeout, so that what the caller sees is exactly what
// the kernel reports.
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>

#include <cerrno>
#include <chrono>
#include <algorithm>
#include <climits>
#include <vector>

#include "fiber/this_fiber.h"
#include "hook/detail/call.h"
#include "hook/detail/real_calls.h"
#include "hook/detail/trace.h"

#define SPINDLE_HOOK_API extern "C" __attribute__((visibility("default")))

namespace spindle::hook_detail {

int poll_wait(int fd, io_direction dir, io_time_point deadline) noexcept {
  pollfd p{fd, static_cast<short>(dir == io_direction::read ? POLLIN : POLLOUT), 0};
  for (;;) {
    int timeout = -1;
    if (deadline != io_time_point::max()) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= left.zero()) return EAGAIN;
      // Round up: a wait that ends a hair early would only go round again.
      timeout = static_cast<int>(std::min<long long>(
          INT_MAX, std::chrono::ceil<std::chrono::milliseconds>(left).count()));
    }
    const int r = real::poll(&p, 1, timeout);
    if (r > 0) return 0;
    if (r < 0 && get_errno() != EINTR) return 0;  // let the call itself report it
  }
}

namespace {

using spindle::detail::on_fiber;
using clock = std::chrono::steady_clock;

// ---- Waking a poll whose descriptor is closed ----
//
// A descriptor closed while a fiber polls it leaves the private epoll by
// itself (its last reference went), so nothing would wake the poll; the
// kernel's own poll() would wait on for its timeout. close() through the
// hook instead kicks every fiber poll that includes the number, and the
// poll, re-run with a zero timeout, reports POLLNVAL for it. A kick is a
// store to the poll's shared deadline (a time long past) and an
// interrupt: netpoll_wait() reads the shared deadline after it has
// registered, so a kick that comes before the park is not lost.

struct fiber_poll_entry {
  const pollfd* fds;
  nfds_t n;
  spindle::detail::poll_desc* pd;
  std::atomic<spindle::detail::io_deadline_rep> kick{spindle::detail::no_io_deadline};
  fiber_poll_entry* prev = nullptr;
  fiber_poll_entry* next = nullptr;
};

constinit std::atomic<int> polls_active{0};
constinit std::atomic<bool> polls_lock{false};
constinit fiber_poll_entry* polls_head = nullptr;

void lock_polls() noexcept {
  while (polls_lock.exchange(true, std::memory_order_acquire)) {
    while (polls_lock.load(std::memory_order_relaxed)) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  }
}
void unlock_polls() noexcept { polls_lock.store(false, std::memory_order_release); }

class poll_registration {
 public:
  explicit poll_registration(fiber_poll_entry* e) noexcept : e_(e) {
    lock_polls();
    e_->next = polls_head;
    if (polls_head != nullptr) polls_head->prev = e_;
    polls_head = e_;
    polls_active.fetch_add(1, std::memory_order_release);
    unlock_polls();
  }
  ~poll_registration() {
    lock_polls();
    if (e_->prev != nullptr) e_->prev->next = e_->next;
    else polls_head = e_->next;
    if (e_->next != nullptr) e_->next->prev = e_->prev;
    polls_active.fetch_sub(1, std::memory_order_release);
    unlock_polls();
  }
  poll_registration(const poll_registration&) = delete;
  poll_registration& operator=(const poll_registration&) = delete;

 private:
  fiber_poll_entry* const e_;
};

io_time_point deadline_after_ms(int ms) noexcept {
  return ms < 0 ? io_time_point::max() : clock::now() + std::chrono::milliseconds(ms);
}

io_time_point deadline_after(const timespec* ts) noexcept {
  if (ts == nullptr) return io_time_point::max();
  return clock::now() + std::chrono::seconds(ts->tv_sec) + std::chrono::nanoseconds(ts->tv_nsec);
}

std::uint32_t epoll_events_of(short events) noexcept {
  std::uint32_t e = 0;
  if (events & (POLLIN | POLLRDNORM | POLLRDBAND)) e |= EPOLLIN;
  if (events & (POLLOUT | POLLWRNORM | POLLWRBAND)) e |= EPOLLOUT;
  if (events & POLLPRI) e |= EPOLLPRI;
  if (events & POLLRDHUP) e |= EPOLLRDHUP;
  return e;
}

// sleep_until_deadline(): poll() of no descriptors is a sleep.
void sleep_until_deadline(io_time_point deadline) noexcept {
  if (deadline == io_time_point::max()) deadline = clock::now() + std::chrono::hours(24 * 365 * 100);
  try {
    parked_scope parked;
    spindle::detail::sleep_until_uncancellable(deadline);
  } catch (...) {
  }
}

// fiber_poll() is poll(fds, n, ...) until `deadline` on a fiber, as
// described at the top.
int fiber_poll(pollfd* fds, nfds_t n, io_time_point deadline, const char* name, const void* caller) noexcept {
  const int saved = get_errno();
  int r = real::poll(fds, n, 0);
  if (r != 0 || deadline <= clock::now()) return r;
  if (n == 0) {
    sleep_until_deadline(deadline);
    set_errno(saved);
    return 0;
  }
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  spindle::detail::poll_desc* pd = nullptr;
  if (ep >= 0) {
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].fd < 0) continue;
      epoll_event ev{};
      ev.events = epoll_events_of(fds[i].events);
      ev.data.fd = fds[i].fd;
      if (::epoll_ctl(ep, EPOLL_CTL_ADD, fds[i].fd, &ev) != 0 && get_errno() == EEXIST) {
        // The same descriptor twice: wait for what any of its entries asks.
        for (nfds_t j = 0; j < n; ++j) {
          if (fds[j].fd == fds[i].fd) ev.events |= epoll_events_of(fds[j].events);
        }
        (void)::epoll_ctl(ep, EPOLL_CTL_MOD, fds[i].fd, &ev);
      }
    }
    pd = spindle::detail::netpoll_open(ep);
  }
  if (pd == nullptr) {
    // Out of descriptors or memory: wait the way the caller asked for, on
    // the worker.
    if (ep >= 0) (void)real::close(ep);
    if (tracing()) trace_unparked(name, -1, "no epoll for the wait", caller);
    const auto left = deadline == io_time_point::max() ? -1
                      : std::max<long long>(0, std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now()).count());
    return real::poll(fds, n, static_cast<int>(std::min<long long>(left, INT_MAX)));
  }
  fiber_poll_entry entry{fds, n, pd};
  {
    poll_registration registered(&entry);
    // Anything that came between the first look and the registration.
    r = real::poll(fds, n, 0);
    while (r == 0) {
      {
        parked_scope parked;
        (void)spindle::detail::netpoll_wait(pd, io_direction::read, deadline, &entry.kick);
      }
      entry.kick.store(spindle::detail::no_io_deadline, std::memory_order_relaxed);
      r = real::poll(fds, n, 0);
      if (r != 0 || clock::now() >= deadline) break;
    }
  }
  const int e = get_errno();
  spindle::detail::netpoll_close(pd);
  (void)real::close(ep);
  set_errno(r < 0 ? e : saved);
  return r;
}

}  // namespace

void wait_ready(int fd, io_direction dir) noexcept {
  pollfd p{fd, static_cast<short>(dir == io_direction::read ? POLLIN : POLLOUT), 0};
  (void)fiber_poll(&p, 1, io_time_point::max(), dir == io_direction::read ? "read" : "write", nullptr);
}

void kick_pollers(int fd) noexcept {
  if (polls_active.load(std::memory_order_acquire) == 0) return;
  lock_polls();
  for (fiber_poll_entry* e = polls_head; e != nullptr; e = e->next) {
    for (nfds_t i = 0; i < e->n; ++i) {
      if (e->fds[i].fd != fd) continue;
      e->kick.store(0, std::memory_order_release);
      spindle::detail::netpoll_interrupt(e->pd, io_direction::read);
      break;
    }
  }
  unlock_polls();
}

namespace {

int do_poll(pollfd* fds, nfds_t n, io_time_point deadline, const void* caller) noexcept {
  return fiber_poll(fds, n, deadline, "poll", caller);
}

// select() on top of fiber_poll(), with the kernel's mapping of poll
// events to the three sets (fs/select.c) and its update of the timeout.
int do_select(int nfds, fd_set* rd, fd_set* wr, fd_set* ex, io_time_point deadline, const void* caller) noexcept {
  if (nfds < 0) {
    set_errno(EINVAL);
    return -1;
  }
  // Bit by bit rather than FD_ISSET, which _FORTIFY_SOURCE bounds to
  // FD_SETSIZE: the kernel takes larger sets, and so does this.
  constexpr int bits = 8 * sizeof(__fd_mask);
  auto isset = [](int fd, const fd_set* set) {
    return set != nullptr && ((__FDS_BITS(set)[fd / bits] >> (fd % bits)) & 1) != 0;
  };
  auto set_bit = [](int fd, fd_set* set) { __FDS_BITS(set)[fd / bits] |= __fd_mask(1) << (fd % bits); };
  std::vector<pollfd> fds;
  for (int fd = 0; fd < nfds; ++fd) {
    short events = 0;
    if (isset(fd, rd)) events |= POLLIN;
    if (isset(fd, wr)) events |= POLLOUT;
    if (isset(fd, ex)) events |= POLLPRI;
    if (events != 0) fds.push_back({fd, events, 0});
  }
  const int r = fiber_poll(fds.data(), fds.size(), deadline, "select", caller);
  if (r < 0) return r;
  for (const pollfd& p : fds) {
    if (p.revents & POLLNVAL) {
      set_errno(EBADF);
      return -1;
    }
  }
  // The sets are cleared up to nfds only, as the kernel writes them.
  const std::size_t words = (static_cast<std::size_t>(nfds) + bits - 1) / bits;
  for (fd_set* set : {rd, wr, ex}) {
    if (set != nullptr) std::fill_n(__FDS_BITS(set), words, __fd_mask(0));
  }
  int count = 0;
  for (const pollfd& p : fds) {
    if ((p.events & POLLIN) && (p.revents & (POLLIN | POLLHUP | POLLERR))) set_bit(p.fd, rd), ++count;
    if ((p.events & POLLOUT) && (p.revents & (POLLOUT | POLLERR))) set_bit(p.fd, wr), ++count;
    if ((p.events & POLLPRI) && (p.revents & POLLPRI)) set_bit(p.fd, ex), ++count;
  }
  return count;
}

void store_time_left(timeval* tv, io_time_point deadline) noexcept {
  if (tv == nullptr) return;
  auto left = deadline - clock::now();
  if (left < left.zero()) left = left.zero();
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(left).count();
  tv->tv_sec = us / 1000000;
  tv->tv_usec = us % 1000000;
}

bool zero(const timespec* ts) noexcept { return ts != nullptr && ts->tv_sec == 0 && ts->tv_nsec == 0; }
bool bad(const timespec* ts) noexcept {
  return ts != nullptr && (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000);
}

// epoll_wait() on a fiber: the epoll descriptor is readable when it has
// events to report.
int do_epoll_wait(int ep, epoll_event* events, int max, int timeout, const sigset_t* mask, bool with_mask,
                  const void* caller) noexcept {
  auto attempt = [&] {
    return with_mask ? real::epoll_pwait(ep, events, max, 0, mask) : real::epoll_wait(ep, events, max, 0);
  };
  int r = attempt();
  if (r != 0) return r;
  const io_time_point deadline = deadline_after_ms(timeout);
  const int saved = get_errno();
  for (;;) {
    pollfd p{ep, POLLIN, 0};
    if (fiber_poll(&p, 1, deadline, "epoll_wait", caller) < 0) return -1;
    r = attempt();
    if (r != 0 || clock::now() >= deadline) break;
  }
  if (r >= 0) set_errno(saved);
  return r;
}

}  // namespace
}  // namespace spindle::hook_detail

using namespace spindle::hook_detail;

SPINDLE_HOOK_API int poll(pollfd* fds, nfds_t n, int timeout) {
  if (!spindle::detail::on_fiber() || timeout == 0) return real::poll(fds, n, timeout);
  return do_poll(fds, n, deadline_after_ms(timeout), __builtin_return_address(0));
}

// The signal mask of ppoll() and pselect() is not applied on a fiber: it
// belongs to the worker thread, whose other fibers it would affect.
SPINDLE_HOOK_API int ppoll(pollfd* fds, nfds_t n, const timespec* ts, const sigset_t* mask) {
  if (!spindle::detail::on_fiber() || zero(ts) || bad(ts)) return real::ppoll(fds, n, ts, mask);
  return do_poll(fds, n, deadline_after(ts), __builtin_return_address(0));
}

SPINDLE_HOOK_API int select(int nfds, fd_set* rd, fd_set* wr, fd_set* ex, timeval* tv) {
  if (!spindle::detail::on_fiber() || (tv != nullptr && tv->tv_sec == 0 && tv->tv_usec == 0) ||
      (tv != nullptr && (tv->tv_sec < 0 || tv->tv_usec < 0))) {
    return real::select(nfds, rd, wr, ex, tv);
  }
  const io_time_point deadline = tv == nullptr ? io_time_point::max()
                                               : clock::now() + std::chrono::seconds(tv->tv_sec) +
                                                     std::chrono::microseconds(tv->tv_usec);
  const int r = do_select(nfds, rd, wr, ex, deadline, __builtin_return_address(0));
  if (tv != nullptr) store_time_left(tv, deadline);
  return r;
}

SPINDLE_HOOK_API int pselect(int nfds, fd_set* rd, fd_set* wr, fd_set* ex, const timespec* ts,
                             const sigset_t* mask) {
  if (!spindle::detail::on_fiber() || zero(ts) || bad(ts)) return real::pselect(nfds, rd, wr, ex, ts, mask);
  return do_select(nfds, rd, wr, ex, deadline_after(ts), __builtin_return_address(0));
}

SPINDLE_HOOK_API int epoll_wait(int ep, epoll_event* events, int max, int timeout) {
  if (!spindle::detail::on_fiber() || timeout == 0) return real::epoll_wait(ep, events, max, timeout);
  return do_epoll_wait(ep, events, max, timeout, nullptr, false, __builtin_return_address(0));
}

SPINDLE_HOOK_API int epoll_pwait(int ep, epoll_event* events, int max, int timeout, const sigset_t* mask) {
  if (!spindle::detail::on_fiber() || timeout == 0) return real::epoll_pwait(ep, events, max, timeout, mask);
  return do_epoll_wait(ep, events, max, timeout, mask, true, __builtin_return_address(0));
}

extern "C" [[noreturn]] void __chk_fail(void);

SPINDLE_HOOK_API int __poll_chk(pollfd* fds, nfds_t n, int timeout, size_t fdslen) {
  if (fdslen / sizeof *fds < n) __chk_fail();
  return poll(fds, n, timeout);
}

SPINDLE_HOOK_API int __ppoll_chk(pollfd* fds, nfds_t n, const timespec* ts, const sigset_t* mask, size_t fdslen) {
  if (fdslen / sizeof *fds < n) __chk_fail();
  return ppoll(fds, n, ts, mask);
}
