// The fiber dump (spindle::dump_fibers, sched/debug.h) and the dump on a
// signal (sched/detail/dump.h).
//
// How it looks at fibers. Nothing is stopped: for_each_fiber() (fiber/
// detail/inspect.h) visits each live fiber with a reference held, and
// what a fiber shows is read from its control block's atomics, so a fiber
// that moves on meanwhile is shown as it was at one moment. The stack of
// a parked fiber is copied (snapshot_parked(), which checks that the
// fiber stayed parked while it copied) and unwound from the copy
// (symbolize.h), never from the live stack.
//
// The layout follows what makes a dump of 100,000 fibers readable, as Go's
// goroutine profile does: first one summary line (counts by state and by
// wait reason); then the distinct stacks of parked fibers, each once with
// how many fibers share it and which (most shared first); then the fibers
// by id, each pointing at its stack by number. Past
// dump_options::max_listed fibers the listing is one line per fiber.
//
//   spindle: 4 fibers: 1 running, 0 runnable, 3 parked (2 channel recv, 1 mutex)
//   --- stack 1: 2 fibers parked on channel recv: ids 5, 6
//       #0 spindle::detail::worker::park_commit(...) at sched/detail/worker.cpp:612
//       ...
//   --- fiber 1 "main": running on worker 0
//   --- fiber 5: parked (channel recv 0x7f3a5c0010a0) for 1.2 s, stack 1
//       spawned at serve() at server.cpp:40
//
// Costs and locks. The dump takes the runtimes' lock only to list the
// workers (which pointer is worker N): spawns from plain threads take that
// lock, and a dump must not stall them while it unwinds and formats. It
// holds the symbolizer's own lock throughout (two dumps at once take
// turns), allocates, and never parks: a fiber that dumps holds its worker
// for the dump's time (tens of ms for 100,000 fibers).
//
// The signal. A handler may do little: it writes one byte to a pipe, and a
// thread of ours that waits on the pipe writes the dump. The write end is
// non-blocking: a storm of signals fills the pipe and the surplus is
// dropped (a dump is due anyway), rather than blocking in the handler.
#include "sched/detail/dump.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fiber/detail/inspect.h"
#include "fiber/lock_holder.h"
#include "sched/debug.h"
#include "sched/detail/runtime.h"
#include "sched/detail/symbolize.h"

namespace spindle::detail {
namespace {

// The deepest stack shown; deeper ones end with "...". Fibers rarely nest
// calls this deep, and unwinding costs per frame.
constexpr std::size_t max_frames = 48;
// Ids listed in a stack group's header before "... (N more)".
constexpr std::size_t max_ids_per_group = 10;

// ---- What is collected ----

enum class shown_state : std::uint8_t { running, runnable, parked };

struct fiber_row {
  std::uint64_t id = 0;
  std::string name;
  shown_state state = shown_state::runnable;
  int worker = -1;  // index, while running
  unsigned runtime = 0;
  bool pinned = false;
  wait_reason reason = wait_reason::none;
  const void* object = nullptr;
  std::int64_t arg = 0;
  std::int64_t deadline = 0;  // steady_clock counts; 0: none
  std::int64_t since = 0;
  const void* spawn_site = nullptr;
  int stack = -1;  // index into the groups, once numbered
};

struct stack_group {
  std::vector<std::uintptr_t> pcs;
  std::vector<std::uint64_t> ids;
  std::array<std::size_t, static_cast<std::size_t>(wait_reason::count_)> reasons{};
};

struct pcs_hash {
  std::size_t operator()(const std::vector<std::uintptr_t>& v) const noexcept {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a over the words
    for (std::uintptr_t pc : v) h = (h ^ pc) * 1099511628211ull;
    return static_cast<std::size_t>(h);
  }
};

struct worker_ref {
  const void* w;
  unsigned index;
  unsigned runtime;
};

struct collector {
  const dump_options* options;
  symbolize_session* symbols;
  std::vector<worker_ref> workers;
  unsigned runtimes = 0;
  std::vector<fiber_row> rows;
  std::vector<stack_group> groups;
  std::unordered_map<std::vector<std::uintptr_t>, std::size_t, pcs_hash> group_of;
  stack_snapshot snapshot;            // reused: one copy at a time
  std::vector<std::uintptr_t> pcs;    // likewise
};

void list_workers(runtime& rt, void* arg) {
  auto* c = static_cast<collector*>(arg);
  for (unsigned i = 0; i < rt.slot_count(); ++i) {
    c->workers.push_back({&rt.worker_at(i), i, c->runtimes});
  }
  ++c->runtimes;
}

void set_worker(const collector& c, const control_block* cb, fiber_row* row) {
  const void* w = racy_worker(cb);  // compared, never dereferenced
  for (const worker_ref& ref : c.workers) {
    if (ref.w == w) {
      row->worker = static_cast<int>(ref.index);
      row->runtime = ref.runtime;
      return;
    }
  }
}

void collect(control_block* cb, void* arg) {
  auto& c = *static_cast<collector*>(arg);
  fiber_row row;
  row.id = cb->id_;
  row.name = cb->name_;
  row.spawn_site = cb->spawn_site_;
  fiber_state state = cb->state_.load(std::memory_order_acquire);
  if (state == fiber_state::parked) {
    row.state = shown_state::parked;
    row.reason = cb->wait_reason_.load(std::memory_order_relaxed);
    row.object = cb->wait_object_.load(std::memory_order_relaxed);
    row.arg = cb->wait_arg_.load(std::memory_order_relaxed);
    row.deadline = cb->wait_deadline_.load(std::memory_order_relaxed);
    row.since = cb->wait_since_.load(std::memory_order_relaxed);
    if (c.options->backtraces) {
      if (snapshot_parked(cb, &c.snapshot)) {
        c.pcs.clear();
        c.symbols->unwind(c.snapshot, &c.pcs, max_frames);
        auto [it, inserted] = c.group_of.try_emplace(c.pcs, c.groups.size());
        if (inserted) c.groups.push_back({c.pcs, {}, {}});
        stack_group& g = c.groups[it->second];
        g.ids.push_back(row.id);
        ++g.reasons[static_cast<std::size_t>(row.reason)];
        row.stack = static_cast<int>(it->second);
      } else {
        // It woke while we looked (or its saved context looked wrong):
        // show what it does now.
        state = cb->state_.load(std::memory_order_acquire);
      }
    }
  }
  switch (state) {
    case fiber_state::parked:
      row.state = shown_state::parked;
      break;
    case fiber_state::runnable:
      row = fiber_row{row.id, std::move(row.name), shown_state::runnable};
      row.spawn_site = cb->spawn_site_;
      break;
    case fiber_state::running:
    case fiber_state::parking:   // still on its worker, about to switch out
    case fiber_state::notified:  // likewise, and woken already
      row = fiber_row{row.id, std::move(row.name), shown_state::running};
      row.spawn_site = cb->spawn_site_;
      set_worker(c, cb, &row);
      break;
    case fiber_state::finished:
      return;
  }
  row.pinned = cb->pinned_ != 0 && row.state == shown_state::running;
  c.rows.push_back(std::move(row));
}

// ---- Words ----

void append_f(std::string* out, const char* fmt, auto... args) {
  char buf[160];
  const int n = std::snprintf(buf, sizeof buf, fmt, args...);
  if (n > 0) out->append(buf, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof buf - 1));
}

// "350 us", "12 ms", "4.2 s", "17 min", "3.5 h".
std::string duration_words(std::int64_t ns) {
  std::string s;
  if (ns < 0) ns = 0;
  const double sec = static_cast<double>(ns) / 1e9;
  if (ns < 1'000'000) {
    append_f(&s, "%lld us", static_cast<long long>(ns / 1000));
  } else if (ns < 1'000'000'000) {
    append_f(&s, "%lld ms", static_cast<long long>(ns / 1'000'000));
  } else if (sec < 120) {
    append_f(&s, "%.1f s", sec);
  } else if (sec < 7200) {
    append_f(&s, "%.0f min", sec / 60);
  } else {
    append_f(&s, "%.1f h", sec / 3600);
  }
  return s;
}

std::int64_t steady_now() {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::int64_t to_ns(std::int64_t ticks) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::duration(ticks))
      .count();
}

// What a parked fiber waits on, in words: "mutex 0x...", "read fd 12,
// deadline in 4.2 s", "join fiber 17", "select over 3 channels", ...
std::string wait_words(const fiber_row& r, std::int64_t now) {
  std::string s;
  const char* name = wait_reason_name(r.reason);
  switch (r.reason) {
    case wait_reason::none:
      s = "unknown wait";
      break;
    case wait_reason::select:
      append_f(&s, "select over %lld channel%s", static_cast<long long>(r.arg),
               r.arg == 1 ? "" : "s");
      break;
    case wait_reason::join:
      append_f(&s, "join fiber %lld", static_cast<long long>(r.arg));
      break;
    case wait_reason::sleep:
      if (r.deadline == 0) {
        s = "sleep";
      } else {
        s = "sleep until +" + duration_words(to_ns(r.deadline - now));
      }
      return s;
    case wait_reason::fd_read:
    case wait_reason::fd_write:
    case wait_reason::fd_close:
      append_f(&s, "%s fd %lld", name, static_cast<long long>(r.arg));
      break;
    case wait_reason::blocking_call:
    case wait_reason::blocking_queue:
    case wait_reason::signal:
      s = name;
      break;
    case wait_reason::shared_mutex:
      append_f(&s, "%s %p (%s)", name, r.object, r.arg != 0 ? "shared" : "exclusive");
      break;
    default:
      append_f(&s, "%s %p", name, r.object);
      break;
  }
  if (r.deadline != 0) {
    const std::int64_t left = to_ns(r.deadline - now);
    s += left >= 0 ? ", deadline in " + duration_words(left)
                   : ", deadline passed " + duration_words(-left) + " ago";
  }
  return s;
}

// ---- The text ----

// A frame's text; one with inlined calls is several lines, the later ones
// indented under the first.
void append_frame(std::string* out, const std::string& text) {
  for (std::size_t at = 0; at < text.size();) {
    std::size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    if (at != 0) *out += "        ";
    out->append(text, at, nl - at);
    *out += "\n";
    at = nl + 1;
  }
}

void write_summary(const collector& c, const symbolize_session& symbols, std::string* out) {
  std::size_t running = 0, runnable = 0, parked = 0;
  std::array<std::size_t, static_cast<std::size_t>(wait_reason::count_)> by_reason{};
  for (const fiber_row& r : c.rows) {
    switch (r.state) {
      case shown_state::running: ++running; break;
      case shown_state::runnable: ++runnable; break;
      case shown_state::parked:
        ++parked;
        ++by_reason[static_cast<std::size_t>(r.reason)];
        break;
    }
  }
  append_f(out, "spindle: %zu fiber%s: %zu running, %zu runnable, %zu parked", c.rows.size(),
           c.rows.size() == 1 ? "" : "s", running, runnable, parked);
  // Reasons, most common first (then in the enum's order).
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < by_reason.size(); ++i) {
    if (by_reason[i] != 0) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return by_reason[a] > by_reason[b]; });
  for (std::size_t k = 0; k < order.size(); ++k) {
    append_f(out, "%s%zu %s", k == 0 ? " (" : ", ", by_reason[order[k]],
             wait_reason_name(static_cast<wait_reason>(order[k])));
  }
  if (!order.empty()) *out += ")";
  *out += "\n";
  if (c.options->backtraces && !symbols.full()) {
    *out += "spindle: (no libdw: function names only)\n";
  }
}

void write_groups(const collector& c, const std::vector<std::size_t>& order,
                  symbolize_session& symbols, std::string* out) {
  for (std::size_t n = 0; n < order.size(); ++n) {
    const stack_group& g = c.groups[order[n]];
    append_f(out, "--- stack %zu: %zu fiber%s parked on ", n + 1, g.ids.size(),
             g.ids.size() == 1 ? "" : "s");
    bool first = true;
    for (std::size_t i = 0; i < g.reasons.size(); ++i) {
      if (g.reasons[i] == 0) continue;
      if (!first) *out += ", ";
      *out += wait_reason_name(static_cast<wait_reason>(i));
      if (g.reasons[i] != g.ids.size()) append_f(out, " (%zu)", g.reasons[i]);
      first = false;
    }
    *out += g.ids.size() == 1 ? ": id " : ": ids ";
    for (std::size_t i = 0; i < g.ids.size() && i < max_ids_per_group; ++i) {
      append_f(out, "%s%llu", i == 0 ? "" : ", ", static_cast<unsigned long long>(g.ids[i]));
    }
    if (g.ids.size() > max_ids_per_group) {
      append_f(out, ", ... (%zu more)", g.ids.size() - max_ids_per_group);
    }
    *out += "\n";
    if (g.pcs.empty()) *out += "    (no frames)\n";
    for (std::size_t i = 0; i < g.pcs.size(); ++i) {
      append_f(out, "    #%-2zu ", i);
      append_frame(out, symbols.describe(g.pcs[i]));
    }
    if (g.pcs.size() >= max_frames) *out += "    ...\n";
  }
}

void write_fiber(const collector& c, const fiber_row& r, bool full, std::int64_t now,
                 symbolize_session& symbols, std::string* out) {
  append_f(out, "%sfiber %llu", full ? "--- " : "", static_cast<unsigned long long>(r.id));
  if (!r.name.empty()) {
    *out += " \"";
    *out += r.name;
    *out += "\"";
  }
  switch (r.state) {
    case shown_state::running:
      *out += ": running";
      if (r.worker >= 0) {
        append_f(out, " on worker %d", r.worker);
        if (c.runtimes > 1) append_f(out, " of runtime %u", r.runtime);
      }
      if (r.pinned) *out += " (pinned)";
      break;
    case shown_state::runnable:
      *out += ": runnable";
      break;
    case shown_state::parked:
      *out += ": parked (" + wait_words(r, now) + ")";
      if (r.since != 0) *out += " for " + duration_words(to_ns(now - r.since));
      if (r.stack >= 0) append_f(out, ", stack %d", r.stack + 1);
      break;
  }
  *out += "\n";
  if (full && r.spawn_site != nullptr) {
    *out += "    spawned at ";
    append_frame(out, symbols.describe(reinterpret_cast<std::uintptr_t>(r.spawn_site) - 1));
  }
}

std::string dump_text(const dump_options& options) {
  symbolize_session symbols;
  collector c;
  c.options = &options;
  c.symbols = &symbols;
  // The workers first, under the runtimes' lock; the rest without it.
  with_runtimes(list_workers, &c);
  for_each_fiber(collect, &c);
  const std::int64_t now = steady_now();
  std::sort(c.rows.begin(), c.rows.end(),
            [](const fiber_row& a, const fiber_row& b) { return a.id < b.id; });

  // Stacks: most shared first, then by their lowest fiber id; numbered
  // in that order.
  for (stack_group& g : c.groups) std::sort(g.ids.begin(), g.ids.end());
  std::vector<std::size_t> order(c.groups.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const stack_group& ga = c.groups[a];
    const stack_group& gb = c.groups[b];
    if (ga.ids.size() != gb.ids.size()) return ga.ids.size() > gb.ids.size();
    return ga.ids.front() < gb.ids.front();
  });
  std::vector<int> number(c.groups.size());
  for (std::size_t n = 0; n < order.size(); ++n) number[order[n]] = static_cast<int>(n);
  for (fiber_row& r : c.rows) {
    if (r.stack >= 0) r.stack = number[static_cast<std::size_t>(r.stack)];
  }

  std::string out;
  out.reserve(256 + c.rows.size() * 80);
  write_summary(c, symbols, &out);
  write_groups(c, order, symbols, &out);
  const bool full = c.rows.size() <= options.max_listed;
  if (!full) {
    append_f(&out, "--- %zu fibers, one line each (more than max_listed = %zu):\n", c.rows.size(),
             options.max_listed);
  }
  for (const fiber_row& r : c.rows) write_fiber(c, r, full, now, symbols, &out);
  return out;
}

// ---- The signal ----

os_mutex g_signal_mu;
std::uint64_t g_installed SPINDLE_GUARDED_BY(g_signal_mu) = 0;  // bit n: signal n
bool g_thread_started SPINDLE_GUARDED_BY(g_signal_mu) = false;
// The pipe: written by the handler, read by the dump thread. Set before
// any handler is installed, never closed.
int g_pipe_read = -1;
std::atomic<int> g_pipe_write{-1};

void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t k = ::write(fd, p, n);
    if (k < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += k;
    n -= static_cast<std::size_t>(k);
  }
}

void on_dump_signal(int signo) {
  const int saved = errno;
  const auto byte = static_cast<unsigned char>(signo);
  (void)!::write(g_pipe_write.load(std::memory_order_relaxed), &byte, 1);
  errno = saved;
}

void dump_thread_main() {
  pthread_setname_np(pthread_self(), "spindle-dump");
  // The handlers run on other threads: this one only waits on the pipe.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  for (;;) {
    unsigned char signo = 0;
    const ssize_t n = ::read(g_pipe_read, &signo, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n != 1) return;  // cannot happen: the pipe is never closed
    const char* abbrev = sigabbrev_np(signo);
    std::string text = "spindle: fiber dump on signal " + std::to_string(signo);
    if (abbrev != nullptr) text += std::string(" (SIG") + abbrev + ")";
    text += "\n";
    try {
      text += dump_text(dump_options{});
    } catch (const std::exception& e) {
      text += std::string("spindle: the dump failed: ") + e.what() + "\n";
    }
    text += "spindle: end of fiber dump\n";
    // One write(2) loop on the descriptor, not std::cerr: nothing of ours
    // buffered in between, and whoever redirected fd 2 gets it.
    write_all(STDERR_FILENO, text.data(), text.size());
  }
}

bool start_dump_thread() SPINDLE_REQUIRES(g_signal_mu) {
  if (g_thread_started) return true;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  // Non-blocking for the handler; the thread's end blocks.
  ::fcntl(fds[1], F_SETFL, ::fcntl(fds[1], F_GETFL) | O_NONBLOCK);
  g_pipe_read = fds[0];
  g_pipe_write.store(fds[1], std::memory_order_relaxed);
  try {
    // Never exits: counted for good among Spindle's own threads (for the
    // deadlock check's census of threads).
    g_service_threads.fetch_add(1, std::memory_order_acq_rel);
    std::thread(dump_thread_main).detach();
  } catch (const std::system_error&) {
    g_service_threads.fetch_sub(1, std::memory_order_acq_rel);
    ::close(fds[0]);
    ::close(fds[1]);
    g_pipe_write.store(-1, std::memory_order_relaxed);
    return false;
  }
  g_thread_started = true;
  return true;
}

bool catchable(int signo) {
  return signo > 0 && signo < NSIG && signo < 64 && signo != SIGKILL && signo != SIGSTOP;
}

// Parses a signal number or name ("3", "SIGQUIT", "quit"); 0 if it is none.
int parse_signal(const char* text) {
  if (text[0] >= '0' && text[0] <= '9') {
    char* end = nullptr;
    errno = 0;
    const long n = std::strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || !catchable(static_cast<int>(n))) return 0;
    return static_cast<int>(n);
  }
  const char* name = strncasecmp(text, "SIG", 3) == 0 ? text + 3 : text;
  for (int signo = 1; signo < NSIG; ++signo) {
    const char* abbrev = sigabbrev_np(signo);
    if (abbrev != nullptr && strcasecmp(abbrev, name) == 0) return catchable(signo) ? signo : 0;
  }
  return 0;
}

}  // namespace

std::string dump_to_string() { return dump_text(dump_options{}); }

void install_dump_signal(int signo) {
  if (!catchable(signo)) return;
  lock_holder lock(g_signal_mu);
  const std::uint64_t bit = std::uint64_t{1} << signo;
  if ((g_installed & bit) != 0) return;
  if (!start_dump_thread()) return;
  struct sigaction sa{};
  sa.sa_handler = on_dump_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  tsan_watch_signals();  // before the handler can run (fiber/detail/sanitizer.h)
  if (::sigaction(signo, &sa, nullptr) != 0) return;
  g_installed |= bit;
}

int dump_signal_from_env() {
  const char* value = std::getenv("SPINDLE_DUMP_SIGNAL");
  if (value == nullptr || value[0] == '\0') return 0;
  const int signo = parse_signal(value);
  if (signo == 0) {
    std::fprintf(stderr,
                 "spindle: ignoring SPINDLE_DUMP_SIGNAL=\"%s\": not a signal number or name "
                 "that can be caught\n",
                 value);
  }
  return signo;
}

}  // namespace spindle::detail

namespace spindle {

void dump_fibers(std::ostream& out) { dump_fibers(out, dump_options{}); }

void dump_fibers(std::ostream& out, const dump_options& options) {
  const std::string text = detail::dump_text(options);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.flush();
}

}  // namespace spindle
