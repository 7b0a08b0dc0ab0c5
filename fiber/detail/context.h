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
// Returns when some context jumps back, with that context.
//
// On x86-64 it enters jump_fcontext with a jmp after pushing its own
// return address, instead of a call. jump_fcontext leaves by an indirect
// jmp, not a ret, so a call into it pushes an entry on the CPU's return
// stack buffer that nothing pops: every ret the resumed context makes
// afterwards is predicted from an entry one off, and mispredicts (two per
// yield, a third of its cost; measured with bench/fiber/fiber_bench.cpp).
// Entered by jmp, the switch leaves the return stack as it was, and the
// resumed context's returns are predicted from the suspended one's, which
// are the same when the two suspended at the same call sites.
inline transfer_t jump(context_t to, void* data) noexcept {
#if defined(__x86_64__) && defined(__ELF__) && !defined(SPINDLE_CALL_JUMP_FCONTEXT)
  void* fctx;
  void* out;
  asm volatile(
      "lea -128(%%rsp), %%rsp\n\t"  // keep clear of the red zone
      "lea 1f(%%rip), %%rax\n\t"
      "push %%rax\n\t"               // where jump_fcontext resumes us
      "jmp jump_fcontext@PLT\n\t"
      "1:\n\t"
      "lea 128(%%rsp), %%rsp\n\t"
      : "+D"(to), "+S"(data), "=a"(fctx), "=d"(out)
      :
      // Everything a call may change (jump_fcontext keeps the callee-saved
      // registers, MXCSR and the x87 control word of each context).
      : "rcx", "r8", "r9", "r10", "r11", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",
        "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "st",
        "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)",
#if defined(__AVX512F__)
        "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25",
        "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "k0", "k1", "k2", "k3", "k4", "k5",
        "k6", "k7",
#endif
        "cc", "memory");
  return transfer_t{fctx, out};
#else
  return boost::context::detail::jump_fcontext(to, data);
#endif
}

}  // namespace spindle::detail
