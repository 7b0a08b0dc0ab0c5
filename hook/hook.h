// spindle::hook: unmodified blocking code parks the fiber instead of the
// worker. Link the `spindle::hook` target (CMake) into a program, and
// libc's blocking socket, pipe, poll, sleep and resolver calls made on a
// fiber (by the program or by any library it uses: hiredis, libpq,
// libcurl) park that fiber on Spindle's netpoll and timers while the
// worker runs other fibers. On a plain thread they behave as without the
// hook. docs/hook.md has the list of calls, what each does, and what
// stays out of reach.
//
// This header is optional: linking the target is what installs the hooks.
#pragma once

#include <cstddef>

namespace spindle::hook {

// linked() says whether the hooks are in the program: true when this
// library's read() is the one the program's calls reach (a build that
// dropped the archive's members, or a static program, says false).
bool linked() noexcept;

// tracing() says whether SPINDLE_HOOK_TRACE is set in the environment:
// then each hooked call that a fiber makes and the hook cannot park (a
// tty, a CPU-time clock, a descriptor the netpoll refuses) is reported
// on stderr with the descriptor and the caller's address.
bool tracing() noexcept;

// parked_calls() is the number of hooked calls parked now, all fibers
// together: for a test that must know a fiber has parked in one (a read,
// a poll, a sleep) before it wakes it.
std::size_t parked_calls() noexcept;

}  // namespace spindle::hook
