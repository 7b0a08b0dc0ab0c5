// spindle::blocking(): run a call that blocks (a regular file, DNS, a
// database driver) on the runtime's blocking pool while the calling fiber
// parks, so that the other fibers of its worker keep running.
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>

#include "sched/deadline.h"
#include "sched/detail/blocking_pool.h"

namespace spindle {

// A snapshot of the calling fiber's runtime's blocking pool.
struct blocking_pool_stats {
  std::size_t threads = 0;       // pool threads alive now
  std::size_t idle_threads = 0;  // of which waiting for work
  std::size_t peak_threads = 0;  // most threads alive at once so far
  std::size_t queued = 0;        // calls waiting for a thread
  std::size_t waiting_room = 0;  // calls waiting for room in the full queue
  std::size_t running = 0;       // calls running now (abandoned ones included)
  std::size_t completed = 0;     // calls run to the end so far
};

// blocking_stats() describes the pool of the calling fiber's runtime
// (all zeros on a plain thread, which has none).
blocking_pool_stats blocking_stats() noexcept;

namespace detail {

// Holds what a call returned (a value, a reference, or nothing) or the
// exception it threw.
template <class R>
class call_result_slot {
 public:
  call_result_slot() noexcept {}
  call_result_slot(const call_result_slot&) = delete;
  call_result_slot& operator=(const call_result_slot&) = delete;
  ~call_result_slot() {
    if (has_value_) value_.~R();
  }
  template <class F>
  void invoke(F&& f) noexcept {
    try {
      ::new (static_cast<void*>(std::addressof(value_))) R(std::forward<F>(f)());
      has_value_ = true;
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  R take() {
    if (error_) std::rethrow_exception(error_);
    return std::move(value_);
  }

 private:
  std::exception_ptr error_;
  union {
    R value_;
  };
  bool has_value_ = false;
};

template <class R>
class call_result_slot<R&> {
 public:
  template <class F>
  void invoke(F&& f) noexcept {
    try {
      value_ = std::addressof(std::forward<F>(f)());
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  R& take() {
    if (error_) std::rethrow_exception(error_);
    return *value_;
  }

 private:
  std::exception_ptr error_;
  R* value_ = nullptr;
};

template <class R>
class call_result_slot<R&&> {
 public:
  template <class F>
  void invoke(F&& f) noexcept {
    try {
      value_ = std::addressof(static_cast<R&>(std::forward<F>(f)()));
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  R&& take() {
    if (error_) std::rethrow_exception(error_);
    return std::move(*value_);
  }

 private:
  std::exception_ptr error_;
  R* value_ = nullptr;
};

template <>
class call_result_slot<void> {
 public:
  template <class F>
  void invoke(F&& f) noexcept {
    try {
      std::forward<F>(f)();
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  void take() {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::exception_ptr error_;
};

// A call whose callable and arguments stay with the caller (no deadline:
// the caller's frame outlives it).
template <class F, class... Args>
struct borrowed_call : blocking_call {
  using result_type = std::invoke_result_t<F, Args...>;
  borrowed_call(F&& f, Args&&... args) : fn(std::forward<F>(f)), args(std::forward<Args>(args)...) {
    invoke = [](blocking_call* c) noexcept {
      auto* self = static_cast<borrowed_call*>(c);
      self->result.invoke([self]() -> result_type {
        return std::apply(std::forward<F>(self->fn), std::move(self->args));
      });
    };
  }
  F&& fn;
  std::tuple<Args&&...> args;
  call_result_slot<result_type> result;
};

// A call with a deadline owns decayed copies of the callable and its
// arguments (as std::thread does), and lives on the heap: when the caller
// gives up on it while it runs, the pool finishes it and destroys it.
template <class F, class... Args>
struct owned_call : blocking_call {
  using result_type = std::invoke_result_t<F, Args...>;
  template <class G, class... A>
  explicit owned_call(G&& g, A&&... a) : fn(std::forward<G>(g)), args(std::forward<A>(a)...) {
    invoke = [](blocking_call* c) noexcept {
      auto* self = static_cast<owned_call*>(c);
      self->result.invoke([self]() -> result_type {
        return std::apply(std::move(self->fn), std::move(self->args));
      });
    };
    destroy = [](blocking_call* c) noexcept { delete static_cast<owned_call*>(c); };
  }
  F fn;
  std::tuple<Args...> args;
  call_result_slot<result_type> result;
};

[[noreturn]] void throw_blocking_timed_out();

template <class F, class... Args>
auto blocking_with_deadline(std::chrono::steady_clock::time_point deadline, F&& f, Args&&... args)
    -> std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...> {
  blocking_pool* pool = current_blocking_pool();
  if (pool == nullptr) {
    if (std::chrono::steady_clock::now() >= deadline) throw_blocking_timed_out();
    return std::invoke(std::forward<F>(f), std::forward<Args>(args)...);
  }
  using call_t = owned_call<std::decay_t<F>, std::decay_t<Args>...>;
  auto call = std::make_unique<call_t>(std::forward<F>(f), std::forward<Args>(args)...);
  call->has_deadline = true;
  call->deadline = deadline;
  switch (pool->run(*call)) {
    case call_result::done:
      return call->result.take();
    case call_result::timed_out:
      break;
    case call_result::abandoned:
      (void)call.release();  // the pool destroys it when it has run
      break;
  }
  throw_blocking_timed_out();
}

}  // namespace detail

// blocking(f, args...) runs f(args...) on a thread of the runtime's
// blocking pool and parks the calling fiber until it returns; it returns
// what f returned, or rethrows what f threw. Meanwhile the fiber's worker
// runs other fibers: this is how to call anything that blocks its thread
// (a database driver, a regular file, a library that sleeps).
//
//   auto rows = spindle::blocking([&] { return db.query("select 1"); });
//
// f and args are used in place (not copied): the caller waits for the
// call, so references stay valid. The pool has at most
// options::blocking_threads threads (started on demand, retired after
// options::blocking_idle without work) and a queue of
// options::blocking_queue calls; callers beyond that park until there is
// room. Called on a plain thread (not a fiber), blocking() just calls
// f(args...).
template <class F, class... Args>
auto blocking(F&& f, Args&&... args) -> std::invoke_result_t<F, Args...> {
  detail::blocking_pool* pool = detail::current_blocking_pool();
  if (pool == nullptr) return std::invoke(std::forward<F>(f), std::forward<Args>(args)...);
  detail::borrowed_call<F, Args...> call(std::forward<F>(f), std::forward<Args>(args)...);
  (void)pool->run(call);  // no deadline: always done
  return call.result.take();
}

// blocking_until(deadline, f, args...) is blocking() with a deadline. A
// call still waiting for a pool thread at the deadline is not started; one
// already running is left to finish in the background, and its result (or
// exception) is dropped. Either way the caller gets std::system_error with
// std::errc::timed_out at the deadline. Because the call may outlive the
// caller's wait, f and args are copied (decayed, as std::thread does);
// anything they refer to must outlive the call itself, not just the wait.
template <class Clock, class Duration, class F, class... Args>
auto blocking_until(const std::chrono::time_point<Clock, Duration>& deadline, F&& f, Args&&... args) {
  return detail::blocking_with_deadline(spindle::deadline(deadline).when(), std::forward<F>(f),
                                        std::forward<Args>(args)...);
}

// blocking_for(timeout, f, args...) is blocking_until(now + timeout, ...).
template <class Rep, class Period, class F, class... Args>
auto blocking_for(const std::chrono::duration<Rep, Period>& timeout, F&& f, Args&&... args) {
  return detail::blocking_with_deadline(spindle::deadline(timeout).when(), std::forward<F>(f),
                                        std::forward<Args>(args)...);
}

}  // namespace spindle
