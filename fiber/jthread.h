// spindle::jthread: std::jthread for fibers, a fiber that can be asked to
// stop and that joins when its handle goes.
#pragma once

#include <stop_token>
#include <type_traits>
#include <utility>

#include "fiber/detail/control_block.h"
#include "fiber/fiber.h"
#include "fiber/fiber_options.h"

namespace spindle {

// jthread is std::jthread's interface over spindle::fiber: it owns a
// std::stop_source, passes its token as the first argument when the
// callable takes a std::stop_token there, and its destructor (and move
// assignment) requests stop and joins instead of calling std::terminate.
//
// Unlike std::jthread, the fiber itself observes that token (as if it
// were given in fiber_options::stop_token): every blocking call Spindle
// makes for it is a cancellation point. Once stop is requested, a sleep
// returns early, socket calls, channel operations, select(), join(),
// future waits and blocking_for()/blocking_until() calls fail promptly
// with std::errc::operation_canceled (each in the form its header
// documents; a blocking() call only while it waits for a pool thread),
// and condition_variable_any's stop_token waits return. So a jthread
// parked in a recv() or a read_some() that nobody will ever satisfy still
// ends when its handle goes. mutex lock() is not a cancellation point, as
// in std; neither are wait_group, latch, barrier and semaphore waits.
//
//   spindle::channel<job> jobs;
//   spindle::jthread worker([&](std::stop_token st) {
//     try {
//       while (auto j = jobs.recv()) run(*j);
//     } catch (const std::system_error&) {  // operation_canceled: stop requested
//     }
//   });
//   ...
//   // ~jthread: request_stop(), and the recv() above throws; then join.
//
// A callable that takes no std::stop_token is called as spindle::fiber
// calls it, and its fiber is cancellable all the same (it can look at
// this_fiber::stop_requested() or this_fiber::get_stop_token()).
//
// The fiber observes the jthread's own token only: a stop_token given in
// fiber_options is replaced by it (the other settings apply). An
// exception escaping the fiber's function is rethrown by join(), as
// fiber's is; if the destructor or move assignment is what joins, it
// escapes a noexcept function and std::terminate is called (std::jthread
// terminates at once). Any thread, as fiber.
class jthread {
 public:
  using id = fiber::id;

  // Not a fiber; get_stop_source().stop_possible() is false.
  jthread() noexcept : source_(std::nostopstate) {}

  // Starts a fiber running std::invoke(decay-copy(f), get_stop_token(),
  // decay-copy(args)...) if that is well-formed, else
  // std::invoke(decay-copy(f), decay-copy(args)...). Throws as fiber's
  // constructor does.
  template <class F, class... Args>
    requires(!std::is_same_v<std::remove_cvref_t<F>, jthread> &&
             !std::is_same_v<std::remove_cvref_t<F>, fiber_options>)
  [[gnu::noinline]] explicit jthread(F&& f, Args&&... args) {
    fiber_ = start(fiber_options{}, __builtin_return_address(0), std::forward<F>(f),
                   std::forward<Args>(args)...);
  }

  // The same, with a name, a stack size, a worker... (options.stop_token
  // is replaced by the jthread's own).
  template <class F, class... Args>
  [[gnu::noinline]] jthread(const fiber_options& options, F&& f, Args&&... args) {
    fiber_ = start(options, __builtin_return_address(0), std::forward<F>(f),
                   std::forward<Args>(args)...);
  }

  // If joinable(): request_stop(), then join, not cancellably (a stop
  // request on the destroying fiber's own token does not end the wait).
  ~jthread() { stop_and_join(); }

  jthread(const jthread&) = delete;
  jthread& operator=(const jthread&) = delete;
  jthread(jthread&& other) noexcept
      : source_(std::exchange(other.source_, std::stop_source(std::nostopstate))),
        fiber_(std::move(other.fiber_)) {}
  // If *this is joinable(), requests stop and joins it first (as the
  // destructor does); then takes `other`'s fiber and stop source, and
  // leaves `other` as a default-constructed jthread.
  jthread& operator=(jthread&& other) noexcept {
    if (this != &other) {
      stop_and_join();
      source_ = std::exchange(other.source_, std::stop_source(std::nostopstate));
      fiber_ = std::move(other.fiber_);
    }
    return *this;
  }

  void swap(jthread& other) noexcept {
    std::swap(source_, other.source_);
    fiber_.swap(other.fiber_);
  }

  // joinable(), get_id(), get_name() and detach() are fiber's.
  [[nodiscard]] bool joinable() const noexcept { return fiber_.joinable(); }
  [[nodiscard]] id get_id() const noexcept { return fiber_.get_id(); }
  std::string get_name() const { return fiber_.get_name(); }
  // join() waits until the fiber has finished, as fiber::join(): it does
  // not request stop, and is itself a cancellation point for the calling
  // fiber (std::system_error with operation_canceled when the caller's
  // own token is stopped; the jthread stays joinable then).
  void join() { fiber_.join(); }
  void detach() { fiber_.detach(); }

  // The stop source and its token (the one the fiber observes); after a
  // detach() they still refer to the fiber's stop state.
  [[nodiscard]] std::stop_source get_stop_source() noexcept { return source_; }
  [[nodiscard]] std::stop_token get_stop_token() const noexcept { return source_.get_token(); }
  // request_stop() asks the fiber to stop: its waits in cancellable calls
  // end at once, and later ones fail at once. True if this call made the
  // request (std::stop_source::request_stop()). Any thread.
  bool request_stop() noexcept { return source_.request_stop(); }

  [[nodiscard]] static unsigned hardware_concurrency() noexcept {
    return fiber::hardware_concurrency();
  }

  friend void swap(jthread& a, jthread& b) noexcept { a.swap(b); }

 private:
  template <class F, class... Args>
  fiber start(const fiber_options& options, const void* site, F&& f, Args&&... args) {
    static_assert(std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...> ||
                      std::is_invocable_v<std::decay_t<F>, std::stop_token, std::decay_t<Args>...>,
                  "spindle::jthread arguments must be invocable after conversion to rvalues");
    fiber_options o = options;
    o.stop_token = source_.get_token();
    if constexpr (std::is_invocable_v<std::decay_t<F>, std::stop_token, std::decay_t<Args>...>) {
      return detail::fiber_factory::make(o, site, std::forward<F>(f), source_.get_token(),
                                         std::forward<Args>(args)...);
    } else {
      return detail::fiber_factory::make(o, site, std::forward<F>(f), std::forward<Args>(args)...);
    }
  }

  void stop_and_join() noexcept {
    if (!fiber_.joinable()) return;
    source_.request_stop();
    if (detail::fiber_factory::block_of(fiber_) == detail::tls_current_fiber) {
      // A fiber destroying its own jthread: it cannot wait for itself
      // (std::jthread would throw resource_deadlock_would_occur and, in a
      // destructor, terminate): let it run on detached.
      fiber_.detach();
      return;
    }
    detail::fiber_factory::join_uncancellable(fiber_);
  }

  // Declared first: the token the fiber gets exists before it starts.
  std::stop_source source_;
  fiber fiber_;
};

}  // namespace spindle
