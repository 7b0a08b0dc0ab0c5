// The context switch as inline assembly, so that it can sit in the frame
// of the code that switches. Internal; included by fiber/detail/context.h
// and by the public fiber/this_fiber.h (for yield()'s inline fast path).
// It names Boost.Context's jump_fcontext symbol but includes none of its
// headers.
#pragma once

namespace spindle::detail {

#if defined(__x86_64__) && defined(__ELF__) && !defined(SPINDLE_CALL_JUMP_FCONTEXT)
#define SPINDLE_INLINE_SWITCH 1

// What a switch returns: the context that jumped back to us (its saved
// stack pointer) and the word it passed (Boost.Context's transfer_t).
struct jump_result {
  void* fctx;
  void* data;
};

// jump_inline() suspends the calling context and resumes the context `to`
// (a saved stack pointer), passing `data`; returns when some context jumps
// back.
//
// It enters jump_fcontext with a jmp after pushing its own return address,
// instead of a call. jump_fcontext leaves by an indirect jmp, not a ret, so
// a call into it pushes an entry on the CPU's return stack buffer that
// nothing pops: every ret the resumed context makes afterwards is predicted
// from an entry one off, and mispredicts (two per yield, a third of its
// cost; measured with bench/fiber/fiber_bench.cpp). Entered by jmp, the
// switch leaves the return stack as it was.
[[gnu::always_inline]] inline jump_result jump_inline(void* to, void* data) noexcept {
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
  return jump_result{fctx, out};
}
#endif

}  // namespace spindle::detail
