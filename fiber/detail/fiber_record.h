// The heap record of a fiber: its control block plus the callable and
// arguments it runs, in one allocation.
#pragma once

#include <exception>
#include <functional>
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

}  // namespace spindle::detail
