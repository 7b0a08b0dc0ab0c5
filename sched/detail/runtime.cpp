// The runtime: starting and stopping workers, spawning and joining fibers.
#include <exception>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <typeinfo>

#include "fiber/detail/context.h"
#include "fiber/detail/overflow.h"
#include "fiber/detail/sanitizer.h"
#include "sched/detail/worker.h"
#include "sched/park.h"
#include "sched/spawn.h"

namespace spindle::detail {
namespace {

// The running runtime, for plain threads that spawn into it. Also
// serializes the last fiber's exit against spawns from plain threads, so
// that a fiber is never handed to a runtime that has decided to stop.
std::mutex g_runtime_mu;
runtime* g_runtime = nullptr;  // guarded by g_runtime_mu

// The function every fiber starts in, on its own stack; the first jump to
// a fiber passes its control block as the data.
[[noreturn]] void fiber_entry(transfer_t t) noexcept {
  auto* cb = static_cast<control_block*>(t.data);
  cb->worker_->after_switch(t.fctx);
  cb->run();
  cb->destroy_fiber_locals();
  // Hand the result over: exactly one of us and the joiner (or detach())
  // sees the other's mark in joiner_.
  control_block* joiner = cb->joiner_.exchange(joiner_finished, std::memory_order_acq_rel);
  if (joiner == joiner_detached) {
    if (cb->exception_) report_uncaught(cb);
  } else if (joiner != nullptr) {
    unpark(joiner);
  }
  cb->state_.store(fiber_state::finished, std::memory_order_relaxed);
  // Not this_worker(): see worker::switch_to on thread_locals across switches.
  worker* w = cb->worker_;
  w->rt().fiber_finished();
  control_block* next = w->finish_current();
  w->annotate_last_switch(next);
  jump(next->ctx_, next);
  __builtin_unreachable();  // nothing ever jumps back to a finished fiber
}

void start_fiber(worker& target, control_block* cb, std::string_view name, bool joinable,
                 bool local) {
  cb->name_ = name;  // may throw std::bad_alloc; nothing else below throws
  cb->check_canary_ = cb->stack_.guard == guard_kind::canary;
  cb->id_ = next_fiber_id();
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
  if (local) {
    target.schedule_local(cb);
  } else {
    target.schedule_remote(cb);
  }
}

[[noreturn]] void throw_no_runtime() {
  throw std::system_error(std::make_error_code(std::errc::operation_not_permitted),
                          "spindle: no runtime is running; start fibers inside spindle::run()");
}

}  // namespace

runtime::runtime(const options& opts) : opts_(opts) {
  workers_.reserve(opts.workers);
  for (unsigned i = 0; i < opts.workers; ++i) {
    workers_.push_back(std::make_unique<worker>(*this, i));
  }
}

runtime::~runtime() = default;

void runtime::fiber_finished() noexcept {
  if (live_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  {
    std::lock_guard lock(g_runtime_mu);
    // A plain thread may have spawned in between (under the same lock).
    if (live_.load(std::memory_order_acquire) != 0) return;
    stopping_.store(true, std::memory_order_release);
  }
  for (auto& w : workers_) w->wake();
}

void runtime::run() noexcept {
  install_overflow_handler();
  std::vector<std::thread> threads;
  threads.reserve(workers_.size());
  for (std::size_t i = 1; i < workers_.size(); ++i) {
    worker* w = workers_[i].get();
    threads.emplace_back([w] { w->loop(); });
  }
  workers_[0]->loop();
  for (auto& t : threads) t.join();
}

stack allocate_fiber_stack(std::size_t size) {
  if (size == 0) {
    if (worker* w = this_worker(); w != nullptr) {
      size = w->rt().opts().stack_size;
    } else {
      std::lock_guard lock(g_runtime_mu);
      if (g_runtime == nullptr || g_runtime->stopping()) throw_no_runtime();
      size = g_runtime->opts().stack_size;
    }
  }
  return allocate_stack(size);
}

void spawn(control_block* cb, std::string_view name, bool joinable) {
  if (worker* w = this_worker(); w != nullptr) {
    // On a worker (from a fiber, which keeps the runtime alive): start on
    // this worker.
    start_fiber(*w, cb, name, joinable, true);
    w->rt().fiber_started();
    return;
  }
  // From a plain thread: into the running runtime, if any.
  std::lock_guard lock(g_runtime_mu);
  if (g_runtime == nullptr || g_runtime->stopping()) throw_no_runtime();
  // Counted before it can run (and finish): under g_runtime_mu, so the
  // runtime cannot decide to stop in between (see fiber_finished()).
  g_runtime->fiber_started();
  try {
    start_fiber(g_runtime->worker_at(0), cb, name, joinable, false);
  } catch (...) {
    // Not the last fiber (we hold g_runtime_mu): undo the count.
    g_runtime->fiber_finished();
    throw;
  }
}

void join(control_block* cb) noexcept {
  if (cb->joiner_.load(std::memory_order_acquire) == joiner_finished) return;  // fast path
  control_block* self = current_waiter();
  prepare_park(self);
  control_block* expected = nullptr;
  if (cb->joiner_.compare_exchange_strong(expected, self, std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
    park(self);  // the finishing fiber unparks us
    // Pair with the finisher's exchange (release) so that exception_ and
    // everything the fiber did is visible.
    (void)cb->joiner_.load(std::memory_order_acquire);
  } else {
    cancel_park(self);  // it finished meanwhile (expected == joiner_finished)
  }
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

void run_main(const options& opts, control_block* (*make_main)(void* ctx, const stack& s),
              void* ctx) {
  if (this_worker() != nullptr || tls_current_fiber != nullptr) {
    throw std::system_error(std::make_error_code(std::errc::operation_not_permitted),
                            "spindle::run: called on a fiber or a worker thread");
  }
  options o = opts;
  if (o.workers == 0) o.workers = std::max(1u, std::thread::hardware_concurrency());
  runtime rt(o);
  {
    std::lock_guard lock(g_runtime_mu);
    if (g_runtime != nullptr) {
      throw std::system_error(std::make_error_code(std::errc::device_or_resource_busy),
                              "spindle::run: a runtime is already running");
    }
    g_runtime = &rt;
  }
  control_block* main = nullptr;
  try {
    main = make_main(ctx, allocate_stack(o.stack_size));
    // One worker, not started yet: this thread may use its queue.
    start_fiber(rt.worker_at(0), main, "main", /*joinable=*/true, /*local=*/true);
    rt.fiber_started();
  } catch (...) {
    if (main != nullptr) main->release();
    std::lock_guard lock(g_runtime_mu);
    g_runtime = nullptr;
    throw;
  }
  rt.run();
  {
    std::lock_guard lock(g_runtime_mu);
    g_runtime = nullptr;
  }
  // main finished before the runtime stopped; run() holds the reference
  // that start_fiber() took for a joinable fiber (as a handle would).
  std::exception_ptr e = std::move(main->exception_);
  main->release();
  if (e) std::rethrow_exception(e);
}

}  // namespace spindle::detail
