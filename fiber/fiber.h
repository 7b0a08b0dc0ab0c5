// spindle::fiber: a green thread with the interface of std::thread.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iosfwd>
#include <string_view>
#include <string>
#include <type_traits>
#include <utility>

#include "fiber/detail/spawn.h"
#include "fiber/fiber_options.h"

namespace spindle {

namespace detail {
struct fiber_id_maker;
struct fiber_factory;
}  // namespace detail

// A fiber is a stackful green thread: it runs a function on its own stack
// (pooled, guarded, committed page by page) and is scheduled by Spindle's
// workers, so thousands of fibers share a few OS threads. It blocks (sleeps,
// joins, waits on sync/ and io/ objects) by parking, which frees its worker
// to run other fibers.
//
// Unlike std::thread, spawning costs about as much as a function call and a
// parked fiber about one page of memory. The interface is std::thread's, so
// thread code ports by changing the namespace (spindle::thread is an alias):
//
//   spindle::run([] {
//     int sum = 0;
//     spindle::fiber f([&sum](int n) { for (int i = 1; i <= n; ++i) sum += i; }, 100);
//     f.join();  // parks this fiber until f has finished
//     std::cout << sum << "\n";
//   });
//
// As with std::thread, the callable and the arguments are decay-copied, a
// joinable fiber must be joined or detached before its handle is destroyed
// (otherwise std::terminate is called), and join() makes everything the
// fiber did visible to the joiner. An exception escaping the function is
// rethrown by join(); one escaping a detached fiber prints the fiber's name
// and calls std::terminate.
//
// Fibers can be created and joined from any thread: on a worker the new
// fiber starts on the same worker; from a plain thread it goes to the
// running runtime (see sched/scheduler.h), and join() blocks that thread.
class fiber {
 public:
  // A fiber's identity. Ids are unique for the life of the process and
  // never reused. A default-constructed id represents "not a fiber".
  //
  // As std::thread::id's, its comparisons are functions of namespace
  // spindle (not hidden friends: a type that converts to an id compares),
  // it prints to any basic_ostream, and std::hash knows it.
  class id {
   public:
    id() noexcept = default;
    // value() is the id's number (0 for "not a fiber").
    std::uint64_t value() const noexcept { return value_; }

   private:
    friend class fiber;
    friend struct detail::fiber_id_maker;
    explicit id(std::uint64_t v) noexcept : value_(v) {}
    std::uint64_t value_ = 0;
  };

  // An empty handle: not joinable.
  fiber() noexcept = default;

  // Starts a fiber running std::invoke(decay-copy(f), decay-copy(args)...).
  // Throws std::system_error if no runtime is running or no stack can be
  // allocated; nothing is leaked then. Any thread.
  template <class F, class... Args>
    requires(!std::is_same_v<std::remove_cvref_t<F>, fiber> &&
             !std::is_same_v<std::remove_cvref_t<F>, fiber_options>)
  [[gnu::noinline]] explicit fiber(F&& f, Args&&... args) {
    static_assert(std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>,
                  "spindle::fiber arguments must be invocable after conversion to rvalues");
    cb_ = detail::start_fiber(fiber_options{}, true, __builtin_return_address(0),
                              std::forward<F>(f), std::forward<Args>(args)...);
  }

  // The same, with a name, a stack size, a stop token...
  template <class F, class... Args>
  [[gnu::noinline]] fiber(const fiber_options& options, F&& f, Args&&... args) {
    static_assert(std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>,
                  "spindle::fiber arguments must be invocable after conversion to rvalues");
    cb_ = detail::start_fiber(options, true, __builtin_return_address(0), std::forward<F>(f),
                              std::forward<Args>(args)...);
  }

  // Calls std::terminate() if joinable(), as std::thread does.
  ~fiber();

  fiber(const fiber&) = delete;
  fiber& operator=(const fiber&) = delete;
  fiber(fiber&& other) noexcept : cb_(std::exchange(other.cb_, nullptr)) {}
  // Calls std::terminate() if *this is joinable, as std::thread does.
  fiber& operator=(fiber&& other) noexcept;

  // joinable() tells whether the handle refers to a fiber that was neither
  // joined nor detached (it may have finished).
  bool joinable() const noexcept { return cb_ != nullptr; }

  // get_id() is the fiber's id, or id() when not joinable.
  id get_id() const noexcept;

  // get_name() is the name given in fiber_options ("" when not joinable).
  std::string get_name() const;

  // join() waits until the fiber has finished, then rethrows the exception
  // that escaped its function, if any. Parks a calling fiber; blocks a
  // calling plain thread. Throws std::system_error with
  // errc::invalid_argument when not joinable, and with
  // errc::resource_deadlock_would_occur when a fiber joins itself.
  void join();

  // detach() lets the fiber run on unobserved. Throws std::system_error
  // with errc::invalid_argument when not joinable.
  void detach();

  void swap(fiber& other) noexcept { std::swap(cb_, other.cb_); }

  // hardware_concurrency() is the number of hardware threads, the default
  // number of workers.
  static unsigned hardware_concurrency() noexcept;

 private:
  friend struct detail::fiber_factory;
  detail::control_block* cb_ = nullptr;
};

inline void swap(fiber& a, fiber& b) noexcept { a.swap(b); }

namespace detail {
// fiber_factory is the way in for spindle::jthread (fiber/jthread.h),
// which is a fiber handle with a stop source: it spawns with the site its
// own noinline constructor saw, and its destructor joins without a cancel
// point. Not for users.
struct fiber_factory {
  template <class F, class... Args>
  static fiber make(const fiber_options& options, const void* site, F&& f, Args&&... args) {
    fiber result;
    result.cb_ = start_fiber(options, true, site, std::forward<F>(f), std::forward<Args>(args)...);
    return result;
  }
  // join_uncancellable() is fiber::join() that no stop request on the
  // calling fiber's token ends (for a destructor). `f` must be joinable
  // and not the calling fiber.
  static void join_uncancellable(fiber& f) {
    (void)join(f.cb_, /*cancellable=*/false);
    std::exception_ptr e = std::move(f.cb_->exception_);
    std::exchange(f.cb_, nullptr)->release();
    if (e) std::rethrow_exception(e);
  }
  static control_block* block_of(const fiber& f) noexcept { return f.cb_; }
};
}  // namespace detail

namespace detail {
// fiber_id_maker makes the id of a fiber's number (sched/ knows the numbers).
struct fiber_id_maker {
  static fiber::id make(std::uint64_t value) noexcept { return fiber::id(value); }
};
}  // namespace detail

// go() starts a detached fiber, like Go's `go f(args...)`: fire and forget.
// An exception escaping it terminates the program with a message naming the
// fiber. Throws as fiber's constructor does. Any thread.
template <class F, class... Args>
  requires(!std::is_same_v<std::remove_cvref_t<F>, fiber_options>)
[[gnu::noinline]] void go(F&& f, Args&&... args) {
  static_assert(std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>,
                "spindle::go arguments must be invocable after conversion to rvalues");
  (void)detail::start_fiber(fiber_options{}, false, __builtin_return_address(0),
                            std::forward<F>(f), std::forward<Args>(args)...);
}

// The same, with a name, a stack size, a stop token...
template <class F, class... Args>
[[gnu::noinline]] void go(const fiber_options& options, F&& f, Args&&... args) {
  static_assert(std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>,
                "spindle::go arguments must be invocable after conversion to rvalues");
  (void)detail::start_fiber(options, false, __builtin_return_address(0), std::forward<F>(f),
                            std::forward<Args>(args)...);
}

inline bool operator==(fiber::id a, fiber::id b) noexcept { return a.value() == b.value(); }
inline std::strong_ordering operator<=>(fiber::id a, fiber::id b) noexcept {
  return a.value() <=> b.value();
}
template <class CharT, class Traits>
std::basic_ostream<CharT, Traits>& operator<<(std::basic_ostream<CharT, Traits>& os, fiber::id i) {
  if (i.value() != 0) return os << i.value();
  for (const char c : std::string_view("fiber::id of a non-fiber")) os << os.widen(c);
  return os;
}

// spindle::thread is spindle::fiber, so that code written against
// std::thread ports by changing the namespace.
using thread = fiber;

}  // namespace spindle

template <>
struct std::hash<spindle::fiber::id> {
  std::size_t operator()(spindle::fiber::id i) const noexcept {
    return std::hash<std::uint64_t>{}(i.value());
  }
};
