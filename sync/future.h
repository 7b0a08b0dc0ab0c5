// spindle::promise, future, shared_future, packaged_task, async: std's
// <future> for fibers. Waiting parks the fiber.
#pragma once

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>

#include "fiber/fiber.h"
#include "fiber/thread_annotations.h"
#include "sync/condition_variable.h"
#include "fiber/lock_holder.h"
#include "sync/mutex.h"

namespace spindle {

using std::future_errc;
using std::future_error;
using std::future_status;
// std::launch itself, so that std::launch::async ports as spindle::launch::async.
using std::launch;

namespace detail {

template <class T>
// What a state stores: a T, a pointer for a reference (future<T&>), a
// placeholder for void.
using stored_t = std::conditional_t<std::is_void_v<T>, char,
                                    std::conditional_t<std::is_reference_v<T>, std::remove_reference_t<T>*, T>>;

// A deferred async() call, run by the first waiter.
struct deferred_call {
  virtual ~deferred_call() = default;
  virtual void run() noexcept = 0;
};

// The state a promise and its futures share.
//
// Setting a result is two steps: claim() takes the right to set it (or
// throws promise_already_satisfied), under the lock; then the value is
// constructed without the lock, and publish() makes it ready. So a value
// whose constructor looks at the same state (a copy constructor that asks
// the future whether it is ready) does not deadlock on the lock, as std
// requires, and a packaged_task called twice throws before it runs its
// function again.
template <class T>
class future_state {
 public:
  template <class... V>
  void set_value(V&&... v) {
    claim();
    set_value_claimed(std::forward<V>(v)...);
  }
  void set_exception(std::exception_ptr e) {
    claim();
    set_exception_claimed(std::move(e));
  }
  // claim() reserves the state for one setter; throws
  // promise_already_satisfied if it is set or being set.
  void claim() {
    lock_holder lock(mu_);
    check_unsatisfied();
    claimed_ = true;
  }
  // After claim(): constructs the value (without the lock; a throwing
  // constructor gives the claim back) and makes it ready.
  template <class... V>
  void set_value_claimed(V&&... v) {
    try {
      store_value_claimed(std::forward<V>(v)...);
    } catch (...) {
      unclaim();
      throw;
    }
    publish();
  }
  void set_exception_claimed(std::exception_ptr e) {
    error_ = std::move(e);
    publish();
  }
  // The _at_thread_exit forms: the result is stored now (after claim())
  // and made ready when the calling fiber ends.
  template <class... V>
  void store_value_claimed(V&&... v) {
    if constexpr (std::is_void_v<T>) {
      value_.emplace();
    } else if constexpr (std::is_reference_v<T>) {
      value_.emplace(std::addressof(v...));
    } else {
      value_.emplace(std::forward<V>(v)...);
    }
  }
  void store_exception_claimed(std::exception_ptr e) noexcept { error_ = std::move(e); }
  // After store_*_claimed(): makes the result ready now.
  void publish_stored() { publish(); }
  void unclaim() noexcept {
    lock_holder lock(mu_);
    claimed_ = false;
  }
  static void publish_at_fiber_exit(std::shared_ptr<future_state> s) {
    at_fiber_exit([s = std::move(s)]() { s->publish(); });
  }
  // Sets broken_promise unless satisfied (or being set); never throws.
  void abandon() noexcept {
    lock_holder lock(mu_);
    if (ready_ || claimed_) return;
    error_ = std::make_exception_ptr(future_error(future_errc::broken_promise));
    ready_ = true;
    cv_.notify_all();
  }
  // wait() and wait_until() are cancellation points for a fiber that
  // observes a stop token: they throw std::system_error
  // (operation_canceled) once stop is requested while not ready. A ready
  // state never throws.
  void wait() {
    run_deferred();
    detail::outer_wait reason(detail::wait_reason::future, this);
    lock_holder lock(mu_);
    if (control_block* self = tls_current_fiber; self != nullptr && cancellable(self)) [[unlikely]] {
      if (!cv_.wait(lock, *self->stop_, [this]() SPINDLE_NO_THREAD_SAFETY_ANALYSIS { return ready_; })) {
        throw_canceled();
      }
      return;
    }
    while (!ready_) cv_.wait(lock);
  }
  // wait_uncancellable() is wait() that no stop request ends (for the
  // destructor of an async() call's last future, which must not throw).
  void wait_uncancellable() {
    run_deferred();
    detail::outer_wait reason(detail::wait_reason::future, this);
    lock_holder lock(mu_);
    while (!ready_) cv_.wait(lock);
  }
  future_status wait_until(std::chrono::steady_clock::time_point deadline) {
    detail::outer_wait reason(detail::wait_reason::future, this);
    lock_holder lock(mu_);
    if (deferred_ != nullptr) return future_status::deferred;
    if (control_block* self = tls_current_fiber; self != nullptr && cancellable(self)) [[unlikely]] {
      if (cv_.wait_until(lock, *self->stop_, deadline,
                         [this]() SPINDLE_NO_THREAD_SAFETY_ANALYSIS { return ready_; })) {
        return future_status::ready;
      }
      if (self->stop_->stop_requested()) throw_canceled();
      return future_status::timeout;
    }
    while (!ready_) {
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
        return ready_ ? future_status::ready : future_status::timeout;
      }
    }
    return future_status::ready;
  }

  // launch::deferred: `fn` runs on the first wait (or get), on the waiter.
  // Not analyzed: called before the state is shared, so without the lock.
  void set_deferred(std::unique_ptr<deferred_call> fn) noexcept
      SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
    deferred_ = std::move(fn);
  }
  // The state of an async() call (not deferred): the last future handle
  // to go waits for the call to finish, as std's does.
  void set_from_async() noexcept { from_async_ = true; }
  // Future and shared_future handles: add_handle() for each new one,
  // drop_handle() as each goes.
  void add_handle() noexcept { handles_.fetch_add(1, std::memory_order_relaxed); }
  void drop_handle() {
    if (handles_.fetch_sub(1, std::memory_order_acq_rel) == 1 && from_async_) wait_uncancellable();
  }
  // After wait(): the value, moved out (future::get), or rethrows.
  stored_t<T> take() {
    wait();
    if (error_) std::rethrow_exception(error_);
    return std::move(*value_);
  }
  // After wait(): the value, shared (shared_future::get), or rethrows.
  const stored_t<T>& peek() {
    wait();
    if (error_) std::rethrow_exception(error_);
    return *value_;
  }

 private:
  [[noreturn, gnu::cold]] static void throw_canceled() {
    throw std::system_error(std::make_error_code(std::errc::operation_canceled),
                            "spindle::future: stop was requested on the waiting fiber");
  }
  void check_unsatisfied() const SPINDLE_REQUIRES(mu_) {
    if (ready_ || claimed_) throw future_error(future_errc::promise_already_satisfied);
  }
  void publish() {
    lock_holder lock(mu_);
    ready_ = true;
    cv_.notify_all();
  }

  void run_deferred() {
    std::unique_ptr<deferred_call> fn;
    {
      lock_holder lock(mu_);
      fn = std::move(deferred_);
    }
    if (fn != nullptr) fn->run();  // sets this state (claim, then publish)
  }

  mutex mu_;
  condition_variable_any cv_;  // on mu_
  std::unique_ptr<deferred_call> deferred_ SPINDLE_GUARDED_BY(mu_);
  bool from_async_ = false;                  // set before any handle exists
  std::atomic<int> handles_{0};
  bool ready_ SPINDLE_GUARDED_BY(mu_) = false;
  bool claimed_ SPINDLE_GUARDED_BY(mu_) = false;  // a setter is constructing the result
  // Written by the one claimant without the lock, read after ready_ (set
  // under the lock after it) by the waiters.
  std::optional<stored_t<T>> value_;
  std::exception_ptr error_;
};

[[noreturn]] inline void throw_no_state() { throw future_error(future_errc::no_state); }

}  // namespace detail

template <class T>
class future;

namespace detail {
// A future of `s` (for async()).
template <class T>
future<T> make_future(std::shared_ptr<future_state<T>> s) noexcept;
}  // namespace detail

template <class T>
class shared_future;

namespace detail {
// wait(), wait_for(), wait_until() and valid(), shared by future and
// shared_future.
template <class T>
class future_base {
 public:
  bool valid() const noexcept { return state_ != nullptr; }
  void wait() const {
    if (!state_) throw_no_state();
    state_->wait();
  }
  // wait_for() waits on steady_clock (a duration too long to add to now:
  // no deadline); wait_until() says timeout only once the deadline has
  // passed on its own clock (fiber/clock.h).
  template <class Rep, class Period>
  future_status wait_for(const std::chrono::duration<Rep, Period>& timeout) const {
    return wait_until(steady_after(timeout));
  }
  template <class Clock, class Duration>
  future_status wait_until(const std::chrono::time_point<Clock, Duration>& deadline) const {
    if (!state_) throw_no_state();
    future_status status = future_status::timeout;
    (void)until_on_clock(deadline, [&](steady_time d) {
      status = state_->wait_until(d);  // ready, timeout, or deferred (at once)
      return status != future_status::timeout;
    });
    return status;
  }

 protected:
  future_base() noexcept = default;
  explicit future_base(std::shared_ptr<future_state<T>> s) noexcept : state_(std::move(s)) {
    if (state_) state_->add_handle();
  }
  future_base(const future_base& o) noexcept : state_(o.state_) {
    if (state_) state_->add_handle();
  }
  future_base(future_base&& o) noexcept = default;
  future_base& operator=(const future_base& o) {
    if (this != &o) {
      release();
      state_ = o.state_;
      if (state_) state_->add_handle();
    }
    return *this;
  }
  future_base& operator=(future_base&& o) {
    if (this != &o) {
      release();
      state_ = std::move(o.state_);
    }
    return *this;
  }
  ~future_base() { release(); }
  // Drops this handle: the last one of an async() call's state waits for
  // the call (std's "will not block ... unless" rule for async).
  void release() {
    if (auto s = std::move(state_)) s->drop_handle();
  }
  std::shared_ptr<future_state<T>> state_;
};
}  // namespace detail

// future<T> is std::future<T> for fibers: get() and wait() park the calling
// fiber (or block a plain thread) until the value is there. future<T&>
// carries a reference (the promise's set_value(T&) stores the address).
//
// Destruction (promise, future, shared_future, packaged_task): a promise
// and its futures share a state that lives until the last of them goes,
// so any of them may be destroyed whenever no fiber is in a call on that
// object, whoever waits on the others: a promise destroyed unsatisfied
// stores future_errc::broken_promise and wakes the fibers waiting on its
// futures first. Destroying a future or shared_future object while a
// fiber is in a call on that very object (get(), wait(), ...) is
// undefined, as std's (a shared_future is meant to be copied, one copy per
// fiber), and is not detected: the waiting fiber does not hold the state,
// so the promise's going may free it under the woken waiter.
//
// Cancellation: for a fiber that observes a stop token (spindle::jthread's,
// fiber_options::stop_token), get(), wait(), wait_for() and wait_until()
// of future and shared_future are cancellation points: once stop is
// requested, a call on a state that is not ready throws std::system_error
// with std::errc::operation_canceled (std::future_status has no value for
// it), at once if stop was requested already; the future stays valid().
// A ready state is returned as usual. Destroying the last future of an
// async() call still waits for the call, whatever the token says (a
// destructor cannot fail); a deferred call runs to its end on the waiter.
template <class T>
class future : public detail::future_base<T> {
  using detail::future_base<T>::state_;

 public:
  future() noexcept = default;
  future(future&&) noexcept = default;
  future& operator=(future&&) noexcept = default;

  // get() waits, then returns the value or rethrows the exception; the
  // future is no longer valid() after. Canceled (see "Cancellation"), it
  // throws std::system_error (operation_canceled) and stays valid().
  T get() {
    if (!state_) detail::throw_no_state();
    state_->wait();  // may be canceled: the future keeps its state then
    auto state = std::move(state_);
    if constexpr (std::is_void_v<T>) {
      (void)state->take();
    } else {
      if constexpr (std::is_reference_v<T>) {
        return *state->take();  // future<T&>: the referred-to object
      } else {
        return state->take();
      }
    }
  }
  shared_future<T> share() noexcept;

 private:
  template <class>
  friend class promise;
  template <class>
  friend class shared_future;
  template <class U>
  friend future<U> detail::make_future(std::shared_ptr<detail::future_state<U>> s) noexcept;
  explicit future(std::shared_ptr<detail::future_state<T>> s) noexcept
      : detail::future_base<T>(std::move(s)) {}
};

// shared_future<T> is std::shared_future<T>: copyable, get() may be called
// many times and from many fibers.
template <class T>
class shared_future : public detail::future_base<T> {
  using detail::future_base<T>::state_;

 public:
  shared_future() noexcept = default;
  shared_future(future<T>&& f) noexcept  // NOLINT: implicit, as std's
      : detail::future_base<T>(static_cast<detail::future_base<T>&&>(f)) {}

  decltype(auto) get() const {
    if (!state_) detail::throw_no_state();
    if constexpr (std::is_void_v<T>) {
      (void)state_->peek();
    } else {
      if constexpr (std::is_reference_v<T>) {
        return static_cast<T>(*state_->peek());  // shared_future<T&>::get() is T&
      } else {
        return static_cast<const T&>(state_->peek());
      }
    }
  }
};

template <class T>
future<T> detail::make_future(std::shared_ptr<future_state<T>> s) noexcept {
  return future<T>(std::move(s));
}

template <class T>
shared_future<T> future<T>::share() noexcept {
  return shared_future<T>(std::move(*this));
}

// promise<T> is std::promise<T>: the writing end. Destroyed unsatisfied,
// it leaves future_errc::broken_promise for the future.
template <class T>
class promise {
 public:
  promise() : state_(std::make_shared<detail::future_state<T>>()) {}
  promise(promise&&) noexcept = default;
  promise& operator=(promise&& other) noexcept {
    if (this != &other) {
      if (state_) state_->abandon();
      state_ = std::move(other.state_);
      retrieved_ = other.retrieved_;
    }
    return *this;
  }
  ~promise() {
    if (state_) state_->abandon();
  }

  future<T> get_future() {
    if (!state_) detail::throw_no_state();
    if (retrieved_) throw future_error(future_errc::future_already_retrieved);
    retrieved_ = true;
    return future<T>(state_);
  }
  template <class... V>
  void set_value(V&&... v) {
    if (!state_) detail::throw_no_state();
    state_->set_value(std::forward<V>(v)...);
  }
  void set_exception(std::exception_ptr e) {
    if (!state_) detail::throw_no_state();
    state_->set_exception(std::move(e));
  }
  // set_value_at_thread_exit() and set_exception_at_thread_exit() store the
  // result now (promise_already_satisfied if there is one) and make it
  // ready when the calling fiber ends (on a plain thread: when the thread
  // exits).
  template <class... V>
  void set_value_at_thread_exit(V&&... v) {
    auto& s = state();
    s.claim();
    try {
      s.store_value_claimed(std::forward<V>(v)...);
    } catch (...) {
      s.unclaim();  // nothing stored: the promise stays unsatisfied
      throw;
    }
    detail::future_state<T>::publish_at_fiber_exit(state_);
  }
  void set_exception_at_thread_exit(std::exception_ptr e) {
    auto& s = state();
    s.claim();
    s.store_exception_claimed(std::move(e));
    detail::future_state<T>::publish_at_fiber_exit(state_);
  }
  void swap(promise& other) noexcept {
    std::swap(state_, other.state_);
    std::swap(retrieved_, other.retrieved_);
  }

 private:
  template <class>
  friend class packaged_task;
  detail::future_state<T>& state() {
    if (!state_) detail::throw_no_state();
    return *state_;
  }
  std::shared_ptr<detail::future_state<T>> state_;
  bool retrieved_ = false;
};

template <class Signature>
class packaged_task;

// packaged_task<R(Args...)> is std::packaged_task: a callable whose result
// (or exception) goes to a future.
template <class R, class... Args>
class packaged_task<R(Args...)> {
 public:
  packaged_task() noexcept = default;
  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, packaged_task>)
  explicit packaged_task(F&& f)
      : fn_(std::make_unique<holder<std::decay_t<F>>>(std::forward<F>(f))),
        promise_(std::make_unique<promise<R>>()) {}
  packaged_task(packaged_task&&) noexcept = default;
  packaged_task& operator=(packaged_task&&) noexcept = default;

  bool valid() const noexcept { return fn_ != nullptr; }
  future<R> get_future() {
    if (!promise_) detail::throw_no_state();
    return promise_->get_future();
  }
  // operator() runs the function and stores its result or exception (a
  // future_error the function throws included). Called again before
  // reset(), it throws promise_already_satisfied without running it.
  void operator()(Args... args) { run_and_store(std::forward<Args>(args)...).publish_stored(); }
  // make_ready_at_thread_exit() runs the function now and makes its
  // result ready when the calling fiber ends.
  void make_ready_at_thread_exit(Args... args) {
    run_and_store(std::forward<Args>(args)...);
    detail::future_state<R>::publish_at_fiber_exit(promise_->state_);
  }
  void reset() {
    if (!fn_) detail::throw_no_state();
    promise_ = std::make_unique<promise<R>>();
  }
  void swap(packaged_task& other) noexcept {
    std::swap(fn_, other.fn_);
    std::swap(promise_, other.promise_);
  }

 private:
  // Claims the state (promise_already_satisfied when called twice, before
  // running anything), runs the function and stores its result or
  // exception, unpublished.
  detail::future_state<R>& run_and_store(Args... args) {
    if (!fn_) detail::throw_no_state();
    detail::future_state<R>& state = promise_->state();
    state.claim();
    try {
      if constexpr (std::is_void_v<R>) {
        fn_->call(std::forward<Args>(args)...);
        state.store_value_claimed();
      } else {
        state.store_value_claimed(fn_->call(std::forward<Args>(args)...));
      }
    } catch (...) {
      state.store_exception_claimed(std::current_exception());
    }
    return state;
  }

  struct holder_base {
    virtual ~holder_base() = default;
    virtual R call(Args... args) = 0;
  };
  template <class F>
  struct holder final : holder_base {
    // Built from the constructor's argument directly: the callable is moved
    // (or copied) once, as std's packaged_task does.
    template <class G>
    explicit holder(G&& g) : fn(std::forward<G>(g)) {}
    R call(Args... args) override {
      // packaged_task<void(Args...)> discards what the callable returns.
      if constexpr (std::is_void_v<R>) {
        (void)std::invoke(fn, std::forward<Args>(args)...);
      } else {
        return std::invoke(fn, std::forward<Args>(args)...);
      }
    }
    F fn;
  };
  std::unique_ptr<holder_base> fn_;
  std::unique_ptr<promise<R>> promise_;
};

template <class T>
void swap(promise<T>& a, promise<T>& b) noexcept {
  a.swap(b);
}
template <class Signature>
void swap(packaged_task<Signature>& a, packaged_task<Signature>& b) noexcept {
  a.swap(b);
}

namespace detail {
// The signature of a callable's operator(), for packaged_task's deduction
// guide (std's rule: a non-overloaded operator()).
template <class M>
struct call_signature;
template <class C, class R, class... A>
struct call_signature<R (C::*)(A...)> { using type = R(A...); };
template <class C, class R, class... A>
struct call_signature<R (C::*)(A...) const> { using type = R(A...); };
template <class C, class R, class... A>
struct call_signature<R (C::*)(A...) noexcept> { using type = R(A...); };
template <class C, class R, class... A>
struct call_signature<R (C::*)(A...) const noexcept> { using type = R(A...); };
template <class C, class R, class... A>
struct call_signature<R (C::*)(A...) &> { using type = R(A...); };
template <class C, class R, class... A>
struct call_signature<R (C::*)(A...) const&> { using type = R(A...); };
}  // namespace detail

template <class R, class... A>
packaged_task(R (*)(A...)) -> packaged_task<R(A...)>;
template <class F>
packaged_task(F) -> packaged_task<typename detail::call_signature<decltype(&F::operator())>::type>;

namespace detail {
// Runs fn(args...) into `state` (claimed first): the body of an async()
// fiber, or of a deferred call.
template <class R, class Fn, class... A>
void run_into(future_state<R>& state, Fn&& fn, A&&... a) noexcept {
  try {
    state.claim();
  } catch (...) {
    return;  // cannot happen: nothing else sets an async() state
  }
  try {
    if constexpr (std::is_void_v<R>) {
      std::invoke(std::forward<Fn>(fn), std::forward<A>(a)...);
      state.set_value_claimed();
    } else {
      state.set_value_claimed(std::invoke(std::forward<Fn>(fn), std::forward<A>(a)...));
    }
  } catch (...) {
    state.set_exception_claimed(std::current_exception());
  }
}

template <class R, class Fn, class... A>
struct deferred_invoke final : deferred_call {
  template <class G, class... B>
  deferred_invoke(future_state<R>* s, G&& g, B&&... b)
      : state(s), fn(std::forward<G>(g)), args(std::forward<B>(b)...) {}
  void run() noexcept override {
    std::apply([this](auto&... a) { run_into(*state, std::move(fn), std::move(a)...); }, args);
  }
  future_state<R>* state;  // the state owns this call
  Fn fn;
  std::tuple<A...> args;
};
}  // namespace detail

// async(policy, f, args...) is std::async for fibers:
//   - launch::async (or both bits): f(args...) runs on a new fiber
//     (spindle::go's rules), and the last future of its result to go waits
//     for it to finish, as std's does (it bounds the call's lifetime);
//   - launch::deferred: f(args...) runs on the first fiber or thread that
//     calls wait() or get() on its future; wait_for()/wait_until() say
//     future_status::deferred until then, and it never runs if nobody
//     waits.
// async(f, args...) is async(launch::async, f, args...).
template <class F, class... Args>
auto async(std::launch policy, F&& f, Args&&... args) {
  using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;
  auto state = std::make_shared<detail::future_state<R>>();
  if ((policy & std::launch::async) == std::launch{} && (policy & std::launch::deferred) != std::launch{}) {
    state->set_deferred(
        std::make_unique<detail::deferred_invoke<R, std::decay_t<F>, std::decay_t<Args>...>>(
            state.get(), std::forward<F>(f), std::forward<Args>(args)...));
    return detail::make_future(std::move(state));
  }
  state->set_from_async();
  future<R> result = detail::make_future(state);
  // The fiber holds the decayed copies (one move or copy each, as std's
  // async makes) and hands them on by reference.
  go([state](std::decay_t<F>&& fn, std::decay_t<Args>&&... a) mutable {
       detail::run_into(*state, std::move(fn), std::move(a)...);
     },
     std::forward<F>(f), std::forward<Args>(args)...);
  return result;
}

template <class F, class... Args>
  requires(!std::is_same_v<std::decay_t<F>, std::launch>)
auto async(F&& f, Args&&... args) {
  return spindle::async(std::launch::async, std::forward<F>(f), std::forward<Args>(args)...);
}

}  // namespace spindle
