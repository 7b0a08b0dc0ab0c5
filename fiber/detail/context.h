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

// Boost.Context's StackAllocator concept over the part of a fiber's stack
// below its control block (which sits at the top, see control_block.h).
// Boost puts its own record just below that. deallocate() does nothing:
// the stack belongs to the control block and goes back to the pool with
// its last reference.
class stack_allocator {
 public:
  explicit stack_allocator(const control_block* cb) noexcept : cb_(cb) {}

  boost::context::stack_context allocate() noexcept {
    boost::context::stack_context sc;
    sc.sp = const_cast<control_block*>(cb_);  // the usable stack ends here
    sc.size = static_cast<std::size_t>(reinterpret_cast<const char*>(cb_) - cb_->stack_.limit());
    return sc;
  }

  void deallocate(boost::context::stack_context&) noexcept {}

 private:
  const control_block* cb_;
};

// make_continuation() creates a suspended context on cb's stack that runs
// fn(continuation&& caller) -> continuation when first resumed.
template <class Fn>
continuation make_continuation(const control_block* cb, Fn&& fn) {
  return continuation(std::allocator_arg, stack_allocator(cb), std::forward<Fn>(fn));
}

static_assert(sizeof(continuation) == sizeof(control_block::ctx_storage_) &&
              alignof(continuation) <= alignof(void*));

// context_of() is the continuation stored in a control block (constructed
// by the control_block constructor, destroyed by its destructor).
inline continuation& context_of(control_block* cb) noexcept {
  return *std::launder(reinterpret_cast<continuation*>(cb->ctx_storage_));
}

}  // namespace spindle::detail
