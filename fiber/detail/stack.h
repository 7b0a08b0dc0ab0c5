// Fiber stacks: mmap'd, lazily committed, guarded, pooled.
//
// Layout of one stack mapping (addresses grow to the right):
//
//   base                 limit()                                  top()
//   | guard (one page)   | usable stack, grows down from top()  ... |
//
// Memory is mapped with MAP_NORESERVE and committed by the kernel page by
// page as the fiber touches it, so a 256 KiB stack that a parked fiber uses
// 3 KiB of costs one page of RSS. Stacks are marked MADV_NOHUGEPAGE: with
// transparent huge pages a stack's first touch could commit 2 MiB.
//
// Guard pages and vm.max_map_count. An mprotect'd guard page splits the
// mapping, so each such stack costs two kernel VMAs, and the default limit of
// 65530 VMAs per process would stop a program at ~32k fibers (and then every
// mmap in the process fails, malloc and pthread_create included). So:
//   1. madvise(MADV_GUARD_INSTALL) (Linux 6.13+) installs a guard without
//      splitting the mapping: used whenever the kernel accepts it.
//   2. Otherwise mprotect guards, while their count stays within a budget of
//      a quarter of vm.max_map_count (half of the VMAs).
//   3. Past the budget, stacks have no guard page but a canary at limit(),
//      checked at every switch out of the fiber and when it finishes.
//
// Stacks are never unmapped: a released stack goes to a small LIFO pool of
// warm stacks (reused as they are) or, past that, its pages are returned to
// the kernel with MADV_DONTNEED and the address range is kept in a cold pool.
// Unmapping single stacks out of merged mappings would fragment them into
// many VMAs, which is exactly the limit the guards are careful about.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace spindle::detail {

// How a stack is protected against overflow.
enum class guard_kind : std::uint8_t {
  // A MADV_GUARD_INSTALL guard page below the stack; costs no extra VMA.
  madvise_guard,
  // A PROT_NONE page below the stack; costs a VMA, counted in the budget.
  mprotect_guard,
  // No guard page; a canary at limit() is checked at switches.
  canary,
};

// One fiber stack. A plain value: ownership passes by convention from
// allocate_stack() to the fiber and back through release_stack().
struct stack {
  char* base = nullptr;          // start of the mapping (guard page, if any)
  std::size_t mapping_size = 0;  // whole mapping, guard included
  std::size_t guard_size = 0;    // bytes of guard at base (0 for canary)
  guard_kind guard = guard_kind::canary;
  unsigned valgrind_id = 0;      // VALGRIND_STACK_REGISTER id (0 outside valgrind)

  char* limit() const noexcept { return base + guard_size; }  // lowest usable byte
  char* top() const noexcept { return base + mapping_size; }  // one past the highest
  std::size_t size() const noexcept { return mapping_size - guard_size; }
  explicit operator bool() const noexcept { return base != nullptr; }
};

// The default usable size of a fiber stack: enough for ordinary library
// code (iostreams, getaddrinfo's callers, regex) without thought. Only the
// pages a fiber touches are committed.
inline constexpr std::size_t default_stack_size = 256 * 1024;

// The smallest usable size handed out; smaller requests are rounded up.
// Boost.Context's record and Spindle's entry frames need about 1 KiB.
inline constexpr std::size_t min_stack_size = 16 * 1024;

// Bytes at limit() holding the canary of an unguarded stack.
inline constexpr std::size_t canary_size = 64;

// allocate_stack() returns a stack with at least `size` usable bytes
// (rounded up to whole pages, at least min_stack_size). Throws
// std::system_error when the address space is exhausted. Any thread.
stack allocate_stack(std::size_t size);

// release_stack() gives a stack back to the pool. Any thread.
void release_stack(const stack& s) noexcept;

// mapped_stacks() lists every stack mapped (and, outside tests that reset
// the guard policy, never unmapped): fibers' and pooled ones. Any thread.
std::vector<stack> mapped_stacks();
// visit_stacks() calls fn(s) for each of them, under the list's lock (fn
// must not map a stack: no spawning), until fn returns false; returns
// whether it went through them all. Any thread.
bool visit_stacks(bool (*fn)(const stack& s, void* arg), void* arg);

// canary_intact() tells whether an unguarded stack's canary is untouched;
// always true for guarded stacks.
bool canary_intact(const stack& s) noexcept;

// The guard policy in force, for tests and diagnostics.
guard_kind preferred_guard() noexcept;
std::size_t mprotect_guard_budget() noexcept;
std::size_t mprotect_guards_in_use() noexcept;

// For tests: force a guard policy for stacks mapped from now on (warm
// and cold pooled stacks keep theirs, so the pools are emptied of other
// kinds first), and set the mprotect budget. Not thread-safe against
// concurrent allocation.
void set_guard_policy_for_testing(guard_kind preferred, std::size_t mprotect_budget);
void reset_guard_policy_for_testing();

// Statistics of the process-wide pool, for tests and benchmarks.
struct stack_stats {
  std::size_t mapped;  // stacks ever mapped (never unmapped)
  // Handed out and not yet released (exact when no other thread is
  // allocating or releasing at the same moment).
  std::size_t in_use;
  // Of those, stacks of fibers left parked for ever by a deadlocked run()
  // (runtime_options::deadlock_action::throw_error): never released.
  std::size_t abandoned;
};
// count_abandoned_stack() counts one such stack. Any thread.
void count_abandoned_stack() noexcept;
stack_stats get_stack_stats() noexcept;

}  // namespace spindle::detail
