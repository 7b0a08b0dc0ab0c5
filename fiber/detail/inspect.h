// Looking at fibers from outside: how the fiber dump, the deadlock check
// and the statistics (sched/debug.h) see every fiber of the process
// while it runs, without stopping it and without a list that spawning and
// finishing would have to lock.
//
// Where the fibers are. Every fiber lives at the top of a stack, and every
// stack ever mapped is listed (mapped_stacks(); stacks are never
// unmapped), with a header that names the fiber on it (stack_header::live
// in control_block.h). Spawning publishes the fiber there with one store,
// finishing clears it with another: nothing else on the hot paths.
//
// Holding one. A reader that found a fiber in a header takes a reference
// with a compare-and-swap that never resurrects a count that reached
// zero. Between reading the header and that reference the reader is
// counted in g_inspectors, and the last release of a fiber's control
// block waits while any reader is in that window (control_block::
// destroy()), so the reader never touches a control block whose memory
// went back to the pool. The finishing fiber clears the header before an
// atomic exchange (on joiner_), and the last release is an atomic
// decrement after it: with the reader's own atomic increment of
// g_inspectors before it reads the header, a reader that still sees the
// fiber is one that the release sees counted.
//
// Its stack. A parked fiber's stack does not change while it stays
// parked, and every park changes wait_seq_: a copy taken between two
// readings of (state parked, same wait_seq_) is a consistent picture of
// it. Copies are made word by word from the stack's own memory, which
// stays mapped; nothing read from a copy is ever dereferenced.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fiber/detail/control_block.h"

namespace spindle::detail {

// for_each_fiber() calls fn(cb, arg) for every fiber that has started
// (spawned) and not finished, holding a reference to it for the call.
// Fibers that start or finish meanwhile may or may not be seen. fn may
// read cb's immutable fields (id_, name_, stack_, spawn_site_) and its
// atomics; everything else through the racy_* readers below. Any thread.
void for_each_fiber(void (*fn)(control_block* cb, void* arg), void* arg);

// all_fibers() tells whether pred(cb, arg) holds for every fiber that has
// started and not finished, stopping at the first that fails it; pred runs
// with a reference held and must be quick (it runs under the lock that
// spawning takes to map a new stack, and the list is not copied). For
// checks that usually fail early (the deadlock check). Any thread. A fiber
// that finishes while pred looks at it ends the walk (false), and sets
// *interrupted: the answer is then "not known now", not "no".
bool all_fibers(bool (*pred)(const control_block* cb, void* arg), void* arg,
                bool* interrupted);

// The registers a switched-out fiber resumes with, as Boost.Context's
// jump_fcontext saved them (x86-64 System V: rip, rsp and the
// callee-saved ones), and a copy of its stack from rsp up to its control
// block.
struct stack_snapshot {
  std::uintptr_t rip = 0, rsp = 0, rbp = 0, rbx = 0, r12 = 0, r13 = 0, r14 = 0, r15 = 0;
  // The copy covers [rsp, rsp + bytes.size()) of the original stack.
  std::vector<std::uint64_t> words;
  std::uintptr_t begin() const noexcept { return rsp; }
  std::uintptr_t end() const noexcept { return rsp + words.size() * sizeof(std::uint64_t); }
  // The word at `addr` of the original stack, if the copy has it.
  bool read(std::uintptr_t addr, std::uint64_t* out) const noexcept;
};

// snapshot_parked() copies the stack of `cb` (held by the caller) if it is
// parked and stays parked while the copy is made; false otherwise (it was
// running, runnable, or woke meanwhile). At most max_bytes are copied.
bool snapshot_parked(const control_block* cb, stack_snapshot* out,
                     std::size_t max_bytes = 64 * 1024);

// Racy reads of fields that the fiber's worker writes without atomics
// (which worker it is on). Only for diagnostics: the value may be stale.
const void* racy_worker(const control_block* cb) noexcept;
const void* racy_load_pointer(const void* const* p) noexcept;

// hold_fiber_at() takes a reference to the fiber whose control block is at
// `candidate`, an address read racily (a worker's current fiber), if a
// fiber lives there now: true, and the caller must release() it. The
// candidate is never dereferenced unless it is the live fiber of a mapped
// stack. Costs a walk of the list of stacks. Any thread.
bool hold_fiber_at(const void* candidate, control_block** out);

}  // namespace spindle::detail
