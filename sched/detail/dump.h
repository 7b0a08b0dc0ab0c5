// The fiber dump's internal entry points: as a string (for the deadlock
// report), and on a signal (runtime_options::dump_signal). The dump itself
// is spindle::dump_fibers() in sched/debug.h.
#pragma once

#include <string>

namespace spindle::detail {

// dump_to_string() is spindle::dump_fibers() into a string, with the
// default dump_options. Any thread; never parks.
std::string dump_to_string();

// install_dump_signal() makes `signo` write the fiber dump to stderr,
// headed "spindle: fiber dump on signal N (NAME)" and ended by
// "spindle: end of fiber dump"; the process goes on. The handler only
// writes a byte to a pipe (async-signal-safe); a background thread,
// "spindle-dump", started by the first call and never joined, writes the
// dump. A signal that comes while a dump is being written gives one more
// dump after it (signals beyond that may be merged). Replaces the
// signal's previous disposition. A second call for the same signal does
// nothing; signals that cannot be caught (SIGKILL, SIGSTOP) and numbers
// that are not signals are ignored. Any thread.
void install_dump_signal(int signo);

// dump_signal_from_env() reads SPINDLE_DUMP_SIGNAL: a signal number
// ("3"), or a name with or without "SIG" ("SIGQUIT", "QUIT", any case).
// 0 when the variable is unset or empty, and when its value is not a
// signal that can be caught; then it also prints a one-line warning to
// stderr.
int dump_signal_from_env();

}  // namespace spindle::detail
