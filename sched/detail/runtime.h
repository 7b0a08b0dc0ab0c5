// class runtime: one Spindle runtime, as spindle::run() or the default
// runtime starts it: its options, its workers, the count of live fibers,
// the shared overflow queue, and the bookkeeping of idle workers. Its
// workers are in worker.h; what it does is in runtime.cpp (start, stop,
// fork) and worker.cpp (idling).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fiber/lock_holder.h"
#include "sched/detail/blocking_pool.h"
#include "sched/detail/monitor.h"
#include "sched/detail/run_queue.h"
#include "sched/detail/timer_heap.h"
#include "sched/detail/worker.h"
#include "sched/scheduler.h"

namespace spindle::detail {

// The runtime: its options, its workers, the count of live fibers, the
// shared overflow queue, and the bookkeeping of idle workers.
class runtime {
 public:
  // A runtime started by spindle::run() stops when its last fiber ends; the
  // default runtime (started by the first fiber spawned from a plain thread
  // when no run() is active) runs its workers on background threads until
  // the process exits.
  runtime(const runtime_options& opts, bool persistent);
  ~runtime();

  const runtime_options& opts() const noexcept { return opts_; }
  // The workers the runtime was started with (runtime_options::workers):
  // what fiber_options::worker indexes and the statistics list.
  unsigned worker_count() const noexcept { return base_workers_; }
  // Every worker slot made so far: the base workers, then spares (running
  // or retired; a slot is never freed while the runtime lives, since
  // parked fibers' deadlines may still sit in its timer heap). Slots are
  // only ever added; worker_at(i) is valid for i < slot_count(). Any
  // thread.
  unsigned slot_count() const noexcept { return slot_count_.load(std::memory_order_acquire); }
  worker& worker_at(unsigned i) noexcept { return *slots_[i]; }
  bool persistent() const noexcept { return persistent_; }
  blocking_pool& blocking() noexcept { return *blocking_; }

  // Counts a fiber spawned on worker w's thread (by a fiber), or by run()
  // before the workers start, on what becomes worker 0's thread.
  void fiber_started_on_worker(worker& w) noexcept;
  // Counts a fiber spawned by a plain thread, under g_runtime_mu.
  void fiber_started_by_plain_thread() noexcept { live_.fetch_add(1, std::memory_order_relaxed); }
  // Stops the runtime when the last fiber finishes (unless persistent). On
  // the thread of worker w, which ran the fiber.
  void fiber_finished(worker& w) noexcept;
  bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }

  // Runs worker 0 on the calling thread and the others on new threads,
  // until every fiber has finished.
  void run() noexcept;
  // Starts every worker on a new thread, for good (the default runtime).
  void start_background();

  // A worker for a fiber spawned from a plain thread (round robin).
  worker& pick_worker_for_plain_thread() noexcept;

  // ---- Shared overflow queue (Go's global runq) ----
  void push_shared(control_block* first, control_block* last, std::uint32_t n) noexcept;
  // Takes up to `max` from the front, as a chain (first returned, *last
  // its end); nullptr when empty.
  control_block* pop_shared(std::uint32_t max, control_block** last) noexcept;
  bool shared_nonempty() const noexcept {
    return shared_count_.load(std::memory_order_relaxed) != 0;
  }
  std::uint32_t shared_count() const noexcept {
    return shared_count_.load(std::memory_order_relaxed);
  }

  // ---- Idle workers ----
  // Called after making work stealable: wakes one idle worker if there is
  // one and no worker is already out looking for work. Relaxed: a wake
  // missed in a race only delays parallelism; the work is in its worker's
  // own queue, which that worker always drains.
  void wake_idle_worker() noexcept {
    if (idle_count_.load(std::memory_order_relaxed) != 0 &&
        searching_.load(std::memory_order_relaxed) == 0) {
      wake_one_idle_worker();
    }
  }
  void wake_one_idle_worker() noexcept;
  void enter_idle(worker* w) noexcept;
  // Whether every worker is idle (then idle workers need no timeout).
  bool all_idle() const noexcept {
    return idle_count_.load(std::memory_order_acquire) >=
           static_cast<int>(base_workers_) + active_spares_.load(std::memory_order_acquire);
  }
  int idle_count() const noexcept { return idle_count_.load(std::memory_order_relaxed); }
  void leave_idle(worker* w) noexcept;
  std::atomic<int> searching_{0};
  // A timer due at `when` became the earliest of its worker's heap: a
  // worker asleep until later (it computed its timeout before the timer
  // came, perhaps with every worker idle and no cap) is woken to take it
  // into account; otherwise a worker that starts computing right after
  // would hold the deadline hostage. Any thread.
  void timer_added(timer_heap::rep when) noexcept;

  // ---- Spare workers (forward progress; docs/sched.md, "Held workers") ----
  // Started by the monitor when a held worker's work waits; see monitor.h.
  // Spares running now, and workers the monitor last saw held.
  unsigned max_spares() const noexcept { return opts_.max_spare_workers; }
  int active_spares() const noexcept { return active_spares_.load(std::memory_order_acquire); }
  int held_workers() const noexcept { return held_.load(std::memory_order_relaxed); }
  void set_held_workers(int n) noexcept { held_.store(n, std::memory_order_relaxed); }
  // Starts a spare on a new thread (a retired slot's, or a new slot);
  // false at max_spare_workers, or when a thread or slot cannot be had.
  // The monitor's thread only.
  bool start_spare() noexcept;
  // Whether an idle spare should retire now: holds have ended (fewer held
  // workers than spares), or another worker idles too. Counts it out when
  // so. On that spare's thread.
  bool spare_may_retire() noexcept;
  // Joins spares that have retired (and, with `all`, waits for every spare
  // to retire first: the runtime has stopped). The monitor's thread, or
  // the runtime's end.
  void join_spares(bool all) noexcept;
  std::uint64_t spares_started() const noexcept {
    return spares_started_.load(std::memory_order_relaxed);
  }

  // ---- Deadlock detection (deadlock.cpp; docs/operability.md) ----
  enum class deadlock_verdict : std::uint8_t {
    none,   // some fiber can still be woken
    maybe,  // every fiber sleeps, but something outside might wake one
            // (a thread of the process that is not the runtime's own, a
            // blocking call still running): look again later
    found,  // nothing can ever wake any fiber
  };
  // check_deadlock() is called by a worker about to sleep with every
  // worker idle and no timer armed. On `found` it has acted on it: with
  // deadlock_action::exit the process is gone; with throw_error the
  // runtime is stopping and run() throws deadlock_error(report).
  deadlock_verdict check_deadlock() noexcept;
  bool deadlocked() const noexcept { return deadlocked_.load(std::memory_order_acquire); }
  // The report (message and dump) for run() to throw; after run().
  const std::string& deadlock_report() const noexcept { return deadlock_report_; }
  // In run(), after a deadlock: hides the abandoned fibers from inspectors
  // (and, under ASan, shows their stacks to the leak checker as roots).
  void abandon_fibers() noexcept;

 private:
  runtime_options opts_;
  const bool persistent_;
  const unsigned base_workers_;
  // Worker slots: base_workers_ base workers, then up to max_spare_workers
  // spares, made on demand by the monitor (the only writer of slots_ and
  // slot_count_; release on the count publishes the slot).
  const unsigned slot_capacity_;
  std::unique_ptr<std::unique_ptr<worker>[]> slots_;
  std::atomic<unsigned> slot_count_{0};
  // Spare threads, by slot (the monitor's thread; the end of run()).
  std::unique_ptr<std::thread[]> spare_threads_;
  std::atomic<int> active_spares_{0};
  std::atomic<int> held_{0};
  std::atomic<std::uint64_t> spares_started_{0};
  std::unique_ptr<blocking_pool> blocking_;
  // Fibers not yet finished: live_ + worker_live_. A worker alone in its
  // runtime (worker::alone(): one worker, no spare running) counts the
  // fibers it starts and finishes in worker_live_, which only its thread
  // writes (plain loads and stores), so spawn and finish cost no atomic
  // read-modify-write (two of them measured 15-20 ns of a 140 ns
  // spawn+join on the project's VM); everyone else counts in live_.
  // worker_live_ goes negative when fibers counted in live_ finish there.
  std::atomic<std::int64_t> live_{0};
  std::atomic<std::int64_t> worker_live_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> deadlocked_{false};
  std::atomic<bool> deadlock_checking_{false};
  std::string deadlock_report_;
  // Started with the workers (run(), start_background()); stopped once
  // they have stopped.
  std::unique_ptr<monitor> monitor_;
 public:
  monitor* get_monitor() noexcept { return monitor_.get(); }
 private:
  std::atomic<unsigned> next_plain_{0};
  // Threads outside the runtime now in worker::schedule_remote().
  std::atomic<int> outside_callers_{0};
  friend class worker;

  os_mutex shared_mu_;
  fifo shared_ SPINDLE_GUARDED_BY(shared_mu_);
  std::atomic<std::uint32_t> shared_count_{0};

  os_mutex idle_mu_;
  std::vector<worker*> idle_ SPINDLE_GUARDED_BY(idle_mu_);
  std::atomic<int> idle_count_{0};
};

// Threads that Spindle runs besides workers and blocking-pool threads (the
// dump's signal thread, the runtimes' monitors): each counts itself here
// while it lives, so that the deadlock check can tell them from the
// program's own threads.
extern std::atomic<int> g_service_threads;

// with_runtimes() calls fn(rt, arg) for each runtime alive (run()'s, then
// the default one), holding the lock that keeps them alive and that plain
// threads take to spawn: for diagnostics (the dump, the statistics). fn
// must not spawn, start a runtime, or wait for a fiber. Any thread.
void with_runtimes(void (*fn)(runtime& rt, void* arg), void* arg);

}  // namespace spindle::detail
