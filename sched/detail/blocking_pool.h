// The blocking pool behind spindle::blocking(): threads, separate from the
// workers, that run calls which would block a worker (regular files, DNS,
// third-party drivers) while the calling fiber parks.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>

#include "fiber/detail/control_block.h"

namespace spindle {
struct runtime_options;
struct blocking_pool_stats;
}  // namespace spindle

namespace spindle::detail {

// A tiny test-and-test-and-set lock for the few instructions a call's
// state changes take; never held across anything that can block.
class call_lock {
 public:
  void lock() noexcept;
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

// One call handed to the pool. The typed part (the callable, its result)
// lives in a derived class (sched/blocking.h); the pool sees only this.
//
// States (guarded by `lock`; waiting_room and queued also by the pool's
// mutex, as they mean "linked in one of its lists"):
//
//   waiting_room -> queued -> running -> done    it ran; the result is set
//   queued -> expired        its deadline passed in the queue: never started
//   running -> abandoned     the caller's deadline passed (or a stop request
//                            came) while it ran: the pool finishes it, then
//                            destroys it (only calls with `destroy`, which
//                            own their callable; a call that borrows the
//                            caller's frame is waited for instead)
//   waiting_room or queued -> cancelled
//                            the caller's deadline passed, or a stop
//                            request came; the caller unlinked it
//
// The pool unparks the caller while holding `lock` (done, expired); a
// caller whose park timed out takes `lock` before it decides, so no
// unpark of this call can arrive after the caller has moved on.
struct blocking_call {
  enum class state : unsigned char { waiting_room, queued, running, done, expired, abandoned, cancelled };

  // Runs the callable and stores its result or exception. Pool thread.
  void (*invoke)(blocking_call*) noexcept = nullptr;
  // Destroys an abandoned call (only calls with a deadline live on the
  // heap and can be abandoned).
  void (*destroy)(blocking_call*) noexcept = nullptr;

  control_block* waiter = nullptr;
  bool has_deadline = false;
  std::chrono::steady_clock::time_point deadline{};

  call_lock lock;
  state st = state::waiting_room;
  blocking_call* prev = nullptr;  // links in the pool's lists
  blocking_call* next = nullptr;
};

// What happened to a call submitted with run_on_pool().
enum class call_result {
  done,       // it ran; its result is in the call, which the caller owns
  timed_out,  // the deadline passed first; the caller owns the call (never ran)
  abandoned,  // the deadline passed while it ran: the pool owns the call now
  // A stop request on the calling fiber's token (a cancellable fiber, see
  // fiber/this_fiber.h) ended the wait:
  canceled,            // before the call started; the caller owns it (never ran)
  canceled_abandoned,  // while it ran: the pool owns the call now, as abandoned
};

class blocking_pool {
 public:
  explicit blocking_pool(const runtime_options& opts);
  ~blocking_pool();
  blocking_pool(const blocking_pool&) = delete;
  blocking_pool& operator=(const blocking_pool&) = delete;

  // Runs `call` on a pool thread and parks the calling fiber (the running
  // one) until it has run, or until its deadline. For a cancellable fiber
  // a stop request ends the wait too (a cancellation point): a call not
  // started yet never starts; a running one is abandoned if it owns its
  // callable (`destroy` set), and otherwise (it borrows the caller's
  // frame) waited for, then reported done. Worker's fiber only.
  call_result run(blocking_call& call) noexcept;

  void stats(blocking_pool_stats& out) const noexcept;

 struct state;  // in blocking_pool.cpp

 private:
  std::shared_ptr<state> s_;  // shared with the pool's threads
};

// The pool of the runtime the calling fiber runs in; nullptr on a plain
// thread.
blocking_pool* current_blocking_pool() noexcept;

}  // namespace spindle::detail
