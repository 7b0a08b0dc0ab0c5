// The control block: everything the runtime knows about one fiber.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <stop_token>
#include <string>
#include <vector>

#include "fiber/detail/stack.h"

namespace spindle::detail {

class worker;
class control_block;

// A fiber's scheduling state. Every transition is an atomic store or CAS on
// control_block::state_; the arrows below are the only ones allowed, and the
// thread that performs a transition into `runnable` is the only one that
// may put the fiber in a run queue. That makes a lost wakeup (nobody
// enqueues) and a double resume (two enqueue) impossible by construction.
//
//   runnable --(a worker pops and switches to it)--> running
//   running  --(yield: after the switch out)--> runnable
//   running  --(prepare_park)--> parking
//   parking  --(cancel_park)--> running
//   parking  --(unpark, any thread)--> notified
//   parking  --(after the switch out)--> parked
//   notified --(after the switch out)--> runnable (enqueued by the switcher)
//   notified --(cancel_park)--> running
//   parked   --(unpark, any thread)--> runnable (enqueued by the unparker)
//   running  --(park_commit: after the switch out)--> parked
//   running  --(its function returned)--> finished
enum class fiber_state : std::uint32_t {
  // In a run queue (or being put in one). ctx_ holds its continuation.
  runnable,
  // Executing on a worker thread.
  running,
  // Still running, but registered with whatever will wake it: from here an
  // unpark() may come at any moment, even before it has switched out.
  parking,
  // An unpark() arrived while it was parking; the worker switching it out
  // makes it runnable instead of parked.
  notified,
  // Switched out, continuation saved, waiting for exactly one unpark().
  parked,
  // Its function returned; the stack is gone. Terminal.
  finished,
};

// A wait that holds a watcher in a worker's libev loop (today the ev_io
// of a wait on a signal's pipe: sched/detail/fd_event.h; deadlines are in
// timer heaps, sockets in the netpoll). It lives on the waiting fiber's
// stack and is registered in control_block::loop_wait_ while the fiber
// parks. libev loops are not thread-safe, so the watcher must be stopped
// on the worker that started it, before the fiber can run anywhere else:
// the thread that makes such a fiber runnable routes it through that
// worker, which calls cancel().
struct loop_wait {
  void (*cancel)(loop_wait* self) noexcept;
};

// What a parked fiber waits on, for the fiber dump, the deadlock check and
// the statistics (sched/debug.h). Each wait records its reason just
// before it parks (sched/park.h's note_wait()). The first group is
// Spindle's own synchronization: nothing but another fiber (or a plain
// thread) can end such a wait; the deadlock check counts on that.
enum class wait_reason : std::uint8_t {
  none,  // not parked, or parked by a wait that records no reason
  // ---- Synchronization (only another fiber or thread ends the wait) ----
  mutex,
  shared_mutex,
  condition_variable,
  semaphore,
  latch,
  barrier,
  once,
  future,
  wait_group,
  channel_send,
  channel_recv,
  select,
  join,
  // ---- Outside events (a timer, the kernel, the blocking pool) ----
  sleep,
  fd_read,
  fd_write,
  blocking_call,
  blocking_queue,
  signal,
  fd_close,
  count_,
};

// Whether a fiber parked for `r` can only be woken by another fiber or
// thread (true) or also by a timer, the kernel or the blocking pool.
constexpr bool is_sync_wait(wait_reason r) noexcept {
  return r >= wait_reason::mutex && r <= wait_reason::join;
}

// The words the dump uses for a reason ("mutex", "channel recv", ...).
const char* wait_reason_name(wait_reason r) noexcept;

// One fiber-local value: the object and how to destroy it.
struct fls_slot {
  void* value = nullptr;
  void (*destroy)(void*) = nullptr;
};

// The control block of a fiber. It lives together with the fiber's callable
// (fiber_record in fiber/detail/fiber_record.h) at the top of the fiber's
// own stack: spawning allocates nothing but a (pooled) stack, and a parked
// fiber's bookkeeping shares the page its stack already uses. Reference
// counted: one reference for the running fiber, one for its joinable
// handle; the stack goes back to the pool with the last one, so a finished
// fiber that nobody joined yet keeps its stack, as a pthread does.
class control_block {
 public:
  control_block() noexcept = default;
  control_block(const control_block&) = delete;
  control_block& operator=(const control_block&) = delete;

  // run() calls the fiber's function and destroys it (and its arguments)
  // before returning, so that their destructors run on the fiber. An
  // exception is caught and kept in exception_.
  virtual void run() noexcept {}

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  // Before the fiber is published: a plain store instead of an add.
  void set_refs_unpublished(int n) noexcept { refs_.store(n, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy();
  }
  // For for_each_fiber() (fiber/detail/inspect.h) only.
  std::atomic<int>& refs_for_inspection() noexcept { return refs_; }
  // release() in two steps, for an inspector that holds a lock the
  // destruction may take: drop_ref() is true when it dropped the last
  // reference, and then destroy_dropped() must be called, after the lock.
  bool drop_ref() noexcept { return refs_.fetch_sub(1, std::memory_order_acq_rel) == 1; }
  void destroy_dropped() noexcept { destroy(); }

  // Runs and frees the fiber-local values, repeating while destructors
  // create new ones (at most a few rounds, as POSIX does for thread keys).
  void destroy_fiber_locals() noexcept;

  // ---- Scheduling: the fields a switch touches, in one cache line ----
  // (after the vtable pointer).
  // The run-queue link; owned by whichever queue holds the fiber.
  control_block* next_ = nullptr;
  // The saved context (a detail::context_t) while the fiber is not
  // running. Written only by the worker that switches the fiber out,
  // before it publishes parked or runnable (release); read by the worker
  // that switches to it after taking it from a run queue.
  void* ctx_ = nullptr;
  // The worker the fiber runs on, or last ran on: wakes are sent there.
  // Written by the worker that switches to the fiber, before the switch.
  worker* worker_ = nullptr;
  // The C++ runtime's per-thread exception state, per fiber:
  // __cxa_eh_globals (Itanium C++ ABI), the stack of exceptions being
  // handled and the count of those in flight. Swapped at every switch so
  // that a fiber that switches inside a catch block (or during unwinding)
  // keeps its own std::current_exception() and std::uncaught_exceptions().
  void* eh_caught_ = nullptr;
  unsigned int eh_uncaught_ = 0;
  std::atomic<fiber_state> state_{fiber_state::runnable};
  // stack_.guard == guard_kind::canary, kept here for the switch path.
  bool check_canary_ = false;
  // True for a plain thread's stand-in (see sched/park.h): it blocks on a
  // condition variable instead of switching.
  bool is_thread_ = false;
  // Pinned to worker_ while non-zero (this_fiber::pin nests, as Go's
  // LockOSThread does; fiber_options::pinned): never stolen, always woken
  // on its worker. Written by the fiber itself while it runs; read by
  // wakers after they won its park (ordered by that CAS).
  std::uint16_t pinned_ = 0;
  // The libev wait the fiber is parked in, if any (see loop_wait). Set by
  // the fiber before it parks; cleared on worker_'s thread.
  loop_wait* loop_wait_ = nullptr;

  // ---- Identity (immutable after spawn) ----
  std::uint64_t id_ = 0;
  std::string name_;
  stack stack_;

  // ---- Join and detach ----
  // nullptr: nobody waits yet; a control_block*: that fiber waits in
  // join(); joiner_detached; joiner_finished. The finishing fiber and the
  // joiner (or detacher) each exchange it once: whoever comes second sees
  // the other's mark, so exactly one of them completes the hand-over.
  std::atomic<control_block*> joiner_{nullptr};
  std::exception_ptr exception_;  // set before joiner_ becomes finished
  // fiber_options::terminate_on_exception (immutable after spawn).
  bool terminate_on_exception_ = false;

  // ---- Diagnostics: what it waits on, where it came from ----
  // Written by the fiber as it parks (note_wait() in sched/park.h), read
  // by the dump from any thread: atomics, relaxed. wait_seq_ changes at
  // every park, so that a reader can tell that a fiber it saw parked
  // stayed parked (and its stack unchanged) while it looked.
  std::atomic<std::uint32_t> wait_seq_{0};
  std::atomic<wait_reason> wait_reason_{wait_reason::none};
  // A reason set by an outer wait (a future over its condition variable):
  // inner waits keep it instead of their own. The fiber's own field.
  wait_reason outer_reason_ = wait_reason::none;
  const void* outer_object_ = nullptr;
  std::atomic<const void*> wait_object_{nullptr};
  // A number that goes with the reason: a descriptor, a fiber id, a count.
  std::atomic<std::int64_t> wait_arg_{0};
  // The wait's deadline and its start, as steady_clock counts (0: none).
  // The start is the worker's last clock reading (within ~100 us of the
  // truth while it switches; see note_wait()).
  std::atomic<std::int64_t> wait_deadline_{0};
  std::atomic<std::int64_t> wait_since_{0};
  // Where it was spawned: the return address of the spawning call.
  const void* spawn_site_ = nullptr;
  // The stop token the fiber's waits observe (fiber_options::stop_token,
  // spindle::jthread), owned; nullptr when it has none. A pointer, not a
  // std::stop_token, so that a fiber without one pays nothing to build and
  // destroy it (measured with callgrind: a stop_token member cost spawn +
  // join 19 instructions in a destructor that was no longer inlined).
  std::stop_token* stop_ = nullptr;

  // ---- Fiber-local storage; touched only by the fiber itself ----
  std::vector<fls_slot> fls_;

  // ---- Sanitizer bookkeeping ----
  void* asan_fake_stack_ = nullptr;
  const void* asan_stack_bottom_ = nullptr;  // for the worker's own stack
  std::size_t asan_stack_size_ = 0;
  void* tsan_fiber_ = nullptr;

 protected:
  virtual ~control_block();
  // destroy() ends the control block's life when the last reference goes:
  // runs the destructor, then gives the stack it lives on back to the
  // pool. Control blocks that do not live on a fiber stack override it.
  virtual void destroy() noexcept;

 private:
  std::atomic<int> refs_{1};
};

// Markers stored in control_block::joiner_ besides a waiting fiber.
inline control_block* const joiner_detached = reinterpret_cast<control_block*>(1);
inline control_block* const joiner_finished = reinterpret_cast<control_block*>(2);

// The fiber running on this thread, or nullptr on a thread that is not
// running a fiber (a plain thread, or a worker in its scheduling loop).
// initial-exec so that the stack-overflow signal handler may read it.
// constinit: no dynamic initialization, so no TLS wrapper call per access.
extern thread_local constinit control_block* tls_current_fiber
    __attribute__((tls_model("initial-exec")));

// Where a control block of `size` bytes goes at the top of stack `s`,
// below the stack's header.
void* record_address(const stack& s, std::size_t size, std::size_t align) noexcept;

// The header at the very top of every fiber stack: which fiber, if any,
// lives on it. Stacks are never unmapped (fiber/detail/stack.h), so any
// thread may read the header of any stack ever mapped; this is how the
// dump, the deadlock check and gdb find every fiber without a list that
// spawn and exit would have to lock (Go's allgs works the same way).
struct stack_header {
  // The fiber, from its start until it finishes (then nullptr again).
  std::atomic<control_block*> live{nullptr};
};
inline constexpr std::size_t stack_header_size = 64;
inline stack_header* header_of(const stack& s) noexcept {
  return reinterpret_cast<stack_header*>(s.top() - stack_header_size);
}

// publish_live() shows a fiber that is about to start to inspectors;
// retire_live() hides it again as it finishes (before the atomic
// exchange on joiner_ that ends a fiber, which orders the two for an
// inspector; see inspect.cpp).
void publish_live(control_block* cb) noexcept;
inline void retire_live(control_block* cb) noexcept {
  header_of(cb->stack_)->live.store(nullptr, std::memory_order_relaxed);
}

// A fresh fiber id; ids are never reused.
std::uint64_t next_fiber_id() noexcept;

// A plain thread's id, from the same sequence as fibers' (0 until the
// thread first asks).
extern thread_local constinit std::uint64_t tls_thread_id __attribute__((tls_model("initial-exec")));
std::uint64_t assign_thread_id() noexcept;

// current_id() is the calling fiber's id, or the calling plain thread's:
// what this_fiber::get_id() returns, cheap enough for a mutex's owner
// check. Not inline: a caller that parks between two calls (a condition
// variable's wait: unlock, park, lock) may resume on another thread, and an
// inlined thread_local read could reuse the old thread's address (found by
// TSan: the re-lock after the wait read the previous thread's current
// fiber).
std::uint64_t current_id() noexcept;

// The fiber-local slots of the calling context: the running fiber's, or
// the calling plain thread's own (destroyed when the thread exits).
std::vector<fls_slot>& current_fls_slots();

// A fresh fiber-local index; indices are never reused.
std::size_t next_fls_index() noexcept;

// Writes "spindle: <what> in fiber '<name>' (id N, stack size S bytes)"
// and more to stderr without allocating; safe in a signal handler.
void write_fiber_diagnostic(const char* what, const control_block* cb,
                            const char* detail) noexcept;

}  // namespace spindle::detail
