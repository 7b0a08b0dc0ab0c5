// The calls that spindle::blocking() and friends hand to the pool: what
// a call returned or threw, a call that borrows the caller's callable, one
// that owns copies of it (for a deadline), and the deadline wait itself.
// Internal to sched/blocking.h.
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <tuple>
#include <type_traits>
#include <utility>

#include "sched/detail/blocking_pool.h"

namespace spindle {
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
[[noreturn]] void throw_blocking_canceled();

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
    case call_result::canceled:
      throw_blocking_canceled();
    case call_result::canceled_abandoned:
      (void)call.release();  // the pool destroys it when it has run
      throw_blocking_canceled();
  }
  throw_blocking_timed_out();
}

}  // namespace detail

}  // namespace spindle
