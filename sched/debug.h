// Looking inside a running program: the fiber dump and the runtime's
// statistics. How to use them on a stuck server: docs/operability.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace spindle {

// ---- The fiber dump ----

struct dump_options {
  // A symbolized backtrace of each parked fiber's own stack (function, and
  // file:line where the program has debug information). Symbols come from
  // libdw (elfutils) when the system has libdw.so.1, else from the dynamic
  // symbol table (function names only).
  bool backtraces = true;
  // Past this many fibers, the dump lists fibers one line each, without
  // their spawn sites, after the summary and the grouped stacks.
  std::size_t max_listed = 1000;
};

// dump_fibers() writes every fiber of the process to `out`: first a summary
// (counts by state and by what they wait on), then the distinct stacks of
// parked fibers, each once with how many fibers share it (as Go's
// goroutine profile groups them), then each fiber: its id, name, state
// (running on worker N, runnable, parked), what it waits on in words
// ("mutex 0x...", "channel recv 0x...", "read fd 12, deadline in 4.2 s",
// "join fiber 17", ...), for how long, which stack, and where it was
// spawned. Any thread, while the runtime runs: fibers are looked at
// without stopping them (a fiber that changes state meanwhile is shown as
// it was at some moment of the dump). From a fiber, it holds its worker
// for the dump's length (~110 ms for 100,000 fibers). docs/operability.md
// shows an example.
void dump_fibers(std::ostream& out);
void dump_fibers(std::ostream& out, const dump_options& options);

// ---- Statistics ----

// Counters of one worker since its runtime started. Cheap enough to be
// always on: each worker counts its own, and runtime_stats() sums them.
struct worker_stats {
  std::uint64_t switches = 0;  // context switches to a fiber
  std::uint64_t steals = 0;    // fibers taken from other workers' queues
  std::chrono::nanoseconds idle{0};  // asleep in its loop, waiting for work
  // The longest time one fiber ran on it without switching, as the
  // runtime's monitor saw it: it samples every 10 ms while a worker is
  // busy, so this is a lower bound, coarse by 10 ms, and shorter runs are
  // not seen (docs/operability.md).
  std::chrono::nanoseconds longest_run{0};
};

struct runtime_statistics {
  unsigned workers = 0;
  // Fibers that have started and not finished, of every runtime in the
  // process, and how many of them are runnable (queued), running and
  // parked, with the parked ones by reason (the words of the dump).
  std::size_t fibers = 0;
  std::size_t runnable = 0;
  std::size_t running = 0;
  std::size_t parked = 0;
  std::vector<std::pair<std::string, std::size_t>> parked_by_reason;
  std::vector<worker_stats> per_worker;
  // Forward progress (runtime_options::max_spare_workers): spare worker
  // threads running now, workers the monitor last saw held by one fiber
  // (20-30 ms without a switch), and spares started since the runtime
  // began.
  unsigned spare_workers = 0;
  unsigned held_workers = 0;
  std::uint64_t spares_started = 0;
  // The blocking pool (sched/blocking.h): threads, calls queued, calls
  // waiting for room in the queue, calls made.
  std::size_t blocking_threads = 0;
  std::size_t blocking_queued = 0;
  std::size_t blocking_waiting_room = 0;
  std::uint64_t blocking_calls = 0;
  // Descriptors registered with the netpoll.
  std::size_t netpoll_descriptors = 0;
};

// runtime_stats() takes the statistics of the spindle::run() runtime that
// is running (else the default runtime, else all zero). The fiber counts
// walk every fiber (every stack ever mapped); the counters are read without
// stopping anyone. Any thread.
runtime_statistics runtime_stats();

}  // namespace spindle
