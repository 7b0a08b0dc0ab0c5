// The blocking pool (see blocking_pool.h for the life of one call).
//
// Shape, after libuv's threadpool and Go's handling of blocking syscalls:
// one FIFO of calls under one mutex, threads started on demand up to a
// bound, idle threads kept on a LIFO stack (the most recently busy thread
// is woken first, so that under light load the same few threads stay warm
// and the others reach their idle timeout and exit). A fiber that submits
// a call parks; the thread that runs it unparks it. Callers beyond the
// queue's bound wait, parked, in a second FIFO and are admitted in order
// as room frees up.
#include "sched/detail/blocking_pool.h"

#include <pthread.h>

#include <algorithm>
#include <system_error>
#include <thread>
#include <vector>

#include "fiber/lock_holder.h"
#include "sched/blocking.h"
#include "sched/detail/runtime.h"
#include "sched/detail/worker.h"
#include "sched/park.h"
#include "sched/scheduler.h"

namespace spindle {

blocking_pool_stats blocking_stats() noexcept {
  blocking_pool_stats out;
  if (detail::blocking_pool* pool = detail::current_blocking_pool()) pool->stats(out);
  return out;
}

namespace detail {

void throw_blocking_timed_out() {
  throw std::system_error(std::make_error_code(std::errc::timed_out), "spindle::blocking");
}

void throw_blocking_canceled() {
  throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                          "spindle::blocking: stop was requested on the calling fiber");
}

void call_lock::lock() noexcept {
  for (;;) {
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    // Held for a few instructions by a thread that may have been
    // preempted: spin briefly, then give the core away.
    for (int i = 0; locked_.load(std::memory_order_relaxed); ++i) {
      if (i < 64) {
        __builtin_ia32_pause();
      } else {
        std::this_thread::yield();
      }
    }
  }
}

namespace {

// An intrusive FIFO of calls; the pool's mutex guards it.
class call_list {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  void push_back(blocking_call* c) noexcept {
    c->next = nullptr;
    c->prev = tail_;
    if (tail_ != nullptr) {
      tail_->next = c;
    } else {
      head_ = c;
    }
    tail_ = c;
    ++size_;
  }
  blocking_call* pop_front() noexcept {
    blocking_call* c = head_;
    if (c != nullptr) remove(c);
    return c;
  }
  void remove(blocking_call* c) noexcept {
    if (c->prev != nullptr) {
      c->prev->next = c->next;
    } else {
      head_ = c->next;
    }
    if (c->next != nullptr) {
      c->next->prev = c->prev;
    } else {
      tail_ = c->prev;
    }
    c->next = c->prev = nullptr;
    --size_;
  }
  std::size_t size() const noexcept { return size_; }

 private:
  blocking_call* head_ = nullptr;
  blocking_call* tail_ = nullptr;
  std::size_t size_ = 0;
};

// An idle pool thread, waiting to be handed work.
struct idle_thread {
  std::condition_variable cv;
  bool claimed = false;
};

}  // namespace

struct blocking_pool::state {
  explicit state(const runtime_options& opts)
      : max_threads(std::max(1u, opts.blocking_threads)),
        max_queue(std::max<std::size_t>(1, opts.blocking_queue)),
        idle_timeout(opts.blocking_idle) {}

  const unsigned max_threads;
  const std::size_t max_queue;
  const std::chrono::milliseconds idle_timeout;

  mutable os_mutex mu;
  call_list queue SPINDLE_GUARDED_BY(mu);
  call_list room SPINDLE_GUARDED_BY(mu);  // waiting for room in queue
  std::vector<idle_thread*> idle SPINDLE_GUARDED_BY(mu);  // a stack: back() is the warmest
  std::size_t threads SPINDLE_GUARDED_BY(mu) = 0;
  std::size_t peak_threads SPINDLE_GUARDED_BY(mu) = 0;
  std::size_t running SPINDLE_GUARDED_BY(mu) = 0;
  std::size_t completed SPINDLE_GUARDED_BY(mu) = 0;
  bool stopping SPINDLE_GUARDED_BY(mu) = false;
  std::condition_variable exited;   // a thread exited (for the destructor)

  // Moves the first caller waiting for room into the queue.
  void admit_one_locked() noexcept SPINDLE_REQUIRES(mu) {
    if (room.empty() || queue.size() >= max_queue) return;
    blocking_call* c = room.pop_front();
    c->lock.lock();
    c->st = blocking_call::state::queued;
    c->lock.unlock();
    queue.push_back(c);
  }

  // Takes the next call to run, marking it running; nullptr when there is
  // none. A call whose deadline has passed is not started: its caller is
  // told so.
  blocking_call* take_locked() noexcept SPINDLE_REQUIRES(mu) {
    while (blocking_call* c = queue.pop_front()) {
      admit_one_locked();
      c->lock.lock();
      if (c->has_deadline && std::chrono::steady_clock::now() >= c->deadline) {
        c->st = blocking_call::state::expired;
        unpark(c->waiter);  // under c->lock: see blocking_call
        c->lock.unlock();
        continue;
      }
      c->st = blocking_call::state::running;
      c->lock.unlock();
      ++running;
      return c;
    }
    return nullptr;
  }

  // Hands the queue's new work to an idle thread; true when a new thread
  // should be started instead (the caller starts it, outside mu).
  bool dispatch_locked() noexcept SPINDLE_REQUIRES(mu) {
    if (!idle.empty()) {
      idle_thread* t = idle.back();
      idle.pop_back();
      t->claimed = true;
      t->cv.notify_one();
      return false;
    }
    if (threads >= max_threads) return false;  // a busy thread will take it
    ++threads;
    peak_threads = std::max(peak_threads, threads);
    return true;
  }
};

namespace {

// Reports a finished call to its caller, or destroys it if the caller has
// given up on it. Pool thread.
void finish(blocking_call* c) noexcept {
  c->lock.lock();
  if (c->st == blocking_call::state::abandoned) {
    c->lock.unlock();
    c->destroy(c);
    return;
  }
  c->st = blocking_call::state::done;
  // Under c->lock: a caller whose park timed out meanwhile takes the lock
  // before deciding, so it sees `done` and knows this unpark has happened
  // (and failed). Nothing touches *c after the unlock.
  unpark(c->waiter);
  c->lock.unlock();
}

// Waits, on the idle stack, until handed work (true) or until idle_timeout
// passes without any (false: the thread has left the stack and retires).
bool wait_for_work(blocking_pool::state& s, idle_thread& me) SPINDLE_REQUIRES(s.mu) {
  const auto give_up = std::chrono::steady_clock::now() + s.idle_timeout;
  while (!me.claimed && s.mu.wait_until(me.cv, give_up) == std::cv_status::no_timeout) {
  }
  if (me.claimed) return true;
  s.idle.erase(std::find(s.idle.begin(), s.idle.end(), &me));
  return false;
}

void thread_main(std::shared_ptr<blocking_pool::state> sp) noexcept {
  blocking_pool::state& s = *sp;
  pthread_setname_np(pthread_self(), "spindle-blocking");
  idle_thread me;
  lock_holder lock(s.mu);
  for (;;) {
    blocking_call* c = s.take_locked();
    if (c == nullptr) {
      if (s.stopping) break;
      me.claimed = false;
      s.idle.push_back(&me);
      if (!wait_for_work(s, me)) break;
      continue;
    }
    lock.unlock();
    c->invoke(c);
    lock.lock();
    --s.running;
    ++s.completed;
    // With nothing queued, go on the idle stack before telling the caller:
    // a fiber that makes one call after another then always finds this
    // thread idle, instead of starting a new one while this one is still
    // on its way back.
    const bool idle_now = s.queue.empty() && !s.stopping;
    if (idle_now) {
      me.claimed = false;
      s.idle.push_back(&me);
    }
    lock.unlock();
    finish(c);
    lock.lock();
    if (idle_now && !me.claimed && !wait_for_work(s, me)) break;
  }
  --s.threads;
  s.exited.notify_all();
}

bool start_thread(const std::shared_ptr<blocking_pool::state>& sp) noexcept {
  try {
    std::thread(thread_main, sp).detach();
    return true;
  } catch (const std::system_error&) {
    lock_holder lock(sp->mu);
    --sp->threads;
    sp->exited.notify_all();
    return false;
  }
}

}  // namespace

blocking_pool::blocking_pool(const runtime_options& opts) : s_(std::make_shared<state>(opts)) {}

blocking_pool::~blocking_pool() {
  // Every fiber has finished, so no call is queued and every call still
  // running was abandoned by its caller: let those finish in the
  // background (their threads own a reference to the state) and wait for
  // the other threads to exit.
  lock_holder lock(s_->mu);
  s_->stopping = true;
  for (idle_thread* t : s_->idle) {
    t->claimed = true;
    t->cv.notify_one();
  }
  s_->idle.clear();
  while (s_->threads > s_->running) s_->mu.wait(s_->exited);
}

call_result blocking_pool::run(blocking_call& c) noexcept {
  state& s = *s_;
  control_block* self = current_waiter();
  c.waiter = self;
  note_wait(self, wait_reason::blocking_call, &c);
  prepare_park(self);
  bool start = false;
  {
    lock_holder lock(s.mu);
    if (s.queue.size() < s.max_queue && s.room.empty()) {
      c.st = blocking_call::state::queued;
      s.queue.push_back(&c);
      start = s.dispatch_locked();
    } else {
      c.st = blocking_call::state::waiting_room;
      s.room.push_back(&c);
    }
  }
  if (start && !start_thread(s_)) {
    // No thread could be started (the process is out of threads). If the
    // pool has none at all, nobody would ever run this call: run it here,
    // blocking this worker, rather than hang.
    lock_holder lock(s.mu);
    c.lock.lock();
    if (s.threads == 0 && c.st == blocking_call::state::queued) {
      s.queue.remove(&c);
      s.admit_one_locked();
      c.st = blocking_call::state::running;
      c.lock.unlock();
      lock.unlock();
      cancel_park(self);
      c.invoke(&c);
      c.st = blocking_call::state::done;
      lock_holder relock(s.mu);
      ++s.completed;
      return call_result::done;
    }
    c.lock.unlock();
  }

  // A cancellable fiber's wait is a cancel point (time_point::max(): no
  // deadline); any other's keeps the plain park when there is no deadline.
  const bool cancel = cancellable(self);
  bool woken;
  if (cancel) [[unlikely]] {
    woken = park_until(self, c.has_deadline ? c.deadline : std::chrono::steady_clock::time_point::max(),
                       cancel_point::yes);
  } else {
    woken = c.has_deadline ? park_until(self, c.deadline) : (park(self), true);
  }
  if (woken) {
    // The pool unparked us holding c.lock: wait until it has let go.
    c.lock.lock();
    const bool ran = c.st == blocking_call::state::done;
    c.lock.unlock();
    return ran ? call_result::done : call_result::timed_out;
  }

  // The deadline passed, or a stop request came. Whatever the pool does
  // from here, it does under c.lock, after which it no longer touches the
  // call or unparks us.
  const bool stopped = cancel && stop_requested(self);
  lock_holder lock(s.mu);
  c.lock.lock();
  call_result result = call_result::timed_out;
  switch (c.st) {
    case blocking_call::state::waiting_room:
      s.room.remove(&c);
      c.st = blocking_call::state::cancelled;
      break;
    case blocking_call::state::queued:
      s.queue.remove(&c);
      s.admit_one_locked();
      c.st = blocking_call::state::cancelled;
      break;
    case blocking_call::state::running:
      if (c.destroy == nullptr) {
        // Stopped (only a cancellable wait without a deadline gets here),
        // but the call borrows the caller's frame (spindle::blocking()):
        // it cannot be left to finish in the background. Wait for it,
        // not cancellably: prepared under c.lock, which finish() unparks
        // under, so its unpark cannot come before and be lost.
        note_wait(self, wait_reason::blocking_call, &c);
        prepare_park(self);
        c.lock.unlock();
        lock.unlock();
        park(self);
        c.lock.lock();  // finish() unparked us holding it: wait until it let go
        c.lock.unlock();
        return call_result::done;
      }
      c.st = blocking_call::state::abandoned;  // the pool destroys it
      result = call_result::abandoned;
      break;
    case blocking_call::state::done:
      result = call_result::done;  // it finished just as we timed out
      break;
    default:  // expired
      break;
  }
  c.lock.unlock();
  if (stopped && result == call_result::timed_out) return call_result::canceled;
  if (stopped && result == call_result::abandoned) return call_result::canceled_abandoned;
  return result;
}

void blocking_pool::stats(blocking_pool_stats& out) const noexcept {
  lock_holder lock(s_->mu);
  out.threads = s_->threads;
  out.idle_threads = s_->idle.size();
  out.peak_threads = s_->peak_threads;
  out.queued = s_->queue.size();
  out.waiting_room = s_->room.size();
  out.running = s_->running;
  out.completed = s_->completed;
}

blocking_pool* current_blocking_pool() noexcept {
  const control_block* cb = tls_current_fiber;
  if (cb == nullptr) return nullptr;
  return &cb->worker_->rt().blocking();
}

}  // namespace detail
}  // namespace spindle
