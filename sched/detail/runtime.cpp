// The runtime: starting and stopping workers, spawning and joining fibers.
#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <typeinfo>

#include "fiber/detail/context.h"
#include "fiber/detail/overflow.h"
#include "fiber/detail/sanitizer.h"
#include "sched/detail/dump.h"
#include "sched/detail/netpoll.h"
#include "sched/detail/runtime.h"
#include "sched/detail/worker.h"
#include "sched/park.h"
#include "fiber/detail/spawn.h"

namespace spindle::detail {
namespace {

// The running runtime, for plain threads that spawn into it. Also
// serializes the last fiber's exit against spawns from plain threads, so
// that a fiber is never handed to a runtime that has decided to stop.
os_mutex g_runtime_mu;
runtime* g_runtime SPINDLE_GUARDED_BY(g_runtime_mu) = nullptr;
// The default runtime, once started (see default_runtime_locked()).
runtime* g_default SPINDLE_GUARDED_BY(g_runtime_mu) = nullptr;

// fork(). The child has one thread, the one that called fork(): every
// worker, pool thread and plain thread of the parent is gone, and so is
// every fiber that ran or waited on them. Held across the fork, so that
// the child finds it free, g_runtime_mu guards what a plain thread of the
// child needs: the child forgets the parent's runtimes (leaking them: their
// threads are not there to stop), and its first fiber starts a fresh
// default runtime. The netpoll's epoll instance is shared with the parent
// across fork (as every descriptor is): the child gets its own under the
// same number, so that registrations in the child never reach the parent's
// workers. A fork on a fiber leaves the child running on that worker's
// thread; its libev loop is told of the fork (ev_loop_fork) so that it
// rebuilds its own kernel state rather than share the parent's. What is
// defined there is what POSIX defines for the child of a multithreaded
// process (async-signal-safe calls, then exec or _exit); see README.md.
// Held from the prepare handler to the parent and child handlers: the
// analysis follows a lock within one function only.
void lock_for_fork() noexcept SPINDLE_NO_THREAD_SAFETY_ANALYSIS { g_runtime_mu.lock(); }
void unlock_in_parent() noexcept SPINDLE_NO_THREAD_SAFETY_ANALYSIS { g_runtime_mu.unlock(); }
void reset_in_child() noexcept SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
  g_runtime = nullptr;
  g_default = nullptr;
  const int ep = netpoll_fd();
  if (ep >= 0) {
    const int fresh = ::epoll_create1(EPOLL_CLOEXEC);
    if (fresh >= 0 && fresh != ep) {
      ::dup3(fresh, ep, O_CLOEXEC);
      ::close(fresh);
    }
  }
  if (worker* w = this_worker(); w != nullptr) w->after_fork_in_child();
  g_runtime_mu.unlock();
}
void install_fork_handlers() noexcept {
  static std::once_flag once;
  std::call_once(once, [] { ::pthread_atfork(lock_for_fork, unlock_in_parent, reset_in_child); });
}

// The function every fiber starts in, on its own stack; the first jump to
// a fiber passes its control block as the data.
[[noreturn]] void fiber_entry(transfer_t t) noexcept {
  auto* cb = static_cast<control_block*>(t.data);
  cb->worker_->after_switch(t.fctx);
  cb->run();
  if (cb->exception_ && cb->terminate_on_exception_) [[unlikely]] report_uncaught(cb);  // std::thread's rule
  cb->destroy_fiber_locals();
  // Hidden from inspectors before the exchange below (inspect.h).
  retire_live(cb);
  // Hand the result over: exactly one of us and the joiner (or detach())
  // sees the other's mark in joiner_.
  control_block* joiner = cb->joiner_.exchange(joiner_finished, std::memory_order_acq_rel);
  if (joiner == joiner_detached) {
    if (cb->exception_) report_uncaught(cb);
  } else if (joiner != nullptr) {
    // Behind the fibers already runnable: a joiner of many fibers would
    // otherwise switch in and out once per finishing child.
    wake(joiner, wake_order::queued);
  }
  cb->state_.store(fiber_state::finished, std::memory_order_relaxed);
  // Not this_worker(): see worker::switch_to on thread_locals across switches.
  worker* w = cb->worker_;
  if (cb->pinned_ != 0) [[unlikely]] w->pinned_here(-1);
  w->rt().fiber_finished(*w);
  control_block* next = w->finish_current();
  w->annotate_last_switch(next);
  jump(next->ctx_, next);
  __builtin_unreachable();  // nothing ever jumps back to a finished fiber
}

// Readies a new fiber `cb` (built by make_record, its name already set:
// the one step that can throw, done before the fiber is counted) and hands
// it to `target`: `local` when the caller is target's own thread.
void start_fiber(worker& target, control_block* cb, const fiber_options& o, bool joinable,
                 bool local) noexcept {
  cb->check_canary_ = cb->stack_.guard == guard_kind::canary;
  cb->id_ = next_fiber_id();
  cb->pinned_ = o.pinned ? 1 : 0;
  if (o.pinned) target.pinned_here(+1);
  cb->terminate_on_exception_ = o.terminate_on_exception;

  // The context's stack ends just below the control block.
  char* sp = reinterpret_cast<char*>(cb);
  cb->ctx_ = make_context(sp, static_cast<std::size_t>(sp - cb->stack_.limit()), &fiber_entry);
  cb->tsan_fiber_ = tsan_create_fiber();
  if (joinable) {
    cb->set_refs_unpublished(2);  // the fiber's and the handle's
  } else {
    cb->joiner_.store(joiner_detached, std::memory_order_relaxed);
  }
  cb->worker_ = &target;
  cb->state_.store(fiber_state::runnable, std::memory_order_relaxed);
  publish_live(cb);  // for inspectors (fiber/detail/inspect.h)
  if (local) {
    target.enqueue_spawned(cb);
    // New work: if a worker sleeps while none looks for work, wake one (Go
    // wakes on every spawn too), so that a spawner that goes on computing
    // does not keep its children waiting.
    target.rt().wake_idle_worker();
  } else {
    target.schedule_remote(cb);
  }
}


void check_worker_index(const runtime& rt, const fiber_options& o) {
  if (o.worker < -1 || o.worker >= static_cast<int>(rt.worker_count())) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "spindle: fiber_options::worker is not a worker of this runtime");
  }
}

options normalized(options o) {
  if (o.workers == 0) o.workers = std::max(1u, std::thread::hardware_concurrency());
  // The diagnostics' environment variables, for programs that set nothing.
  if (o.dump_signal == 0) o.dump_signal = dump_signal_from_env();
  if (o.long_run_warning.count() == 0) {
    if (const char* v = std::getenv("SPINDLE_LONG_RUN_WARNING_MS"); v != nullptr && *v != '\0') {
      char* end = nullptr;
      const long ms = std::strtol(v, &end, 10);
      if (*end == '\0' && ms > 0) {
        o.long_run_warning = std::chrono::milliseconds(ms);
      } else {
        std::fprintf(stderr, "spindle: SPINDLE_LONG_RUN_WARNING_MS=%s is not a positive number "
                             "of milliseconds; ignored\n", v);
      }
    }
  }
  return o;
}

// Starts what watches a runtime from outside: its monitor and, if asked
// for, the dump on a signal.
void start_diagnostics(runtime& rt, std::unique_ptr<monitor>& m) {
  m = std::make_unique<monitor>(rt, rt.opts().long_run_warning);
  if (rt.opts().dump_signal != 0) install_dump_signal(rt.opts().dump_signal);
}

// The default runtime: started by the first fiber spawned from a plain
// thread while no spindle::run() is active; its workers run on background
// threads until the process exits. Never destroyed (its threads may still
// be parked in their loops while static destructors run at exit).
runtime& default_runtime_locked() SPINDLE_REQUIRES(g_runtime_mu) {
  if (g_default == nullptr) {
    auto* r = new runtime(runtime_options{.stack_size = default_stack_size, .workers = 0}, true);
    r->start_background();
    g_default = r;
  }
  return *g_default;
}

}  // namespace

runtime::runtime(const runtime_options& opts, bool persistent)
    : opts_(normalized(opts)),
      persistent_(persistent),
      base_workers_(opts_.workers),
      slot_capacity_(opts_.workers + opts_.max_spare_workers),
      slots_(std::make_unique<std::unique_ptr<worker>[]>(slot_capacity_)),
      spare_threads_(std::make_unique<std::thread[]>(slot_capacity_)),
      blocking_(std::make_unique<blocking_pool>(opts)) {
  install_fork_handlers();
  for (unsigned i = 0; i < base_workers_; ++i) slots_[i] = std::make_unique<worker>(*this, i);
  slot_count_.store(base_workers_, std::memory_order_release);
}

runtime::~runtime() {
  // A plain thread that woke or spawned the last fibers may still be in
  // worker::schedule_remote(), a few instructions from done.
  while (outside_callers_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
}

void runtime::fiber_started_on_worker(worker& w) noexcept {
  if (w.enter_alone_region()) {
    worker_live_.store(worker_live_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    w.leave_alone_region();
  } else {
    w.leave_alone_region();
    live_.fetch_add(1, std::memory_order_relaxed);
  }
}

void runtime::fiber_finished(worker& w) noexcept {
  if (w.enter_alone_region()) {
    const std::int64_t mine = worker_live_.load(std::memory_order_relaxed) - 1;
    worker_live_.store(mine, std::memory_order_relaxed);
    w.leave_alone_region();
    if (mine + live_.load(std::memory_order_acquire) != 0 || persistent_) return;
  } else {
    w.leave_alone_region();
    // worker_live_ holds what a worker counted while it was alone (spares
    // have come since; it is not written while they run).
    if (live_.fetch_sub(1, std::memory_order_acq_rel) - 1 +
                worker_live_.load(std::memory_order_acquire) != 0 ||
        persistent_) {
      return;
    }
  }
  {
    lock_holder lock(g_runtime_mu);
    // A plain thread may have spawned in between (under the same lock).
    if (worker_live_.load(std::memory_order_acquire) + live_.load(std::memory_order_acquire) != 0) {
      return;
    }
    stopping_.store(true, std::memory_order_release);
  }
  for (unsigned i = 0; i < slot_count(); ++i) worker_at(i).wake();
}

void runtime::run() noexcept {
  install_overflow_handler();
  start_diagnostics(*this, monitor_);
  std::vector<std::thread> threads;
  threads.reserve(base_workers_);
  for (unsigned i = 1; i < base_workers_; ++i) {
    worker* w = &worker_at(i);
    threads.emplace_back([w] { w->loop(); });
  }
  worker_at(0).loop();
  for (auto& t : threads) t.join();
  // The monitor's thread first (it starts spares); then the spares, which
  // leave their loops as the base workers did (and still tell the monitor
  // object when they wake); then the monitor object.
  monitor_->stop();
  join_spares(/*all=*/true);
  monitor_.reset();
}

void runtime::start_background() {
  install_overflow_handler();
  start_diagnostics(*this, monitor_);
  for (unsigned i = 0; i < base_workers_; ++i) {
    worker* p = &worker_at(i);
    std::thread([p] { p->loop(); }).detach();
  }
}

worker& runtime::pick_worker_for_plain_thread() noexcept {
  return worker_at(next_plain_.fetch_add(1, std::memory_order_relaxed) % base_workers_);
}

bool runtime::start_spare() noexcept {
  if (stopping()) return false;
  if (active_spares_.load(std::memory_order_relaxed) >= static_cast<int>(opts_.max_spare_workers)) {
    return false;
  }
  // A retired slot first (its thread has left the loop, or is leaving it:
  // joined here), else a new one.
  unsigned slot = slot_count();
  for (unsigned i = base_workers_; i < slot_count(); ++i) {
    if (worker_at(i).retired()) {
      slot = i;
      break;
    }
  }
  if (slot == slot_count()) {
    if (slot >= slot_capacity_) return false;
    try {
      slots_[slot] = std::make_unique<worker>(*this, slot);
    } catch (...) {
      return false;  // no libev loop (descriptors) or memory: try again later
    }
  } else if (spare_threads_[slot].joinable()) {
    spare_threads_[slot].join();
  }
  worker* w = slots_[slot].get();
  // A one-worker runtime's worker stops taking its queues without atomic
  // read-modify-writes before anyone may steal from it (worker::share()).
  if (base_workers_ == 1) worker_at(0).share();
  w->reopen();
  active_spares_.fetch_add(1, std::memory_order_acq_rel);
  // Published before its thread runs: other workers' timer and steal loops
  // see it from its first moment (a slot that stays unused is retired).
  if (slot == slot_count()) slot_count_.store(slot + 1, std::memory_order_release);
  try {
    spare_threads_[slot] = std::thread([w] { w->loop(); });
  } catch (...) {
    active_spares_.fetch_sub(1, std::memory_order_acq_rel);
    w->close_unused();
    return false;
  }
  spares_started_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool runtime::spare_may_retire() noexcept {
  int spares = active_spares_.load(std::memory_order_acquire);
  for (;;) {
    // Holds have ended (fewer held workers than spares), or another worker
    // idles and can take what comes. Not while stopping: the loop leaves
    // by itself then.
    if (spares <= 0) return false;
    if (held_.load(std::memory_order_relaxed) >= spares &&
        idle_count_.load(std::memory_order_acquire) == 0) {
      return false;
    }
    if (active_spares_.compare_exchange_weak(spares, spares - 1, std::memory_order_acq_rel,
                                             std::memory_order_acquire)) {
      return true;
    }
  }
}

void runtime::join_spares(bool all) noexcept {
  for (unsigned i = base_workers_; i < slot_count(); ++i) {
    if (!spare_threads_[i].joinable()) continue;
    if (all || worker_at(i).retired()) spare_threads_[i].join();
  }
  // The one worker of its runtime is alone again once no spare runs (no
  // thief can touch its queues): back to its plain loads and stores.
  if (base_workers_ == 1 && active_spares_.load(std::memory_order_acquire) == 0) {
    bool any = false;
    for (unsigned i = base_workers_; i < slot_count(); ++i) {
      any = any || spare_threads_[i].joinable();
    }
    if (!any) worker_at(0).unshare();
  }
}

void runtime::push_shared(control_block* first, control_block* last, std::uint32_t n) noexcept {
  last->next_ = nullptr;
  lock_holder lock(shared_mu_);
  shared_.splice_back(first, last);
  shared_count_.fetch_add(n, std::memory_order_relaxed);
}

control_block* runtime::pop_shared(std::uint32_t max, control_block** last) noexcept {
  lock_holder lock(shared_mu_);
  control_block* first = nullptr;
  control_block* tail = nullptr;
  std::uint32_t n = 0;
  while (n < max) {
    control_block* cb = shared_.pop_front();
    if (cb == nullptr) break;
    if (tail != nullptr) {
      tail->next_ = cb;
    } else {
      first = cb;
    }
    tail = cb;
    ++n;
  }
  if (n != 0) shared_count_.fetch_sub(n, std::memory_order_relaxed);
  *last = tail;
  return first;
}

void runtime::wake_one_idle_worker() noexcept {
  worker* w = nullptr;
  {
    lock_holder lock(idle_mu_);
    if (!idle_.empty()) {
      w = idle_.back();
      idle_.pop_back();
      idle_count_.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  if (w != nullptr) w->wake();
}

void runtime::enter_idle(worker* w) noexcept {
  lock_holder lock(idle_mu_);
  idle_.push_back(w);
  idle_count_.fetch_add(1, std::memory_order_seq_cst);
}

void runtime::leave_idle(worker* w) noexcept {
  lock_holder lock(idle_mu_);
  for (auto it = idle_.begin(); it != idle_.end(); ++it) {
    if (*it == w) {
      idle_.erase(it);
      // seq_cst: against the monitor's check before it sleeps (monitor.h).
      idle_count_.fetch_sub(1, std::memory_order_seq_cst);
      break;
    }
  }
  if (monitor_ != nullptr) monitor_->worker_woke();
}

stack allocate_fiber_stack(std::size_t size) {
  if (size == 0) {
    if (worker* w = this_worker(); w != nullptr) {
      size = w->rt().opts().stack_size;
    } else {
      lock_holder lock(g_runtime_mu);
      size = g_runtime != nullptr ? g_runtime->opts().stack_size : default_stack_size;
    }
  }
  return allocate_stack(size);
}

void spawn(control_block* cb, const fiber_options& o, bool joinable) {
  cb->name_ = o.name;  // may throw std::bad_alloc: before anything is counted
  if (o.stop_token.stop_possible()) cb->stop_ = new std::stop_token(o.stop_token);  // the same
  if (worker* w = this_worker(); w != nullptr) {
    // On a worker, from a fiber (which keeps the runtime alive). Counted
    // before it is published: another worker may steal it and finish it at
    // once, and the count must not touch zero meanwhile.
    runtime& rt = w->rt();
    check_worker_index(rt, o);
    worker& target = o.worker >= 0 ? rt.worker_at(static_cast<unsigned>(o.worker)) : *w;
    rt.fiber_started_on_worker(*w);
    start_fiber(target, cb, o, joinable, &target == w);
    return;
  }
  // From a plain thread: into the running spindle::run() runtime if there
  // is one, else into the default runtime (started on first use).
  lock_holder lock(g_runtime_mu);
  runtime* rt = g_runtime;
  if (rt == nullptr || rt->stopping()) rt = &default_runtime_locked();
  check_worker_index(*rt, o);
  worker& target = o.worker >= 0 ? rt->worker_at(static_cast<unsigned>(o.worker))
                                 : rt->pick_worker_for_plain_thread();
  // Counted before it can run (and finish): under g_runtime_mu, so the
  // runtime cannot decide to stop in between (see fiber_finished()).
  rt->fiber_started_by_plain_thread();
  start_fiber(target, cb, o, joinable, false);
}

bool join(control_block* cb, bool cancellable) noexcept {
  if (cb->joiner_.load(std::memory_order_acquire) == joiner_finished) return true;  // fast path
  control_block* self = current_waiter();
  note_wait(self, wait_reason::join, cb, static_cast<std::int64_t>(cb->id_));
  prepare_park(self);
  control_block* expected = nullptr;
  if (!cb->joiner_.compare_exchange_strong(expected, self, std::memory_order_acq_rel,
                                           std::memory_order_acquire)) {
    cancel_park(self);  // it finished meanwhile (expected == joiner_finished)
    return true;
  }
  if (cancellable && detail::cancellable(self)) [[unlikely]] {
    if (!park_until(self, std::chrono::steady_clock::time_point::max(), cancel_point::yes)) {
      // Stopped. Withdraw, unless the fiber finished first: then its
      // exchange saw us (its unpark lost to the stop) and the join is done.
      expected = self;
      if (cb->joiner_.compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel,
                                              std::memory_order_acquire)) {
        return false;
      }
    }
  } else {
    park(self);  // the finishing fiber unparks us
  }
  // Pair with the finisher's exchange (release) so that exception_ and
  // everything the fiber did is visible.
  (void)cb->joiner_.load(std::memory_order_acquire);
  return true;
}

void with_runtimes(void (*fn)(runtime& rt, void* arg), void* arg) {
  lock_holder lock(g_runtime_mu);
  if (g_runtime != nullptr) fn(*g_runtime, arg);
  if (g_default != nullptr && g_default != g_runtime) fn(*g_default, arg);
}

bool run_active() noexcept {
  lock_holder lock(g_runtime_mu);
  return g_runtime != nullptr;
}

void report_uncaught(control_block* cb) noexcept {
  std::string what = "an exception not derived from std::exception";
  try {
    std::rethrow_exception(cb->exception_);
  } catch (const std::exception& e) {
    what = std::string(typeid(e).name()) + ": " + e.what();
  } catch (...) {
  }
  write_fiber_diagnostic("uncaught exception", cb, what.c_str());
  std::terminate();
}

void run_main(const runtime_options& opts, control_block* (*make_main)(void* ctx, const stack& s),
              void* ctx) {
  if (this_worker() != nullptr || tls_current_fiber != nullptr) {
    throw std::system_error(std::make_error_code(std::errc::operation_not_permitted),
                            "spindle::run: called on a fiber or a worker thread");
  }
  runtime rt(opts, /*persistent=*/false);
  {
    lock_holder lock(g_runtime_mu);
    if (g_runtime != nullptr) {
      throw std::system_error(std::make_error_code(std::errc::device_or_resource_busy),
                              "spindle::run: a runtime is already running");
    }
    g_runtime = &rt;
  }
  control_block* main = nullptr;
  try {
    main = make_main(ctx, allocate_stack(rt.opts().stack_size));
    main->name_ = "main";
    main->spawn_site_ = __builtin_return_address(0);
    rt.fiber_started_on_worker(rt.worker_at(0));
    // The workers have not started: this thread may use worker 0's queues.
    start_fiber(rt.worker_at(0), main, fiber_options{.name = "main"}, /*joinable=*/true,
                /*local=*/true);
  } catch (...) {
    if (main != nullptr) main->release();
    lock_holder lock(g_runtime_mu);
    g_runtime = nullptr;
    throw;
  }
  rt.run();
  {
    lock_holder lock(g_runtime_mu);
    g_runtime = nullptr;
  }
  if (rt.deadlocked()) {
    // main and the others are parked for ever: leave them (their stacks
    // are never reused) and report.
    rt.abandon_fibers();
    throw deadlock_error(rt.deadlock_report());
  }
  // main finished before the runtime stopped; run() holds the reference
  // that start_fiber() took for a joinable fiber (as a handle would).
  std::exception_ptr e = std::move(main->exception_);
  main->release();
  if (e) std::rethrow_exception(e);
}

}  // namespace spindle::detail
