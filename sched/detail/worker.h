// A worker: one OS thread with its own run queue and its own libev loop.
// Internal to sched/; design notes in docs/sched.md and worker.cpp.
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
#include "sched/scheduler.h"

struct ev_loop;
struct ev_async;

namespace spindle::detail {

class runtime;

// An intrusive FIFO of runnable fibers, linked through control_block::next_.
// Owner thread only.
class run_queue {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  void push_back(control_block* cb) noexcept {
    cb->next_ = nullptr;
    if (tail_ != nullptr) {
      tail_->next_ = cb;
    } else {
      head_ = cb;
    }
    tail_ = cb;
  }
  // Appends a whole chain, keeping its order.
  void splice_back(control_block* first, control_block* last) noexcept {
    if (first == nullptr) return;
    if (tail_ != nullptr) {
      tail_->next_ = first;
    } else {
      head_ = first;
    }
    tail_ = last;
  }
  control_block* pop_front() noexcept {
    control_block* cb = head_;
    if (cb != nullptr) {
      head_ = cb->next_;
      if (head_ == nullptr) tail_ = nullptr;
      cb->next_ = nullptr;
    }
    return cb;
  }

 private:
  control_block* head_ = nullptr;
  control_block* tail_ = nullptr;
};

// What the context that switches away asks the context it switches to to
// do with it, once the switch is complete (see worker::after_switch).
enum class switch_action : std::uint8_t {
  // Just save its continuation (the worker's own loop context).
  save,
  // Save it and append it to the run queue.
  yield,
  // Save it and publish it as parked (or runnable if already notified).
  park,
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
  // Suspends the current fiber, which prepare_park() made `parking`.
  void park() noexcept;
  bool park_until(std::chrono::steady_clock::time_point deadline) noexcept;

  // ---- Making a fiber runnable ----
  // On this worker's thread.
  void schedule_local(control_block* cb) noexcept { run_queue_.push_back(cb); }
  // From any other thread: the inbox, and a wakeup if the worker may sleep.
  void schedule_remote(control_block* cb) noexcept;
  // Wakes the loop if it sleeps (used to stop).
  void wake() noexcept;

  // The first context a new fiber runs (see worker.cpp).
  static void fiber_main(control_block* cb) noexcept;

  runtime& rt() const noexcept { return rt_; }
  unsigned index() const noexcept { return index_; }
  struct ev_loop* ev() const noexcept { return loop_; }

  // Entry points used by the first and last switches of a fiber.
  void after_switch(void* from_ctx) noexcept;
  // Prepares the last switch of the running fiber, which has finished;
  // returns the context to jump to (passing it as the jump's data, which a
  // fiber's first entry needs).
  control_block* finish_current() noexcept;
  // The sanitizer annotations of that last switch; the caller must jump
  // right after, in the same function (see fiber/detail/sanitizer.h).
  SPINDLE_ALWAYS_INLINE void annotate_last_switch(control_block* next) noexcept {
    const bool to_loop = next == loop_cb_;
    // nullptr: the fiber's ASan fake stack dies with it.
    asan_start_switch(nullptr, to_loop ? next->asan_stack_bottom_ : next->stack_.limit(),
                      to_loop ? next->asan_stack_size_ : next->stack_.size());
    tsan_switch_to(next->tsan_fiber_);
  }

 private:
  inline void switch_to(control_block* from, control_block* to, switch_action action) noexcept;
  inline void after_switch_inline(void* from_ctx) noexcept;
  // The next fiber to run from a fiber that suspends; nullptr when the
  // worker's loop should run instead (nothing runnable, or a poll is due).
  inline control_block* pick_next() noexcept;
  bool drain_inbox() noexcept;
  void poll_events(bool block) noexcept;

  // ---- Hot: touched by every switch; kept together in one cache line ----
  // The context now running on this worker (a fiber, or loop_cb_).
  control_block* current_ = nullptr;
  // Set by the context that switches away, read by the one switched to.
  control_block* pending_from_ = nullptr;
  // The worker thread's own stack, as a context to switch back to.
  control_block* loop_cb_;
  // This thread's __cxa_eh_globals (see swap_exception_state).
  void* eh_globals_ = nullptr;
  run_queue run_queue_;  // owner only
  switch_action pending_action_ = switch_action::save;
  bool poll_due_ = false;
  // Fibers made runnable by other threads (below); a hint, read relaxed.
  std::atomic<bool> inbox_nonempty_{false};
  // Fairness: fibers that hand the worker to each other directly never
  // pass through the loop, so every poll_check_interval switches the worker
  // checks the clock and polls libev if max_poll_interval has passed.
  std::uint32_t switches_since_check_ = 0;
  std::chrono::steady_clock::time_point last_poll_;

  // ---- Cold ----
  runtime& rt_;
  const unsigned index_;
  struct ev_loop* loop_ = nullptr;
  std::unique_ptr<ev_async> async_;

  // Fibers made runnable by other threads. inbox_nonempty_ lets the owner
  // skip the lock when there is nothing; sleeping_ lets senders skip the
  // ev_async_send when the owner is not blocked in its loop.
  alignas(64) std::mutex inbox_mu_;
  control_block* inbox_head_ = nullptr;  // guarded by inbox_mu_
  control_block* inbox_tail_ = nullptr;  // guarded by inbox_mu_
  std::atomic<bool> sleeping_{false};
};

// The runtime: its options, its workers, and the count of live fibers.
class runtime {
 public:
  explicit runtime(const options& opts);
  ~runtime();

  const options& opts() const noexcept { return opts_; }
  worker& worker_at(unsigned i) noexcept { return *workers_[i]; }
  unsigned worker_count() const noexcept { return static_cast<unsigned>(workers_.size()); }

  void fiber_started() noexcept { live_.fetch_add(1, std::memory_order_relaxed); }
  // Stops the runtime when the last fiber finishes.
  void fiber_finished() noexcept;
  bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }

  // Runs worker 0 on the calling thread and the others on new threads,
  // until every fiber has finished.
  void run() noexcept;

 private:
  options opts_;
  std::vector<std::unique_ptr<worker>> workers_;
  std::atomic<std::size_t> live_{0};
  std::atomic<bool> stopping_{false};
};

// The worker of the calling thread, or nullptr. Not inlined, so that a
// fiber that moved to another thread across a switch re-reads it (a
// compiler may otherwise keep the address of a thread_local across a call).
worker* this_worker() noexcept;

}  // namespace spindle::detail
