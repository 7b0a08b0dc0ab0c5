// The heap record of a fiber: its control block plus the callable and
// arguments it runs, in one allocation.
#pragma once

#include <exception>
#include <functional>
#include <new>
#include <optional>
#include <tuple>
#include <utility>

#include "fiber/detail/control_block.h"

namespace spindle::detail {

template <class Fn, class... Args>
class fiber_record final : public control_block {
 public:
  template <class F, class... A>
  explicit fiber_record(F&& f, A&&... args)
      : call_(std::in_place, std::forward<F>(f), std::forward<A>(args)...) {}

  // Invokes the callable as std::thread does (on rvalue copies), keeps an
  // escaping exception, then destroys the callable and its arguments here,
  // on the fiber. Spindle never unwinds a suspended fiber, so catching
  // everything cannot swallow Boost.Context's forced_unwind.
  void run() noexcept override {
    try {
      std::apply(
          [](Fn& fn, Args&... args) { std::invoke(std::move(fn), std::move(args)...); },
          *call_);
    } catch (...) {
      exception_ = std::current_exception();
    }
    call_.reset();
  }

 private:
  std::optional<std::tuple<Fn, Args...>> call_;
};

template <class F, class... Args>
using fiber_record_for = fiber_record<std::decay_t<F>, std::decay_t<Args>...>;

// make_record() builds the record of a fiber running f(args...) at the top
// of stack `s`; the record owns the stack from then on (released with the
// last reference). On a throw the stack is released.
template <class F, class... Args>
control_block* make_record(const stack& s, F&& f, Args&&... args) {
  using record = fiber_record_for<F, Args...>;
  void* at = record_address(s, sizeof(record), alignof(record));
  control_block* cb;
  try {
    cb = ::new (at) record(std::forward<F>(f), std::forward<Args>(args)...);
  } catch (...) {
    release_stack(s);
    throw;
  }
  cb->stack_ = s;
  return cb;
}

}  // namespace spindle::detail
