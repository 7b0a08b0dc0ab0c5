// The one place Spindle touches Boost.Context: creating an execution
// context on a Spindle stack and jumping between contexts. Only scheduler
// sources include this header; public headers never do, so users do not
// compile Boost.Context.
//
// Spindle uses Boost.Context's fcontext layer (make_fcontext/jump_fcontext,
// the assembly that boost::context::fiber is built on) rather than
// boost::context::fiber itself. Measured on the project's 2-vCPU VM
// (bench/fiber/fiber_bench.cpp, BM_ContextCreate*): a fiber's
// create+run+exit costs 41 ns through boost::context::fiber and 23 ns through
// fcontext, because the fiber constructor jumps into the new context and
// back just to hand over its record, and its exit runs an extra ontop
// function. Switching costs the same either way. Spindle has its own
// record (the control block) and its own exit protocol (the target of the
// last switch releases the stack), so the fiber wrapper only added cost.
#pragma once

#include <boost/context/detail/fcontext.hpp>

#include <cstddef>

#include "fiber/detail/inline_switch.h"

namespace spindle::detail {

// A suspended execution context: the stack pointer of a context that
// jumped away (Boost.Context's fcontext_t).
using context_t = boost::context::detail::fcontext_t;
using transfer_t = boost::context::detail::transfer_t;

// make_context() prepares a context on the stack [sp - size, sp) that runs
// entry(transfer) when first jumped to; transfer.fctx is the context that
// jumped, transfer.data what it passed. entry must never return: it ends
// by jumping away for good.
inline context_t make_context(void* sp, std::size_t size, void (*entry)(transfer_t)) noexcept {
  return boost::context::detail::make_fcontext(sp, size, entry);
}

// jump() suspends the calling context and resumes `to`, passing `data`.
// Returns when some context jumps back, with that context. On x86-64 the
// switch is inline (fiber/detail/inline_switch.h says why).
inline transfer_t jump(context_t to, void* data) noexcept {
#if SPINDLE_INLINE_SWITCH
  const jump_result r = jump_inline(to, data);
  return transfer_t{r.fctx, r.data};
#else
  return boost::context::detail::jump_fcontext(to, data);
#endif
}

}  // namespace spindle::detail
