// Workers: the loop, run queues, stealing, idling and timers. The hot
// path of a switch is in worker_inl.h, the park protocol in park.cpp.
//
// A worker is an OS thread with run queues and a libev loop of its own
// (ev_loop_new, never the default loop, which belongs to the application).
// Its thread stack runs the worker's loop; fibers run on their own stacks.
//
// Switching. A fiber that suspends (yield, park, finish) picks the next
// runnable fiber itself and switches straight to it: one context switch per
// hand-over, as Boost.Fiber does, instead of two through the worker's loop
// (the rejected design: marl-style "always return to the scheduler", which
// doubles the cost of yield). It switches to the loop context only when
// nothing is runnable here or a poll of libev is due.
//
// Publish after switch. A fiber must not become visible as parked (or be
// put in a run queue) while it is still running on its stack: another
// worker could resume it on two threads at once (Boost.Fiber #212, #251,
// Photon #1598). So the switching context only records what should happen
// to it (pending_from_, pending_action_), and the context switched TO does
// it, in after_switch(), once the old stack is no longer in use. The
// context to save comes back as the result of jump() (or as the argument
// of a new fiber's entry function), the same way in every case. A fiber
// that ends makes one last jump and never comes back; the context it
// jumped to releases its control block, and with it the stack.
//
// Queues. Each worker has a ring (run_queue.h) that other workers steal
// from, an overflow list behind it for what does not fit (moved into the
// ring, in order, as the ring empties), a list of pinned fibers that
// nobody steals, and an inbox through which other threads hand it fibers.
// A fiber made runnable by a fiber on another worker goes to the waker's
// worker (Go's ready()), unless it is pinned or still holds a watcher in
// its own worker's libev loop (a signal wait): those go home through the
// inbox, and the home worker stops the watcher before the fiber can run
// anywhere (libev loops are single-threaded). Deadlines are in per-worker
// timer heaps that any worker runs (timer_heap.h), and thieves take from
// inboxes too: a runnable fiber never waits behind a running one while a
// worker is idle, except a pinned one, a signal wait, and the overflow
// list (docs/sched.md).
//
// Stealing and idling (Go's findrunnable, simplified). A worker with
// nothing to run looks for work: the runtime's shared overflow queue, then
// half of another worker's ring. One worker at a time spins at this for up
// to spin_duration before sleeping, so that bursts of short fibers do not
// cost a wakeup syscall each; it looks at the other workers every
// steal_look_interval, not back to back. A worker that sleeps registers as
// idle, looks once more (the submitter/sleeper race, see Go's "delicate
// dance"), and blocks in ev_run(EVRUN_ONCE). Whoever makes stealable work
// while workers are idle and none is searching wakes one
// (runtime::wake_idle_worker);
// spawning always does, a push to a ring only when the ring holds more than
// its worker will run next.
//
// Fairness. Fibers that keep handing the worker to each other never pass
// through the loop, so timers and I/O readiness would starve. Every
// poll_check_interval switches the worker reads the clock, and if
// max_poll_interval has passed since libev was last polled, it goes
// through the loop, which polls without blocking before running the next
// fiber. Pinned fibers and the shared queue are served alternately with
// the ring, so neither starves the other.
#include "sched/detail/worker.h"

#include <cxxabi.h>
#include <pthread.h>
#include <ev.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <optional>
#include <stop_token>
#include <system_error>
#include <thread>

#include "fiber/assert.h"
#include "fiber/detail/inspect.h"
#include "fiber/detail/overflow.h"
#include "fiber/detail/sanitizer.h"
#include "fiber/this_fiber.h"
#include "sched/detail/netpoll.h"
#include "sched/detail/runtime.h"
#include "sched/detail/worker_inl.h"
#include "sched/park.h"

namespace spindle::detail {
namespace {

thread_local worker* tls_worker __attribute__((tls_model("initial-exec"))) = nullptr;

// How long a worker that ran out of work keeps looking for more before it
// sleeps. A wakeup through ev_async costs the waker a syscall (~1-2 us
// here) and the wakee a scheduler round trip (~5 us and more on a loaded
// machine); spinning this long lets a burst of short fibers go by without
// one per fiber, while an idle runtime still goes quiet within 50 us.
constexpr auto spin_duration = std::chrono::microseconds(50);

// How often a spinning worker looks at the other workers' queues; its own
// inbox and the network it checks at every turn of the spin (about 1 us, a
// sched_yield). Looking back to back took work the moment it was queued,
// which is the wrong moment in the commonest case: a fiber woken by a
// producer or a consumer that keeps running. Moved to the other core at
// once, the woken fiber finds its channel or queue as full (or empty) as
// it left it, does one item and parks again, and every item then moves
// lines between the cores, ~200 ns each on the project's VM. Left a few
// microseconds, it finds a batch. And every look reads the lines its
// victim writes at each push (ring tail, switch count), so that each push
// missed. Select over 4 channels fed by 4 producers (bench/sync) went from
// 219-242 to 83-89 ns a select in interleaved runs (a producer parked once
// per 5 values, now once per 14-18); spawn+join and ping-pong on 2 workers
// got faster too (docs/sched.md, "Stealing and idling"). Five
// microseconds is about what a sleeping worker takes to wake (half of
// BM_PingPongPinnedToDifferentWorkers' round trip), so a spinning worker
// still takes work no later than a sleeping one would, and its waker pays
// no syscall. Go's spinning Ms look back to back, but briefly, then sleep:
// there the wakeup's latency batches the work (~50 values a park here).
constexpr auto steal_look_interval = std::chrono::microseconds(5);

// How many workers may spin at once: one is enough to pick up a burst, and
// more would take CPU from workers with real work on a small machine.
constexpr int max_spinning_workers = 1;

// How long a fiber may sit in the runnext slot of a worker that does not
// switch before another worker takes it (Go: ~3 us of spinning plus a
// time slice; here a little more than one spin, since thieves look at
// other workers only while they search or when their idle poll fires).
constexpr auto stale_runnext_age = std::chrono::microseconds(20);

// While some worker is busy, an idle one sleeps at most this long before it
// looks again for work that nobody woke it for: a wakeup can be missed in
// a race (wake_idle_worker reads relaxed), and a fiber queued behind one
// that computes without blocking must not wait for it (Go's sysmon plays
// this part). When every worker is idle they sleep without a timeout.
constexpr double idle_poll_seconds = 0.001;

// The worker thread's own stack, as a control block to switch back to.
class loop_context final : public control_block {
 public:
  ~loop_context() override = default;

 protected:
  void destroy() noexcept override { delete this; }  // not on a fiber stack
};

void on_idle_timer(struct ev_loop*, ev_timer*, int) {
  // Nothing: the loop looks for work after every ev_run.
}

void on_netpoll(struct ev_loop*, ev_io* w, int) { static_cast<worker*>(w->data)->poll_network(); }

void on_async(struct ev_loop*, ev_async*, int) {
  // Nothing: the loop drains the inbox after every ev_run.
}

// How overdue another worker's earliest deadline must be before a busy
// worker's poll runs it (run_overdue_timers): a worker that runs its loop
// polls every max_poll_interval and runs its own in time, so this much
// late means it is held in a fiber (or is a retired spare). Not less: a
// fiber woken by another worker's poll moves there.
constexpr auto overdue_slack = std::chrono::milliseconds(1);

}  // namespace

namespace {
long membarrier(int cmd) noexcept { return ::syscall(__NR_membarrier, cmd, 0u, 0); }
}  // namespace

bool process_fence_available() noexcept {
  static const bool available = [] {
    const long cmds = membarrier(MEMBARRIER_CMD_QUERY);
    return cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
           membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
  }();
  return available;
}

void process_wide_fence() noexcept {
  if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return;
  // Registered already, so not expected; registering again is the one
  // remedy, and without the fence its users would lose wakeups or take a
  // fiber twice: stop loudly instead.
  if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 &&
      membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) {
    return;
  }
  std::fputs("spindle: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed\n", stderr);
  std::abort();
}

__attribute__((noinline)) worker* this_worker() noexcept {
  worker* w = tls_worker;
  // Keep the compiler from treating the TLS read as invariant.
  asm volatile("" : "+r"(w));
  return w;
}

worker::worker(runtime& rt, unsigned index)
    : loop_cb_(new loop_context),
      // The base worker of a one-worker runtime; never a spare (worker 0
      // steals from it).
      may_be_alone_(index == 0 && rt.opts().workers == 1 &&
                    (rt.opts().max_spare_workers == 0 || process_fence_available())),
      alone_(may_be_alone_),
      rand_state_(0x9e3779b9u * (index + 1)),
      rt_(rt),
      index_(index),
      spare_(index >= rt.opts().workers),
      async_(std::make_unique<ev_async>()),
      netpoll_io_(std::make_unique<ev_io>()),
      idle_timer_(std::make_unique<ev_timer>()) {
  // EVFLAG_NOSIGMASK: signals are not libev's business here.
  loop_ = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
  if (loop_ == nullptr) {
    loop_cb_->release();
    throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                            "spindle: cannot create a libev loop for a worker");
  }
  ev_async_init(async_.get(), on_async);
  ev_async_start(loop_, async_.get());
  if (netpoll_fd() >= 0) {
    ev_io_init(netpoll_io_.get(), on_netpoll, netpoll_fd(), EV_READ);
    netpoll_io_->data = this;
    ev_io_start(loop_, netpoll_io_.get());
  }
  ev_timer_init(idle_timer_.get(), on_idle_timer, idle_poll_seconds, 0.0);
  seen_.resize(std::max(1u, rt.opts().workers + rt.opts().max_spare_workers));
  loop_cb_->state_.store(fiber_state::running, std::memory_order_relaxed);
}

worker::~worker() {
  ev_async_stop(loop_, async_.get());
  ev_io_stop(loop_, netpoll_io_.get());
  ev_loop_destroy(loop_);
  loop_cb_->release();
}

void worker::loop() noexcept {
  // Named so that top -H and the debugger tell spares from the program's
  // threads (base workers keep the name of the program: worker 0 is its
  // own thread).
  if (spare_) ::pthread_setname_np(::pthread_self(), "spindle-spare");
  tls_worker = this;
  eh_globals_ = abi::__cxa_get_globals();
  alt_signal_stack alt_stack;
  current_ = loop_cb_;
  loop_cb_->tsan_fiber_ = tsan_current_fiber();
  last_poll_ = std::chrono::steady_clock::now();
  tls_coarse_now = last_poll_.time_since_epoch().count();
  for (;;) {
    drain_inbox();
    if (poll_due_) {
      poll_events(false);
    } else if (timers_.earliest() != timer_heap::none) {
      run_timers(timers_, std::chrono::steady_clock::now());
    }
    control_block* next = pop_local();
    // Out of fibers: the network first, as an event loop would, before
    // looking at other workers or going to sleep.
    if (next == nullptr) next = poll_network_directly();
    if (next == nullptr && !rt_.stopping()) next = search();
    if (next != nullptr) {
      switch_to(loop_cb_, next, switch_action::save);
      continue;
    }
    if (rt_.stopping()) break;
    if (spare_ && try_retire()) break;
    // Nothing anywhere: sleep. Register as idle first, then look once
    // more, so that work submitted meanwhile either is found here or sees
    // us idle and wakes us.
    rt_.enter_idle(this);
    next = find_work();
    if (next != nullptr) {
      rt_.leave_idle(this);
      switch_to(loop_cb_, next, switch_action::save);
      continue;
    }
    sleep_idle();
    rt_.leave_idle(this);
  }
  tls_worker = nullptr;
}

void worker::share() noexcept {
  if (!alone_.load(std::memory_order_relaxed)) return;
  alone_.store(false, std::memory_order_seq_cst);
  // The owner's stretch that read alone_ true before this store is
  // visible in alone_use_ after the fence; one that starts after it reads
  // false. Wait for the one in progress, if any (a few instructions).
  process_wide_fence();
  while (alone_use_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
}

void worker::unshare() noexcept {
  // No thief runs (every spare has retired and been joined): the owner
  // may take plain loads and stores again at its next stretch.
  if (may_be_alone_) alone_.store(true, std::memory_order_release);
}

void worker::reopen() noexcept {
  // A new thread: its own stack for the loop context (ASan learns its
  // extent at the first switch away from it).
  loop_cb_->asan_stack_bottom_ = nullptr;
  loop_cb_->asan_stack_size_ = 0;
  retired_.store(false, std::memory_order_release);
}

bool worker::try_retire() noexcept {
  if (pinned_here_.load(std::memory_order_relaxed) != 0 ||
      loop_waits_here_.load(std::memory_order_relaxed) != 0 || !overflow_.empty() ||
      !pinned_.empty() || ring_.size() != 0 || has_runnext()) {
    return false;
  }
  // Under the inbox's lock: a thread handing a fiber to us either got in
  // before (we stay) or sees retired_ after and hands it elsewhere.
  lock_holder lock(inbox_mu_);
  if (!inbox_.empty() || !inbox_home_.empty()) return false;
  if (!rt_.spare_may_retire()) return false;
  retired_.store(true, std::memory_order_release);
  return true;
}

// How often an idle runtime whose fibers all sleep looks again for a
// deadlock while a thread outside it might still wake one.
constexpr auto deadlock_recheck_interval = std::chrono::milliseconds(100);

void worker::sleep_idle() noexcept {
  // The earliest deadline of any worker's timers: one busy in a fiber that
  // does not switch runs none of its own, and we run them for it
  // (steal_timers) when they are due.
  const auto earliest_timer = [this] {
    timer_heap::rep t = timer_heap::none;
    for (unsigned i = 0; i < rt_.slot_count(); ++i) {
      t = std::min(t, rt_.worker_at(i).timers().earliest());
    }
    return t;
  };
  const timer_heap::rep now = std::chrono::steady_clock::now().time_since_epoch().count();
  const timer_heap::rep poll_cap =
      now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                std::chrono::duration<double>(idle_poll_seconds))
                .count();
  // When to wake: the earliest deadline anywhere, and no later than
  // idle_poll_seconds from now while some worker is busy.
  const auto wake_time = [&] {
    const timer_heap::rep t = earliest_timer();
    return rt_.all_idle() ? t : std::min(t, poll_cap);
  };
  // Announce it, then look again: a timer added meanwhile either is seen
  // here or sees our sleep_until_ and wakes us (runtime::timer_added; a
  // Dekker handshake, seq_cst on both sides).
  timer_heap::rep until = wake_time();
  sleep_until_.store(until, std::memory_order_seq_cst);
  until = std::min(until, wake_time());
  if (until == timer_heap::none && rt_.all_idle() && !rt_.persistent()) [[unlikely]] {
    // Every worker idle and no timer anywhere: perhaps nothing can ever
    // wake a fiber again (deadlock.cpp).
    switch (rt_.check_deadlock()) {
      case runtime::deadlock_verdict::found:
        sleep_until_.store(0, std::memory_order_relaxed);
        return;  // the runtime stops (or the process has ended)
      case runtime::deadlock_verdict::maybe:
        // Something outside the fibers might still wake one: look again
        // a little later rather than sleep for ever.
        until = now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                          deadlock_recheck_interval)
                          .count();
        break;
      case runtime::deadlock_verdict::none:
        break;
    }
  }
  if (until == timer_heap::none) {
    poll_events(true);  // nothing anywhere: no timeout, no CPU
  } else {
    const double left = until <= now ? 0.0 : std::chrono::duration<double>(
        std::chrono::steady_clock::duration(until - now)).count();
    ev_timer_set(idle_timer_.get(), left, 0.0);
    ev_timer_start(loop_, idle_timer_.get());
    poll_events(true);
    ev_timer_stop(loop_, idle_timer_.get());
  }
  sleep_until_.store(0, std::memory_order_relaxed);
  // poll_events() read the clock as it woke.
  idle_ns_.store(idle_ns_.load(std::memory_order_relaxed) +
                     std::chrono::duration_cast<std::chrono::nanoseconds>(
                         last_poll_.time_since_epoch() - std::chrono::steady_clock::duration(now))
                         .count(),
                 std::memory_order_relaxed);
  // Ours at once; other workers' due ones the next find_work() takes.
  run_timers(timers_, last_poll_);
}

std::uint32_t worker::run_timers(timer_heap& heap, std::chrono::steady_clock::time_point now) noexcept {
  std::uint32_t n = 0;
  control_block* woken = nullptr;  // claimed parked fibers, linked through next_
  heap.run_due(now.time_since_epoch().count(), [&](timer_node* node) {
    // Under the heap's lock, which the node's fiber takes before it
    // returns: the node is valid here, and not after.
    const claim c = try_claim(node->cb);
    if (c == claim::none) return;  // woken by someone else first
    node->fired = true;
    // claim::parking: still switching out (it parked with its deadline set
    // before the switch); whoever completes the switch enqueues it.
    if (c == claim::parked) {
      node->cb->next_ = woken;
      woken = node->cb;
    }
  });
  while (woken != nullptr) {
    control_block* cb = woken;
    woken = cb->next_;
    cb->next_ = nullptr;
    make_runnable(cb, wake_order::queued);
    ++n;
  }
  return n;
}

control_block* worker::steal_timers() noexcept {
  const unsigned n = rt_.slot_count();
  bool any = false;
  for (unsigned v = 0; v < n && !any; ++v) {
    any = v != index_ && rt_.worker_at(v).timers().earliest() != timer_heap::none;
  }
  if (!any) return nullptr;  // no clock read for a runtime without deadlines
  const auto now = std::chrono::steady_clock::now();
  const auto now_rep = now.time_since_epoch().count();
  std::uint32_t woken = 0;
  for (unsigned v = 0; v < n; ++v) {
    timer_heap& heap = rt_.worker_at(v).timers();
    if (heap.due(now_rep)) woken += run_timers(heap, now);
  }
  return woken != 0 ? pop_local() : nullptr;
}

void worker::poll_events(bool block) noexcept {
  if (block) {
    // Dekker-style handshake with schedule_remote(): either we see its
    // inbox_nonempty_, or it sees our sleeping_ and sends the async.
    sleeping_.store(true, std::memory_order_seq_cst);
    if (!inbox_nonempty_.load(std::memory_order_seq_cst) && !rt_.stopping()) {
      ev_run(loop_, EVRUN_ONCE);
    }
    sleeping_.store(false, std::memory_order_relaxed);
  } else {
    ev_run(loop_, EVRUN_NOWAIT);
  }
  last_poll_ = std::chrono::steady_clock::now();
  tls_coarse_now = last_poll_.time_since_epoch().count();
  poll_due_ = false;
  switches_since_check_ = 0;
  if (!block) {
    run_timers(timers_, last_poll_);
    run_overdue_timers();
  }
}

void worker::run_overdue_timers() noexcept {
  const unsigned n = rt_.slot_count();
  if (n < 2) return;
  const timer_heap::rep now = last_poll_.time_since_epoch().count();
  const timer_heap::rep slack =
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(overdue_slack).count();
  for (unsigned v = 0; v < n; ++v) {
    if (v == index_) continue;
    worker& other = rt_.worker_at(v);
    // A retired spare runs nothing: no slack for it.
    const timer_heap::rep due_by = other.retired() ? now : now - slack;
    if (other.timers().due(due_by)) run_timers(other.timers(), last_poll_);
  }
}

std::uint32_t worker::poll_network() noexcept {
  // Only as many as the ring has room for (keeping a little for fibers
  // that wake others): the rest stay in the epoll ready list, which libev
  // reports again at the next poll, until the ring drains.
  constexpr std::uint32_t reserve = 16;
  if (!overflow_.empty()) return 0;
  const std::uint32_t used = ring_.size();
  if (used + reserve >= run_ring::capacity) return 0;
  return netpoll_poll(run_ring::capacity - reserve - used);
}

control_block* worker::poll_network_directly() noexcept {
  // One epoll_wait on the netpoll's epoll. Through libev it would be two:
  // libev's own epoll_wait reporting the netpoll fd readable, then this
  // one (measured with bench/run_echo_pairs.sh, see docs/sched.md).
  if (!netpoll_in_use() || poll_network() == 0) return nullptr;
  return pop_local();
}

void worker::drain_inbox() noexcept {
  if (!inbox_nonempty_.load(std::memory_order_relaxed)) return;
  control_block* last;
  control_block* first;
  control_block* home;
  {
    lock_holder lock(inbox_mu_);
    first = inbox_.take_all(&last);
    home = inbox_home_.take_all(&last);
    inbox_nonempty_.store(false, std::memory_order_relaxed);
    inbox_stealable_.store(false, std::memory_order_relaxed);
  }
  for (control_block* list : {home, first}) {
    while (list != nullptr) {
      control_block* next = list->next_;
      list->next_ = nullptr;
      enqueue(list);
      list = next;
    }
  }
}

std::uint32_t worker::steal_inbox(control_block** out, std::uint32_t max) noexcept {
  if (!inbox_stealable_.load(std::memory_order_relaxed)) return 0;
  std::uint32_t n = 0;
  lock_holder lock(inbox_mu_);
  while (n < max) {
    control_block* cb = inbox_.pop_front();
    if (cb == nullptr) break;
    out[n++] = cb;
  }
  if (inbox_.empty()) {
    inbox_stealable_.store(false, std::memory_order_relaxed);
    if (inbox_home_.empty()) inbox_nonempty_.store(false, std::memory_order_relaxed);
  }
  return n;
}

void worker::schedule_remote(control_block* cb) noexcept {
  // A caller from outside the runtime (a plain thread) is not a fiber the
  // runtime waits for: once `cb` is in the inbox it may run and finish,
  // and the runtime end, while we are still here. The runtime waits for
  // such callers before it goes (~runtime).
  const worker* self = this_worker();
  const bool outsider = self == nullptr || &self->rt_ != &rt_;
  if (outsider) rt_.outside_callers_.fetch_add(1, std::memory_order_relaxed);
  // Read before the push: once pushed, `cb` may run (and change) at once.
  const bool stealable = cb->pinned_ == 0 && cb->loop_wait_ == nullptr;
  {
    lock_holder lock(inbox_mu_);
    if (retired_.load(std::memory_order_relaxed)) [[unlikely]] {
      // A spare that has retired: its thread is gone, and nothing homed
      // here can be pinned or wait on its loop (try_retire). A base
      // worker takes it.
      lock.unlock();
      if (outsider) rt_.outside_callers_.fetch_sub(1, std::memory_order_release);
      rt_.pick_worker_for_plain_thread().schedule_remote(cb);
      return;
    }
    if (stealable) {
      inbox_.push_back(cb);
      inbox_stealable_.store(true, std::memory_order_relaxed);
    } else {
      inbox_home_.push_back(cb);
    }
    inbox_nonempty_.store(true, std::memory_order_seq_cst);
  }
  if (sleeping_.load(std::memory_order_seq_cst)) {
    wake();
  } else if (stealable) {
    // Busy, perhaps in a fiber that computes for long: an idle worker may
    // take it (steal_inbox) rather than let it wait. Usually we are back in
    // our loop first, and the woken worker finds nothing.
    rt_.wake_idle_worker();
  }
  if (outsider) rt_.outside_callers_.fetch_sub(1, std::memory_order_release);
}

void worker::wake() noexcept { ev_async_send(loop_, async_.get()); }

void worker::after_fork_in_child() noexcept { ev_loop_fork(loop_); }

void runtime::timer_added(timer_heap::rep when) noexcept {
  for (unsigned i = 0; i < slot_count(); ++i) {
    worker& w = worker_at(i);
    if (w.sleep_until_.load(std::memory_order_seq_cst) > when) {
      w.wake();  // it recomputes its timeout (and runs what is due)
      return;
    }
  }
}

void worker::enqueue(control_block* cb, bool next) noexcept {
  if (loop_wait* lw = cb->loop_wait_; lw != nullptr) {
    // Routed here because its watcher is in this worker's loop (see
    // make_runnable): stop it before the fiber can run anywhere.
    cb->loop_wait_ = nullptr;
    lw->cancel(lw);
  }
  if (cb->pinned_ != 0) {
    pinned_.push_back(cb);
    return;
  }
  if (next) {
    // Thieves only ever take from runnext_ (exchange with null), never put
    // into it: when it is empty, a plain store cannot race with anything.
    if (runnext_.load(std::memory_order_relaxed) == nullptr) {
      runnext_.store(cb, std::memory_order_release);
      return;
    }
    // The one it displaces goes to the ring, where others may steal it.
    if (enter_alone_region()) {
      control_block* displaced = runnext_.load(std::memory_order_relaxed);
      runnext_.store(cb, std::memory_order_relaxed);
      cb = displaced;
    } else {
      cb = runnext_.exchange(cb, std::memory_order_acq_rel);
    }
    leave_alone_region();
    if (cb == nullptr) return;
  }
  push_ring(cb);
}

void worker::push_ring(control_block* cb) noexcept {
  // Behind fibers already in the overflow list, to keep the order.
  const int before = overflow_.empty() ? ring_.push(cb) : -1;
  if (before < 0) [[unlikely]] {
    overflow_.push_back(cb);
    rt_.wake_idle_worker();
    return;
  }
  // More than this worker will run next: worth a hand from an idle one.
  if (before >= 1) rt_.wake_idle_worker();
}

control_block* worker::pop_overflow() noexcept {
  // The ring is empty: refill it from the overflow list, oldest first, so
  // that thieves can take a share again.
  control_block* first = overflow_.pop_front();
  while (!overflow_.empty()) {
    control_block* cb = overflow_.pop_front();
    if (ring_.push(cb) < 0) {  // full
      overflow_.push_front(cb);
      break;
    }
  }
  return first;
}

control_block* worker::take_shared() noexcept {
  // A batch at a time, into our ring (Go's globrunqget): one lock per
  // batch rather than per fiber. A share of it, so others get some too.
  const std::uint32_t room = run_ring::capacity - ring_.size();
  std::uint32_t want = rt_.shared_count() / rt_.worker_count() + 1;
  if (want > room / 2) want = room / 2;
  if (want == 0) want = 1;
  control_block* last = nullptr;
  control_block* first = rt_.pop_shared(want, &last);
  if (first == nullptr) return nullptr;
  for (control_block* cb = first->next_; cb != nullptr;) {
    control_block* next = cb->next_;
    cb->next_ = nullptr;
    if (ring_.push(cb) < 0) rt_.push_shared(cb, cb, 1);
    cb = next;
  }
  first->next_ = nullptr;
  return first;
}

control_block* worker::find_work() noexcept {
  if (rt_.shared_nonempty()) {
    if (control_block* cb = take_shared()) return cb;
  }
  const unsigned n = rt_.slot_count();
  if (n < 2) return nullptr;
  // xorshift32: a different victim order per attempt, so thieves spread.
  rand_state_ ^= rand_state_ << 13;
  rand_state_ ^= rand_state_ >> 17;
  rand_state_ ^= rand_state_ << 5;
  const unsigned start = rand_state_ % n;
  control_block* stolen[run_ring::capacity / 2];
  for (unsigned i = 0; i < n; ++i) {
    const unsigned v = (start + i) % n;
    if (v == index_) continue;
    worker& victim = rt_.worker_at(v);
    std::uint32_t got = victim.steal_into(stolen, run_ring::capacity / 2);
    // Then what other threads handed it: a worker stuck in one fiber does
    // not drain its inbox.
    if (got == 0) got = victim.steal_inbox(stolen, run_ring::capacity / 2);
    if (got == 0) continue;
    steals_.store(steals_.load(std::memory_order_relaxed) + got, std::memory_order_relaxed);
    // Our ring is empty (we only steal when out of work), so they fit.
    for (std::uint32_t k = 1; k < got; ++k) {
      if (ring_.push(stolen[k]) < 0) rt_.push_shared(stolen[k], stolen[k], 1);
    }
    return stolen[0];
  }
  if (control_block* cb = steal_timers()) return cb;
  return steal_stale_runnext();
}

control_block* worker::steal_stale_runnext() noexcept {
  // A worker whose switch count has not moved for stale_runnext_age while
  // a fiber sat in its runnext slot is stuck in one fiber (computing, or
  // spinning on something): the runnext fiber would wait for it, so we
  // take it (Go steals runnext from a P that has run one G for a while).
  const auto now = std::chrono::steady_clock::now();
  const unsigned n = rt_.slot_count();
  for (unsigned v = 0; v < n; ++v) {
    if (v == index_) continue;
    worker& victim = rt_.worker_at(v);
    victim_view& seen = seen_[v];
    const std::uint32_t count = victim.switch_count();
    if (count != seen.switches || !victim.has_runnext()) {
      seen.switches = count;
      seen.since = now;
      continue;
    }
    if (now - seen.since < stale_runnext_age) continue;
    if (control_block* cb = victim.steal_runnext(count)) return cb;
  }
  return nullptr;
}

control_block* worker::search() noexcept {
  // Alone, there is nobody to steal from, and what other threads hand us
  // comes with a wakeup: sleep in the loop at once.
  if (alone_.load(std::memory_order_relaxed)) return nullptr;
  // Only a few workers spin; the others take one look and go to sleep.
  if (rt_.searching_.fetch_add(1, std::memory_order_acq_rel) >= max_spinning_workers) {
    rt_.searching_.fetch_sub(1, std::memory_order_acq_rel);
    return find_work();
  }
  auto now = std::chrono::steady_clock::now();
  const auto give_up = now + spin_duration;
  auto next_look = now;  // at other workers (see steal_look_interval)
  control_block* found = nullptr;
  for (;;) {
    if (now >= next_look) {
      found = find_work();
      next_look = now + steal_look_interval;
    }
    if (found == nullptr) {
      drain_inbox();
      found = pop_local();
    }
    // The network too (Go's findrunnable polls it while spinning):
    // otherwise a connection that becomes ready waits out the spin.
    if (found == nullptr) found = poll_network_directly();
    if (found != nullptr || rt_.stopping()) break;
    std::this_thread::yield();  // let a worker with real work have the core
    now = std::chrono::steady_clock::now();
    if (now >= give_up) break;
  }
  rt_.searching_.fetch_sub(1, std::memory_order_acq_rel);
  // We found work and stop searching: if others are idle, let one take
  // over the search (there may be more work than one worker can run).
  if (found != nullptr) rt_.wake_idle_worker();
  return found;
}

void worker::after_switch(void* from_ctx) noexcept { after_switch_inline(from_ctx); }

const control_block* worker::current_racy() const noexcept {
  return static_cast<const control_block*>(
      racy_load_pointer(reinterpret_cast<const void* const*>(&current_)));
}

void worker::yield() noexcept {
  control_block* self = current_;
  control_block* next = pick_next();
  if (next == nullptr) {
    if (!poll_due_) return;  // nothing else is runnable: carry on
    next = loop_cb_;
  }
  switch_to(self, next, switch_action::yield);
}

void worker::park() noexcept {
  control_block* self = current_;
  control_block* next = pick_next();
  switch_to(self, next != nullptr ? next : loop_cb_, switch_action::park);
}

void worker::park_commit(void (*commit)(void*), void* arg) noexcept {
  control_block* self = current_;
  control_block* next = pick_next();
  pending_commit_ = commit;
  pending_commit_arg_ = arg;
  switch_to(self, next != nullptr ? next : loop_cb_, switch_action::park_commit);
}

bool worker::park_until(std::chrono::steady_clock::time_point deadline, bool cancellable) noexcept {
  return park_commit_until(deadline, nullptr, nullptr, cancellable);
}

namespace {
// A stop request on a cancellable wait's fiber: the wait's node fires now
// (timer_heap::cancel), from whichever thread requested the stop.
struct stop_canceller {
  timer_heap* heap;
  timer_node* node;
  void operator()() const noexcept {
    control_block* wake = nullptr;
    heap->cancel(node, [&wake](timer_node* n) { wake = claim_cancelled(n); });
    if (wake != nullptr) make_runnable(wake, wake_order::next);
  }
};
}  // namespace

bool worker::park_commit_until(std::chrono::steady_clock::time_point deadline,
                               void (*commit)(void*), void* arg, bool cancellable) noexcept {
  control_block* self = current_;
  timer_node node;
  node.when = deadline;
  node.cb = self;
  self->wait_deadline_.store(
      deadline == std::chrono::steady_clock::time_point::max() ? 0
                                                               : deadline.time_since_epoch().count(),
      std::memory_order_relaxed);
  // This worker's heap; any worker may run it. Kept in a local: once we
  // resume, `this` may be another thread's worker.
  timer_heap* heap = &timers_;
  // Declared after the node, so destroyed before it: the destructor waits
  // for a callback running on another thread, which uses the node.
  std::optional<std::stop_callback<stop_canceller>> on_stop;
  if (cancellable && self->stop_ != nullptr && self->stop_->stop_possible()) [[unlikely]] {
    // If stop was requested already, this runs the callback here: the node
    // is marked cancelled and fires as it would go in the heap.
    on_stop.emplace(*self->stop_, stop_canceller{heap, &node});
  }
  if (commit == nullptr) {
    // `parking` already (prepare_park): a firer that comes before the
    // switch is done leaves the enqueueing to the switch (claim::parking).
    control_block* wake = nullptr;
    if (heap->add_or_fire(&node, [&wake](timer_node* n) { wake = claim_cancelled(n); })) {
      rt_.timer_added(deadline.time_since_epoch().count());
    }
    SPINDLE_ASSERT(wake == nullptr);  // still parking: the switch enqueues it
    park();
  } else {
    // Still `running`: a firer now would find nothing to claim. The switch
    // adds it once the fiber is parked (after_switch).
    pending_timer_ = &node;
    park_commit(commit, arg);
  }
  // Woken by the timer or by anyone else: either way the node leaves the
  // heap under its lock before it goes out of scope, so no firer can still
  // be looking at it, and `fired` is final.
  heap->remove(&node);
  self->wait_deadline_.store(0, std::memory_order_relaxed);
  return !node.fired;
}

control_block* worker::finish_current() noexcept {
  control_block* self = current_;
  if (self->check_canary_) [[unlikely]] check_canary(self);
  control_block* next = pick_next();
  if (next == nullptr) next = loop_cb_;
  const bool to_loop = next == loop_cb_;
  pending_from_ = self;
  pending_action_ = switch_action::finish;
  current_ = next;
  switches_.store(switches_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  tls_current_fiber = to_loop ? nullptr : next;
  if (!to_loop) {
    next->worker_ = this;
    next->state_.store(fiber_state::running, std::memory_order_relaxed);
  }
  // A finished fiber handles no exception: nothing to save.
  swap_exception_state(static_cast<eh_globals*>(eh_globals_), nullptr, next);
  return next;
}

}  // namespace spindle::detail
