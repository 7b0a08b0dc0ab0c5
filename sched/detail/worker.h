// A worker: one OS thread with its own run queues and its own libev loop;
// and the runtime that owns the workers. Internal to sched/; design notes
// in docs/sched.md and at the top of worker.cpp.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "fiber/detail/context.h"
#include "fiber/detail/control_block.h"
#include "fiber/detail/sanitizer.h"
#include "fiber/lock_holder.h"
#include "sched/detail/blocking_pool.h"
#include "sched/detail/run_queue.h"
#include "sched/detail/timer_heap.h"
#include "sched/scheduler.h"

struct ev_loop;
struct ev_async;
struct ev_io;
struct ev_timer;

namespace spindle::detail {

class runtime;

// What the context that switches away asks the context it switches to to
// do with it, once the switch is complete (see worker::after_switch).
enum class switch_action : std::uint8_t {
  // Just save its context (the worker's own loop context).
  save,
  // Save it and make it runnable again (yield).
  yield,
  // Save it and publish it as parked (or runnable if already notified).
  park,
  // Save it, publish it as parked with a plain store, and run the commit
  // the parking fiber left (which lets its wakers find it): see
  // park_commit() in sched/park.h.
  park_commit,
  // It finished: release its control block.
  finish,
};

class worker {
 public:
  worker(runtime& rt, unsigned index);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  // loop() runs fibers until the runtime stops. On the worker's thread.
  void loop() noexcept;

  // ---- On this worker's thread, from its running fiber ----
  control_block* current() const noexcept { return current_; }
  void yield() noexcept;
  // The first half of a yield whose switch the caller makes itself, inline
  // (this_fiber::yield()): returns the fiber (or loop context) to switch
  // to, with everything before the jump done, or nullptr to carry on.
  inline control_block* yield_begin() noexcept;
  // Suspends the current fiber, which prepare_park() made `parking`.
  void park() noexcept;
  bool park_until(std::chrono::steady_clock::time_point deadline,
                  bool cancellable = false) noexcept;
  // park() for a fiber still `running`, running commit(arg) once it has
  // switched out (sched/park.h's park_commit()); with a deadline, false
  // when that came first.
  void park_commit(void (*commit)(void*), void* arg) noexcept;
  // The first half of a park_commit() whose switch the caller makes
  // itself, inline (as yield_begin()): returns the context to switch to.
  inline control_block* park_commit_begin(void (*commit)(void*), void* arg) noexcept;
  bool park_commit_until(std::chrono::steady_clock::time_point deadline, void (*commit)(void*),
                         void* arg, bool cancellable = false) noexcept;
  // Wakes the fibers whose sockets the netpoll reports ready, as many as
  // the ring has room for; returns how many. From the worker's loop (a
  // libev callback, or poll_network_directly()).
  std::uint32_t poll_network() noexcept;

  // ---- Making a fiber runnable (by whoever won its transition) ----
  // enqueue() puts a runnable fiber in this worker's queues. With `next`
  // (a fiber just spawned or woken here) it goes in the runnext slot, to
  // run when the current fiber blocks, and is not stolen meanwhile: a
  // fiber that wakes another and waits for its answer keeps the pair on
  // one worker, and spawn+join stays on one worker (Go's runnext). On this
  // worker's thread; routing is make_runnable()'s job.
  void enqueue(control_block* cb, bool next = false) noexcept;
  // enqueue_spawned() enqueues a fiber just spawned on this worker's
  // thread (as runnext). A pinned one goes behind the pinned fibers other
  // threads handed this worker before (still in the inbox), so that pinned
  // spawns run in the order they were made, wherever the spawner ran. On
  // this worker's thread.
  void enqueue_spawned(control_block* cb) noexcept {
    if (cb->pinned_ != 0 && inbox_nonempty_.load(std::memory_order_relaxed)) drain_inbox();
    enqueue(cb, /*next=*/true);
  }
  // schedule_remote() hands a fiber to this worker from another thread:
  // the inbox, and a wakeup if the worker may sleep; or, if the worker is
  // busy and the fiber may run anywhere, a wakeup for an idle worker, which
  // steals it from the inbox (a fiber woken from outside must not wait
  // behind one that computes while another worker idles). Any thread.
  void schedule_remote(control_block* cb) noexcept;
  // Wakes the loop if it sleeps. Any thread.
  void wake() noexcept;

  // In the child of a fork() made on this worker's thread: the libev loop
  // rebuilds its kernel state (its epoll is the parent's until then).
  void after_fork_in_child() noexcept;

  runtime& rt() const noexcept { return rt_; }
  unsigned index() const noexcept { return index_; }
  struct ev_loop* ev() const noexcept { return loop_; }

  // ---- A worker alone (see alone_) ----
  // enter_alone_region() opens a stretch of the owner's code that takes
  // from its own queues (or counts fibers) and returns whether it may do so
  // without atomic read-modify-writes; leave_alone_region() closes it. On
  // this worker's thread.
  SPINDLE_ALWAYS_INLINE bool enter_alone_region() noexcept {
    if (!may_be_alone_) return false;
    alone_use_.store(1, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    return alone_.load(std::memory_order_acquire);
  }
  SPINDLE_ALWAYS_INLINE void leave_alone_region() noexcept {
    if (!may_be_alone_) return;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    alone_use_.store(0, std::memory_order_release);
  }
  // share() ends alone_ before a spare may steal from this worker: once it
  // returns, the owner takes from its queues with atomics. unshare()
  // restores it once no spare runs. The monitor's thread.
  void share() noexcept;
  void unshare() noexcept;

  // ---- Spares (runtime::start_spare; docs/sched.md, "Held workers") ----
  bool spare() const noexcept { return spare_; }
  // A spare that left its loop for good (until reopen()). Any thread.
  bool retired() const noexcept { return retired_.load(std::memory_order_acquire); }
  // Readies a retired (or new) spare slot for a new thread; close_unused()
  // undoes it when that thread cannot start. The monitor's thread.
  void reopen() noexcept;
  void close_unused() noexcept { retired_.store(true, std::memory_order_release); }
  // Fibers pinned to this worker, and fibers waiting on a watcher in its
  // loop: a spare does not retire while it has either. Any thread.
  void pinned_here(int delta) noexcept { pinned_here_.fetch_add(delta, std::memory_order_relaxed); }
  void loop_wait_here(int delta) noexcept {
    loop_waits_here_.fetch_add(delta, std::memory_order_relaxed);
  }
  // Whether fibers wait in this worker's queues that another worker may
  // take (the monitor, about a held worker). Any thread; racy.
  bool has_stealable_work() const noexcept {
    return ring_.size() != 0 || has_runnext() || inbox_stealable_.load(std::memory_order_relaxed);
  }

  // Entry points of a fiber's first and last switches.
  void after_switch(void* from_ctx) noexcept;
  // Prepares the last switch of the running fiber, which has finished;
  // returns the context to jump to (passing it as the jump's data, which a
  // fiber's first entry needs).
  control_block* finish_current() noexcept;
  // The sanitizer annotations of that last switch; the caller must jump
  // right after, in the same function (see fiber/detail/sanitizer.h).
  SPINDLE_ALWAYS_INLINE void annotate_last_switch(control_block* next) noexcept {
    tsan_block_signals();  // until after_switch_inline
    const bool to_loop = next == loop_cb_;
    // nullptr: the fiber's ASan fake stack dies with it.
    asan_start_switch(nullptr, to_loop ? next->asan_stack_bottom_ : next->stack_.limit(),
                      to_loop ? next->asan_stack_size_ : next->stack_.size());
    tsan_switch_to(next->tsan_fiber_);
  }

  // Thieves take up to half of this worker's ring. Any thread.
  std::uint32_t steal_into(control_block** out, std::uint32_t max) noexcept {
    return ring_.grab(out, max);
  }
  // A thief takes the runnext fiber, if the worker has been stuck on one
  // fiber (its switch count unchanged since `seen_switches`). Any thread.
  control_block* steal_runnext(std::uint32_t seen_switches) noexcept {
    if (switches_.load(std::memory_order_relaxed) != seen_switches) return nullptr;
    if (runnext_.load(std::memory_order_relaxed) == nullptr) return nullptr;
    return runnext_.exchange(nullptr, std::memory_order_acq_rel);
  }
  // Thieves take up to `max` of the fibers other threads handed this
  // worker that may run anywhere (not pinned, no libev watcher). Any
  // thread.
  std::uint32_t steal_inbox(control_block** out, std::uint32_t max) noexcept;
  // The deadlines of fibers parked on this worker; any worker runs those
  // due (see timer_heap.h).
  timer_heap& timers() noexcept { return timers_; }
  std::uint32_t switch_count() const noexcept { return switches_.load(std::memory_order_relaxed); }

  // ---- Statistics (sched/debug.h's runtime_stats(); monitor.h) ----
  // Fibers taken from other workers, and time asleep in the loop. Written
  // by the owner, read by anyone.
  std::uint64_t steals() const noexcept { return steals_.load(std::memory_order_relaxed); }
  std::int64_t idle_nanoseconds() const noexcept {
    return idle_ns_.load(std::memory_order_relaxed);
  }
  // Whether the worker is asleep in its loop (so not running a fiber).
  bool asleep() const noexcept { return sleeping_.load(std::memory_order_relaxed); }
  // The context running now: a fiber, or the loop (loop_block()). A
  // racy read, for the monitor: the fiber may be gone by the time it is
  // looked at (see hold_fiber_at() in fiber/detail/inspect.h).
  const control_block* current_racy() const noexcept;
  const control_block* loop_block() const noexcept { return loop_cb_; }
  bool has_runnext() const noexcept { return runnext_.load(std::memory_order_relaxed) != nullptr; }

 private:
  friend class runtime;
  friend void yield_end(void* from_ctx) noexcept;
  friend void park_end(void* from_ctx) noexcept;

  inline void switch_to(control_block* from, control_block* to, switch_action action) noexcept;
  // switch_to() up to the jump.
  inline void prepare_switch(control_block* from, control_block* to,
                             switch_action action) noexcept;
  inline void after_switch_inline(void* from_ctx) noexcept;
  // The next fiber to run from a fiber that suspends; nullptr when the
  // worker's loop should run instead (nothing runnable, or a poll is due).
  inline control_block* pick_next() noexcept;
  inline control_block* pop_local() noexcept;
  inline void prefetch_next() noexcept;
  // poll_network() without going through libev, when descriptors are
  // registered; returns the next fiber to run, or nullptr.
  control_block* poll_network_directly() noexcept;
  // Takes runnext_ (nullptr if empty); an exchange unless `alone`.
  inline control_block* take_runnext(bool alone) noexcept;
  inline control_block* pop_local_in_region(bool alone) noexcept;
  // Runs the due timers of other workers that have not run them for a
  // while (held in a fiber, or retired spares); from a busy worker's poll.
  void run_overdue_timers() noexcept;
  // A spare with nothing to do: leaves for good if runtime::
  // spare_may_retire() agrees and nothing is homed here.
  bool try_retire() noexcept;
  // Appends to the ring, or to the overflow list when the ring is full (or
  // the list is not empty); wakes an idle worker when there is more than
  // this worker will run next.
  void push_ring(control_block* cb) noexcept;
  // Pops the oldest overflowed fiber and refills the ring from the list.
  control_block* pop_overflow() noexcept;
  void drain_inbox() noexcept;
  void poll_events(bool block) noexcept;
  // Sleeps in the loop until there may be work: no longer than the
  // earliest deadline of any worker's timers, nor than idle_poll_seconds
  // while other workers are busy.
  void sleep_idle() noexcept;
  // Makes runnable, here, the fibers whose deadlines in `heap` are due at
  // `now`; returns how many.
  std::uint32_t run_timers(timer_heap& heap, std::chrono::steady_clock::time_point now) noexcept;
  // Runs the due timers of other workers (one stuck in a fiber does not
  // run its own); returns the first fiber that made runnable, or nullptr.
  control_block* steal_timers() noexcept;
  // Takes a batch from the runtime's shared queue into the ring; returns
  // the first of it.
  control_block* take_shared() noexcept;
  // Looks for work elsewhere: the shared queue, then other workers' rings.
  control_block* find_work() noexcept;
  // find_work(), spinning for a while if few other workers are (see
  // spin_duration in worker.cpp).
  control_block* search() noexcept;
  // Takes another worker's runnext fiber if that worker has been stuck in
  // one fiber for a while (see stale_runnext_age in worker.cpp).
  control_block* steal_stale_runnext() noexcept;

  // ---- Hot: touched by every switch; kept together ----
  // The context now running on this worker (a fiber, or loop_cb_).
  control_block* current_ = nullptr;
  // Set by the context that switches away, read by the one switched to.
  control_block* pending_from_ = nullptr;
  // The worker thread's own stack, as a context to switch back to.
  control_block* loop_cb_;
  // This thread's __cxa_eh_globals (see swap_exception_state).
  void* eh_globals_ = nullptr;
  switch_action pending_action_ = switch_action::save;
  bool poll_due_ = false;
  // The runtime's only worker, while no spare runs: no thief can touch its
  // ring or runnext_, so the owner takes from them without atomic
  // read-modify-writes (and counts fibers in runtime::worker_live_). A
  // spare may come (a held worker, runtime::start_spare()); share() then
  // turns this off with an asymmetric Dekker handshake: the owner marks
  // each stretch that reads it in alone_use_ with plain stores, and share()
  // clears alone_, has every thread fence (membarrier(2)) and waits for
  // alone_use_ to be 0: from then on every stretch sees alone_ false.
  // may_be_alone_ is false where it can never be (more workers, or no
  // membarrier), and the stretches cost nothing there.
  const bool may_be_alone_;
  std::atomic<bool> alone_;
  std::atomic<std::uint32_t> alone_use_{0};
  // A hint that the inbox has fibers; read relaxed on the hot path.
  std::atomic<bool> inbox_nonempty_{false};
  // Fairness: fibers that hand the worker to each other directly never
  // pass through the loop, so every poll_check_interval switches the worker
  // checks the clock and polls libev if max_poll_interval has passed.
  std::uint32_t switches_since_check_ = 0;
  // Picks since start, for serving the pinned queue and the shared queue
  // fairly next to the ring.
  std::uint32_t picks_ = 0;
  std::uint32_t shared_countdown_ = 61;  // picks until the shared queue's turn
  // Consecutive picks of runnext_; capped so that two fibers waking each
  // other cannot starve the ring (Go bounds the same with its time slice).
  std::uint32_t runnext_streak_ = 0;
  // Cheap per-worker randomness for the order in which to visit victims.
  // Here, not with the cold fields: an idle worker's search rewrites it
  // constantly, and other workers read the cold line (rt_) at every wake
  // they route (make_runnable), so there it cost them a cache miss each.
  std::uint32_t rand_state_;
  // The fiber to run next (see enqueue()). Owner swaps it; a thief may
  // take it when the owner is stuck in one fiber for a long time.
  std::atomic<control_block*> runnext_{nullptr};
  // Switches so far; read by thieves to tell a worker stuck in one fiber.
  std::atomic<std::uint32_t> switches_{0};
  std::chrono::steady_clock::time_point last_poll_;
  // Pinned fibers (never stolen). Owner only.
  fifo pinned_;
  // Runnable fibers that did not fit in the ring, in order; they move to
  // the ring as it empties. (Go spills half the ring to its global queue
  // instead, which a busy worker serves only every 61st pick: measured
  // here, a burst of wakeups bigger than the ring then left the spilled
  // fibers behind every later wakeup, for 100 ms and more.) Owner only.
  fifo overflow_;
  // switch_action::park_commit's commit and its argument (after the
  // fields every switch touches, which keep the layout yield was tuned
  // with).
  void (*pending_commit_)(void*) = nullptr;
  void* pending_commit_arg_ = nullptr;
  // A park_commit_until()'s deadline, added to timers_ once the fiber is
  // parked, before its commit runs (a firer must find it parked).
  timer_node* pending_timer_ = nullptr;

  // ---- Cold ----
  runtime& rt_;
  const unsigned index_;
  const bool spare_;
  std::atomic<bool> retired_{false};
  std::atomic<int> pinned_here_{0};
  std::atomic<int> loop_waits_here_{0};
  struct ev_loop* loop_ = nullptr;
  std::unique_ptr<ev_async> async_;
  // Watches the netpoll's epoll fd (sched/detail/netpoll.h).
  std::unique_ptr<ev_io> netpoll_io_;
  // Bounds an idle sleep while other workers are busy (worker.cpp).
  std::unique_ptr<ev_timer> idle_timer_;
  // What this worker last saw of each other worker: its switch count and
  // since when, to tell a worker stuck in one fiber. Owner only.
  struct victim_view {
    std::uint32_t switches = 0;
    std::chrono::steady_clock::time_point since;
  };
  std::vector<victim_view> seen_;
  std::atomic<std::uint64_t> steals_{0};
  std::atomic<std::int64_t> idle_ns_{0};

  // The deadlines of fibers parked here (other workers run them too).
  alignas(64) timer_heap timers_;

  // Fibers made runnable by other threads: inbox_ those that may run
  // anywhere (thieves take from it), inbox_home_ those that must run here
  // (pinned, or holding a watcher in this worker's loop). inbox_nonempty_
  // lets the owner skip the lock when both are empty, inbox_stealable_
  // lets thieves skip it when inbox_ is; sleeping_ lets senders skip the
  // ev_async_send when the owner is not blocked in its loop.
  alignas(64) os_mutex inbox_mu_;
  fifo inbox_ SPINDLE_GUARDED_BY(inbox_mu_);
  fifo inbox_home_ SPINDLE_GUARDED_BY(inbox_mu_);
  std::atomic<bool> inbox_stealable_{false};
  std::atomic<bool> sleeping_{false};
  // While idle: when it will wake by itself (timer_heap::none: no
  // timeout); 0 while awake. For runtime::timer_added().
  std::atomic<timer_heap::rep> sleep_until_{0};

  // The ring, stolen from by other workers: last, on its own cache lines.
  run_ring ring_;
};

// The worker of the calling thread, or nullptr. Not inlined, so that a
// caller that switched fibers in between re-reads it (a compiler may keep
// the address of a thread_local across a call).
worker* this_worker() noexcept;

}  // namespace spindle::detail
