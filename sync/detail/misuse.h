// How sync/ reports a caller's bug: a precondition broken (sync_misuse),
// or a primitive destroyed while fibers wait on it. Internal.
#pragma once

#include <cstddef>

namespace spindle::detail {

// sync_misuse() reports a broken precondition that std leaves undefined (an
// unlock() by a non-owner, a semaphore released past max(), a latch counted
// below zero): it prints "spindle: <message>" to stderr and aborts, in every
// build type.
[[noreturn, gnu::cold]] void sync_misuse(const char* message) noexcept;

// Who waits, for the message: a count and what they are ("receivers").
struct waiting_count {
  std::size_t n = 0;
  const char* who = nullptr;  // null: not reported
};

// destroyed_while_waited_on() is what the destructor of a primitive that
// has its waiters in hand (a queue or a count) calls when it finds some:
// destroying it then is the caller's bug (std makes it undefined for its
// own types). While a spindle::run() runtime runs, whose fibers it would
// leave parked for ever (and run() with them), it prints
//
//   spindle: channel 0x5581... destroyed while fibers wait on it
//   (1 receivers, 0 senders); close() it and let them leave first
//
// (on one line) to stderr and aborts, in every build type. Otherwise (the
// waiters are the default runtime's fibers or plain threads, typically a
// static destroyed at exit while a detached thread still waits on it) it
// returns, and the waiters stay parked for good, as a plain thread on a
// std::condition_variable would: code ported from std keeps exiting
// quietly. `what` names the type, `object` is its address, `advice` says
// what to do instead.
[[gnu::cold]] void destroyed_while_waited_on(const char* what, const void* object,
                                             waiting_count first, waiting_count second,
                                             const char* advice) noexcept;

}  // namespace spindle::detail
