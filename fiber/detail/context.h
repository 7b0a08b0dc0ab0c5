// The one place Spindle touches Boost.Context: a continuation type and a
// way to create one on a Spindle stack. Only scheduler sources include this
// header; public headers never do, so users do not compile Boost.Context.
//
// Debian's Boost 1.74 builds boost::context::fiber on the fcontext assembly
// backend: resume() costs the same 6-7 ns as a raw jump_fcontext, so there is
// nothing to gain from going below the public API.
#pragma once

#include <boost/context/fiber.hpp>

#include <memory>
#include <new>
#include <utility>

#include "fiber/detail/control_block.h"
#include "fiber/detail/stack.h"

namespace spindle::detail {

// A suspended execution context. resume() switches to it and returns the
// continuation of whoever switched back to us (empty when that context
// ended). See sched/detail/worker.cpp for how Spindle uses the result.
using continuation = boost::context::fiber;

// Boost.Context's StackAllocator concept over one pre-allocated Spindle
// stack. Boost keeps a copy in the fiber's record and calls deallocate()
// when the fiber's function has returned, on the stack of the context it
// switches to; that puts the stack back in Spindle's pool.
class stack_allocator {
 public:
  explicit stack_allocator(const stack& s) noexcept : stack_(s) {}

  boost::context::stack_context allocate() noexcept {
    boost::context::stack_context sc;
    sc.size = stack_.size();
    sc.sp = stack_.top();
    return sc;
  }

  void deallocate(boost::context::stack_context&) noexcept { release_stack(stack_); }

 private:
  stack stack_;
};

// make_continuation() creates a suspended context on `s` that runs
// fn(continuation&& caller) -> continuation when first resumed. On return the
// context ends and switches to the returned continuation.
template <class Fn>
continuation make_continuation(const stack& s, Fn&& fn) {
  return continuation(std::allocator_arg, stack_allocator(s), std::forward<Fn>(fn));
}

static_assert(sizeof(continuation) == sizeof(control_block::ctx_storage_) &&
              alignof(continuation) <= alignof(void*));

// context_of() is the continuation stored in a control block (constructed
// by the control_block constructor, destroyed by its destructor).
inline continuation& context_of(control_block* cb) noexcept {
  return *std::launder(reinterpret_cast<continuation*>(cb->ctx_storage_));
}

}  // namespace spindle::detail
