// chat_loadgen: an IRC load generator on Spindle fibers, for
// bench/run_chat_bench.sh. It drives any IRC server (samples/chat's
// chat_server, ngircd) over plain RFC 1459 commands.
//
//   loadgen --port 6667 --clients 1000 --channels 10 --senders 100 --rate 10
//           [--seconds 10] [--warmup 2] [--drain 2] [--connect_rate 500]
//   loadgen --port 6667 --ramp 10,20,50,100 --seconds 5 ...
//   loadgen --port 6667 --clients 10000 --idle --seconds 20
//
// What it does. --clients clients connect, --connect_rate a second (a
// server with a short listen backlog, such as ngircd's 10, drops or
// refuses a burst; a refused or reset attempt is retried up to
// --connect_retries times), register as lg<i> (NICK, USER) and wait for
// 001 and the end of the MOTD (376 or 422). Client i joins #bench<i % K>
// and waits for its 366. Once every client is in, clients 0..M-1 (so the
// senders spread over the channels) each send
//   PRIVMSG #bench<c> :<sender> <seq> <time-ns>
// --rate times a second from a fiber of their own, paced by absolute time
// (message k of a sender is due at start + phase + k / rate, so the rate
// does not drift; each sender's phase is spread over the period). <time>
// is when the message went out (steady clock). How late each went out
// compared with when it was due is reported too (lag_p99_us): Spindle's
// timers wake up to a millisecond late (libev's epoll timeout), which
// would swamp loopback latencies if <time> were the due time; and a
// sender held up by a server that does not take its lines shows up there,
// and as a rate below the offered one. A sender more than --drain seconds
// behind gives up the rest of its schedule.
//
// Every client reads everything, answers PING with PONG, and for each
// PRIVMSG checks that each sender's sequence numbers arrive one after
// another (a gap, a late arrival that fills one, or a duplicate is
// counted) and records the latency (steady clock, one process, so one
// clock). Only messages sent inside the measurement window (after
// --warmup, for --seconds) count; after the window the generator waits
// up to --drain seconds for them all to arrive, then prints one line:
//
//   clients=1000 channels=10 senders=100 rate=10 seconds=10 registered=1000
//   sent=10000 expected_deliveries=990000 delivered=990000 offered_per_s=99000
//   msgs_per_s=99000 sent_per_s=1000 p50_us=.. p99_us=.. max_us=..
//   lag_p99_us=.. lost=0 out_of_order=0 dup=0 errors=0
//
// (one line; expected deliveries of a message: the members of its channel
// but the sender; msgs_per_s: deliveries of window messages per second of
// window). Exit status 1 on any loss, order error, duplicate or error.
//
// lost: deliveries expected but not arrived by the end of the drain; a
// server far behind makes them late rather than lost (the sequence
// checks tell: a message lost for good leaves a gap, counted in
// out_of_order, once a later one from the same sender arrives).
//
// --ramp 10,20,50: the same clients run one step per rate (each with its
// own warm-up, window and drain), a "step=<n> ..." line each, and stop
// after the first step that has errors, order errors or duplicates
// (stop=errors), whose p99 exceeds --ramp_max_p99_ms (p99), that leaves
// deliveries missing after the drain (lost), or that delivers less than
// --ramp_min_ratio of the offered rate (rate_below_offered); then
// "ramp_end steps=<n> stop=<why>" (why: one of those, or done). Overload
// is what a ramp looks for, so there the exit status is 1 only for order
// errors, duplicates or clients that failed to register or join.
//
// --idle: connect and register the clients (no channels), print
//   idle clients=N registered=R failed=F ready
// and hold them for --seconds or until SIGTERM/SIGINT, answering PINGs;
// then "idle done connected=C errors=E". Exit 1 if any failed.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "io/address.h"
#include "io/conn.h"
#include "io/signal.h"
#include "samples/chat/irc.h"
#include "sched/scheduler.h"
#include "sync/wait_group.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "server address (numeric, or a name)");
ABSL_FLAG(int, port, 6667, "server port");
ABSL_FLAG(int, clients, 1000, "clients to connect");
ABSL_FLAG(int, channels, 10, "channels #bench0..#bench<K-1>; client i joins #bench<i % K>");
ABSL_FLAG(int, senders, 100, "clients 0..M-1 send PRIVMSGs to their channel");
ABSL_FLAG(double, rate, 10, "messages a second per sender");
ABSL_FLAG(std::string, ramp, "",
          "comma-separated rates per sender, one measured step each (replaces --rate)");
ABSL_FLAG(double, ramp_max_p99_ms, 100, "a ramp stops after a step whose p99 exceeds this");
ABSL_FLAG(double, ramp_min_ratio, 0.9,
          "a ramp stops after a step that delivers less than this share of the offered rate");
ABSL_FLAG(double, seconds, 10, "measurement window (per step); --idle: how long to hold");
ABSL_FLAG(double, warmup, 2, "seconds of sending before the window (per step)");
ABSL_FLAG(double, drain, 2, "seconds to wait after the window for messages still in flight");
ABSL_FLAG(double, connect_rate, 500, "new connections a second");
ABSL_FLAG(int, connect_retries, 5, "retries of a refused or reset connection before registering");
ABSL_FLAG(double, register_timeout, 60, "seconds a client has to connect, register and join");
ABSL_FLAG(unsigned, workers, 1, "Spindle worker threads (0: one per hardware thread)");
ABSL_FLAG(bool, idle, false, "only connect and register the clients, then hold them");

namespace {

using std::chrono::steady_clock;
using ns = std::chrono::nanoseconds;

std::int64_t to_ns(steady_clock::time_point t) {
  return std::chrono::duration_cast<ns>(t.time_since_epoch()).count();
}
steady_clock::duration seconds_of(double s) {
  return std::chrono::duration_cast<steady_clock::duration>(std::chrono::duration<double>(s));
}

// A stack big enough for a client fiber: its 8 KiB read buffer and the
// line handling (only touched pages cost memory; 10,000 clients idle).
constexpr std::size_t client_stack = 64 * 1024;
constexpr std::size_t read_buffer = 8 * 1024;
// A gap in a sender's sequence larger than this is not remembered seq by
// seq (the late arrivals that would fill it then count as duplicates).
constexpr std::int64_t max_remembered_gap = 100000;
// Error messages printed to stderr at most (the count goes on).
constexpr int max_error_reports = 10;

// Latencies in nanoseconds, log-linear (as bench/io/loadgen.cpp): exact
// below 32, then 32 buckets per power of two (within ~3%). Counters are
// atomic so that the fibers of one worker (and, rarely, a late one of
// another) may add without a lock; each worker has its own copy, so the
// cache lines are not shared in the common case.
struct histogram {
  static constexpr std::size_t buckets = 64 * 32;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts{new std::atomic<std::uint64_t>[buckets]{}};
  std::atomic<std::uint64_t> max{0};

  static std::size_t index(std::uint64_t v) {
    if (v < 32) return v;
    const int e = 63 - __builtin_clzll(v);  // >= 5
    return std::size_t(e - 4) * 32 + ((v >> (e - 5)) & 31);
  }
  static double midpoint(std::size_t i) {
    if (i < 32) return double(i);
    const int e = int(i / 32) + 4;
    const double width = double(std::uint64_t(1) << (e - 5));
    return double(32 + i % 32) * width + width / 2;
  }
  void add(std::uint64_t v) {
    counts[index(v)].fetch_add(1, std::memory_order_relaxed);
    std::uint64_t m = max.load(std::memory_order_relaxed);
    while (v > m && !max.compare_exchange_weak(m, v, std::memory_order_relaxed)) {
    }
  }
};

// percentile() of the merged per-worker histograms, in nanoseconds.
double percentile(const std::vector<histogram>& hs, double p) {
  std::vector<std::uint64_t> all(histogram::buckets, 0);
  std::uint64_t total = 0;
  for (const histogram& h : hs)
    for (std::size_t i = 0; i < histogram::buckets; ++i) {
      const std::uint64_t c = h.counts[i].load(std::memory_order_relaxed);
      all[i] += c, total += c;
    }
  if (total == 0) return 0;
  const auto rank = std::uint64_t(p * double(total));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < all.size(); ++i)
    if ((seen += all[i]) > rank) return histogram::midpoint(i);
  return 0;
}

// One measurement step: the window of send times that count, and what
// happened to the messages sent in it. The window is set before the step's
// senders start and not changed after.
struct step {
  std::atomic<std::int64_t> start_ns{std::numeric_limits<std::int64_t>::max()};
  std::atomic<std::int64_t> end_ns{std::numeric_limits<std::int64_t>::min()};
  std::atomic<std::uint64_t> sent{0}, expected{0}, delivered{0};
  std::vector<histogram> latency;  // per worker: delivery latencies
  std::vector<histogram> lag;      // per worker: how late senders sent

  explicit step(unsigned workers) : latency(workers), lag(workers) {}
  bool contains(std::int64_t t) const {
    return t >= start_ns.load(std::memory_order_relaxed) && t < end_ns.load(std::memory_order_relaxed);
  }
};

struct client {
  int index = 0;
  int channel = -1;  // -1: none (--idle)
  spindle::connection conn;
  std::string partial;  // an incomplete line carried to the next read
  bool registered = false, motd_done = false, joined = false;
  // Gave up or was disconnected (counted as an error already). Set by the
  // client's fiber, read by main.
  std::atomic<bool> failed{false};
  // Per sender: the next sequence number expected from it.
  std::vector<std::int64_t> next_seq;
  // (sender, seq) skipped over by a gap, so that a late arrival is told
  // apart from a duplicate. Empty unless something went wrong.
  std::set<std::pair<int, std::int64_t>> missing;
};

// Everything the fibers share.
struct bench {
  std::string target;  // "host:port" for dial()
  std::optional<spindle::address> addr;
  int clients = 0, channels = 0, senders = 0;
  unsigned workers = 1;
  bool idle = false;
  int connect_retries = 0;
  steady_clock::duration register_timeout{};

  std::vector<std::unique_ptr<client>> all;
  std::vector<int> members;  // per channel, clients that joined it
  std::vector<std::unique_ptr<step>> steps;
  std::atomic<int> current_step{-1};
  std::atomic<bool> stopping{false};

  std::atomic<std::uint64_t> registered{0}, joined{0}, errors{0}, out_of_order{0}, dup{0};
  std::atomic<int> reports{0};

  spindle::wait_group ready;  // one per client: it is in (or gave up)
  spindle::wait_group alive;  // one per client fiber

  // error() counts an error and prints the first few.
  template <class... Parts>
  void error(const client& c, const Parts&... what) {
    errors.fetch_add(1, std::memory_order_relaxed);
    if (reports.fetch_add(1, std::memory_order_relaxed) < max_error_reports) {
      std::string line = chat::irc::cat("loadgen: lg", c.index, ": ", what...);
      std::fprintf(stderr, "%s\n", line.c_str());
    }
  }

  step* step_of(std::int64_t t) {
    for (int i = current_step.load(std::memory_order_acquire); i >= 0; --i)
      if (steps[std::size_t(i)]->contains(t)) return steps[std::size_t(i)].get();
    return nullptr;
  }
};

std::int64_t parse_int(std::string_view s) {
  std::int64_t v = -1;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() ? v : -1;
}

// A PRIVMSG's text "<sender> <seq> <time-ns>".
void on_privmsg(bench& b, client& c, std::string_view text, std::int64_t now) {
  const std::size_t s1 = text.find(' ');
  const std::size_t s2 = s1 == std::string_view::npos ? s1 : text.find(' ', s1 + 1);
  if (s2 == std::string_view::npos) return b.error(c, "malformed PRIVMSG text: ", text);
  const std::int64_t sender = parse_int(text.substr(0, s1));
  const std::int64_t seq = parse_int(text.substr(s1 + 1, s2 - s1 - 1));
  const std::int64_t sent = parse_int(text.substr(s2 + 1));
  if (sender < 0 || sender >= b.senders || seq < 0 || sent < 0)
    return b.error(c, "malformed PRIVMSG text: ", text);
  if (c.next_seq.empty()) c.next_seq.assign(std::size_t(b.senders), 0);
  std::int64_t& next = c.next_seq[std::size_t(sender)];
  if (seq < next) {
    // Either one that a gap skipped, arriving late, or a second copy.
    if (c.missing.erase({int(sender), seq}) != 0) {
      b.out_of_order.fetch_add(1, std::memory_order_relaxed);
    } else {
      b.dup.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  } else {
    if (seq > next) {
      b.out_of_order.fetch_add(1, std::memory_order_relaxed);
      if (seq - next <= max_remembered_gap)
        for (std::int64_t s = next; s < seq; ++s) c.missing.emplace(int(sender), s);
    }
    next = seq + 1;
  }
  if (step* st = b.step_of(sent)) {
    st->delivered.fetch_add(1, std::memory_order_relaxed);
    const int w = spindle::this_fiber::worker_index();
    st->latency[std::size_t(w < 0 ? 0 : w) % st->latency.size()].add(
        std::uint64_t(std::max<std::int64_t>(0, now - sent)));
  }
}

// handle() takes one line from the server (CR LF stripped). False when the
// server closes the session (ERROR).
bool handle(bench& b, client& c, std::string_view line) {
  if (line.starts_with("PING")) {
    std::string pong = chat::irc::cat("PONG", line.substr(4), "\r\n");
    std::error_code ec;
    c.conn.write_all(pong, std::chrono::seconds(10), ec);
    if (ec && !b.stopping.load()) b.error(c, "writing PONG: ", ec.message());
    return !ec;
  }
  if (line.starts_with(':')) {  // the prefix
    const std::size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return true;
    line.remove_prefix(sp + 1);
  }
  const std::size_t sp = line.find(' ');
  const std::string_view cmd = line.substr(0, sp);
  const std::string_view rest = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
  if (cmd == "PRIVMSG") {
    const std::size_t colon = rest.find(" :");
    if (colon == std::string_view::npos) {
      b.error(c, "PRIVMSG without text: ", line);
      return true;
    }
    on_privmsg(b, c, rest.substr(colon + 2), to_ns(steady_clock::now()));
    return true;
  }
  if (cmd == "ERROR") {
    if (!b.stopping.load()) b.error(c, "server says: ", line);
    return false;
  }
  if (cmd.size() == 3 && cmd[0] >= '0' && cmd[0] <= '9') {
    if (cmd == "001") c.registered = true;
    else if (cmd == "376" || cmd == "422") c.motd_done = true;  // end of MOTD, or none
    else if (cmd == "366") c.joined = true;
    else if (cmd[0] == '4' || cmd[0] == '5') b.error(c, "server replied ", line);
  }
  return true;
}

// read_lines() reads once and handles the complete lines; false at end of
// stream, on an error (ec says which, or is clear after ERROR) or at `d`.
bool read_lines(bench& b, client& c, spindle::deadline d, std::error_code& ec) {
  char buf[read_buffer];
  const std::size_t n = c.conn.read_some(std::span<char>(buf, sizeof buf), d, ec);
  if (ec) return false;
  if (n == 0) {
    ec = spindle::io_errc::eof;
    return false;
  }
  std::string_view data(buf, n);
  std::size_t nl;
  while ((nl = data.find('\n')) != std::string_view::npos) {
    std::string_view line = data.substr(0, nl);
    data.remove_prefix(nl + 1);
    if (!c.partial.empty()) {
      c.partial.append(line);
      line = c.partial;
    }
    if (line.ends_with('\r')) line.remove_suffix(1);
    const bool go_on = line.empty() || handle(b, c, line);
    c.partial.clear();
    if (!go_on) return false;
  }
  c.partial.append(data);
  return true;
}

bool retriable(std::error_code ec) {
  return ec == std::errc::connection_refused || ec == std::errc::connection_reset ||
         ec == std::errc::broken_pipe || ec == spindle::io_errc::eof;
}

// connect_and_register() dials, registers and joins, retrying a refused or
// reset attempt. False (counted as an error) if it could not in time.
bool connect_and_register(bench& b, client& c) {
  const auto give_up = steady_clock::now() + b.register_timeout;
  const std::string nick = chat::irc::cat("lg", c.index);
  const std::string hello = chat::irc::cat("NICK ", nick, "\r\nUSER ", nick, " 0 * :chat loadgen\r\n");
  std::error_code ec;
  for (int attempt = 0;; ++attempt) {
    if (attempt > 0) {
      std::error_code ignored;
      c.conn.close(ignored);
      if (attempt > b.connect_retries) break;
      spindle::this_fiber::sleep_for(std::chrono::milliseconds(50) * (1 << std::min(attempt, 6)));
    }
    c.partial.clear();
    c.registered = c.motd_done = false;
    c.conn = b.addr ? spindle::dial(*b.addr, give_up, ec) : spindle::dial(b.target, give_up, ec);
    if (ec) {
      if (retriable(ec)) continue;
      break;
    }
    c.conn.write_all(hello, give_up, ec);
    while (!ec && !(c.registered && c.motd_done) && read_lines(b, c, give_up, ec)) {
    }
    if (c.registered && c.motd_done) break;
    if (ec && retriable(ec)) continue;
    if (!ec) ec = spindle::io_errc::eof;  // the server sent ERROR
    break;
  }
  if (!(c.registered && c.motd_done)) {
    b.error(c, "registration failed: ", ec.message());
    return false;
  }
  b.registered.fetch_add(1, std::memory_order_relaxed);
  if (c.channel < 0) return true;
  c.conn.write_all(chat::irc::cat("JOIN #bench", c.channel, "\r\n"), give_up, ec);
  while (!ec && !c.joined && read_lines(b, c, give_up, ec)) {
  }
  if (!c.joined) {
    b.error(c, "JOIN failed: ", ec ? ec.message() : std::string("server closed the session"));
    return false;
  }
  b.joined.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// A client's fiber: in, then reading until the end.
void client_main(bench& b, client& c) {
  const bool in = connect_and_register(b, c);
  c.failed = !in;
  b.ready.done();
  std::error_code ec;
  while (in && read_lines(b, c, spindle::deadline{}, ec)) {
  }
  if (in && !b.stopping.load()) {
    c.failed = true;
    b.error(c, "disconnected: ", ec ? ec.message() : std::string("after ERROR"));
  }
  b.alive.done();
}

// Clients 0..senders-1 send; their seq numbers go on across steps.
struct sender_state {
  std::int64_t next_seq = 0;
  bool dead = false;
};

void sender_main(bench& b, client& c, sender_state& s, step& st, steady_clock::time_point first,
                 steady_clock::duration period, steady_clock::time_point give_up,
                 std::uint64_t fanout) {
  const std::string head = chat::irc::cat("PRIVMSG #bench", c.channel, " :", c.index, ' ');
  const std::int64_t end = st.end_ns.load();
  std::string line;
  std::error_code ec;
  for (std::int64_t k = 0;; ++k) {
    const steady_clock::time_point due = first + k * period;
    const std::int64_t due_ns = to_ns(due);
    if (due_ns >= end || steady_clock::now() >= give_up) break;
    spindle::this_fiber::sleep_until(due);
    const std::int64_t sent_ns = to_ns(steady_clock::now());
    line.assign(head);
    line.append(chat::irc::cat(s.next_seq, ' ', sent_ns, "\r\n"));
    // A write that times out may have sent part of the line, which would
    // garble the next one: the sender stops for good.
    c.conn.write_all(line, give_up, ec);
    if (ec) {
      s.dead = true;
      b.error(c, "sending PRIVMSG: ", ec.message());
      return;
    }
    ++s.next_seq;
    if (st.contains(sent_ns)) {
      st.sent.fetch_add(1, std::memory_order_relaxed);
      st.expected.fetch_add(fanout, std::memory_order_relaxed);
      const int w = spindle::this_fiber::worker_index();
      st.lag[std::size_t(w < 0 ? 0 : w) % st.lag.size()].add(std::uint64_t(sent_ns - due_ns));
    }
  }
}

struct step_result {
  std::string line;
  double p99_ms = 0, delivered_per_s = 0, offered_per_s = 0;
  std::uint64_t lost = 0, order = 0, errors = 0;
};

// run_step() sends at `rate` per sender for warm-up + window, drains, and
// sums up.
step_result run_step(bench& b, std::vector<sender_state>& senders, double rate, double warmup,
                     double seconds, double drain) {
  auto st_owner = std::make_unique<step>(b.workers);
  step& st = *st_owner;
  b.steps.push_back(std::move(st_owner));
  // The first step's counts include what went wrong while connecting.
  const bool first_step = b.steps.size() == 1;
  const std::uint64_t errors0 = first_step ? 0 : b.errors.load();
  const std::uint64_t order0 = first_step ? 0 : b.out_of_order.load();
  const std::uint64_t dup0 = first_step ? 0 : b.dup.load();

  // Start a little ahead, so that every sender is spawned before its first
  // message is due.
  const steady_clock::time_point t0 = steady_clock::now() + std::chrono::milliseconds(50);
  const steady_clock::time_point w0 = t0 + seconds_of(warmup), w1 = w0 + seconds_of(seconds);
  st.start_ns.store(to_ns(w0));
  st.end_ns.store(to_ns(w1));
  b.current_step.store(int(b.steps.size()) - 1, std::memory_order_release);

  const auto period = seconds_of(1.0 / rate);
  const steady_clock::time_point give_up = w1 + seconds_of(drain);
  spindle::wait_group sending;
  double offered = 0;
  int active = 0;
  for (int j = 0; j < b.senders; ++j) {
    client& c = *b.all[std::size_t(j)];
    if (c.failed || senders[std::size_t(j)].dead) continue;
    const std::uint64_t fanout = std::uint64_t(std::max(0, b.members[std::size_t(c.channel)] - 1));
    offered += rate * double(fanout);
    ++active;
    const steady_clock::time_point first = t0 + period * j / b.senders;  // spread the phases
    sending.add(1);
    spindle::go(spindle::fiber_options{.name = "sender", .stack_size = client_stack,
                                       .worker = int(unsigned(j) % b.workers)},
                [&b, &c, &s = senders[std::size_t(j)], &st, first, period, give_up, fanout, &sending] {
                  sender_main(b, c, s, st, first, period, give_up, fanout);
                  sending.done();
                });
  }
  sending.wait();
  // Drain: until every delivery due arrived, or the time is up.
  const steady_clock::time_point drained = std::max(steady_clock::now(), w1) + seconds_of(drain);
  while (st.delivered.load() < st.expected.load() && steady_clock::now() < drained)
    spindle::this_fiber::sleep_for(std::chrono::milliseconds(10));

  step_result r;
  const std::uint64_t sent = st.sent.load(), expected = st.expected.load(), delivered = st.delivered.load();
  r.lost = expected > delivered ? expected - delivered : 0;
  const std::uint64_t ooo = b.out_of_order.load() - order0, dup = b.dup.load() - dup0;
  r.order = ooo + dup;
  r.errors = b.errors.load() - errors0;
  r.offered_per_s = offered;
  r.delivered_per_s = seconds > 0 ? double(delivered) / seconds : 0;
  r.p99_ms = percentile(st.latency, 0.99) / 1e6;
  std::uint64_t max_ns = 0;
  for (const histogram& h : st.latency) max_ns = std::max(max_ns, h.max.load());
  char text[512];
  std::snprintf(text, sizeof text,
                "clients=%d channels=%d senders=%d rate=%g seconds=%g registered=%llu sent=%llu "
                "expected_deliveries=%llu delivered=%llu offered_per_s=%.0f msgs_per_s=%.0f "
                "sent_per_s=%.0f p50_us=%.1f p99_us=%.1f max_us=%.1f lag_p99_us=%.1f lost=%llu "
                "out_of_order=%llu dup=%llu errors=%llu",
                b.clients, b.channels, active, rate, seconds,
                static_cast<unsigned long long>(b.registered.load()),
                static_cast<unsigned long long>(sent), static_cast<unsigned long long>(expected),
                static_cast<unsigned long long>(delivered), offered, r.delivered_per_s,
                seconds > 0 ? double(sent) / seconds : 0, percentile(st.latency, 0.50) / 1e3,
                r.p99_ms * 1e3, double(max_ns) / 1e3, percentile(st.lag, 0.99) / 1e3,
                static_cast<unsigned long long>(r.lost),
                static_cast<unsigned long long>(ooo), static_cast<unsigned long long>(dup),
                static_cast<unsigned long long>(r.errors));
  r.line = text;
  return r;
}

// Raises the soft limit on open descriptors to the hard limit: each
// client is one.
void raise_descriptor_limit(int clients) {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return;
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);
  ::getrlimit(RLIMIT_NOFILE, &r);
  if (r.rlim_cur != RLIM_INFINITY && r.rlim_cur < rlim_t(clients) + 64)
    std::fprintf(stderr, "loadgen: note: the open-files limit is %llu, fewer than %d clients need\n",
                 static_cast<unsigned long long>(r.rlim_cur), clients + 64);
}

[[noreturn]] void usage_error(const std::string& what) {
  std::fprintf(stderr, "loadgen: %s\n", what.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  bench b;
  b.clients = absl::GetFlag(FLAGS_clients);
  b.channels = absl::GetFlag(FLAGS_channels);
  b.senders = absl::GetFlag(FLAGS_senders);
  b.idle = absl::GetFlag(FLAGS_idle);
  b.connect_retries = absl::GetFlag(FLAGS_connect_retries);
  b.register_timeout = seconds_of(absl::GetFlag(FLAGS_register_timeout));
  b.workers = absl::GetFlag(FLAGS_workers);
  if (b.workers == 0) b.workers = std::max(1u, std::thread::hardware_concurrency());
  const double seconds = absl::GetFlag(FLAGS_seconds), warmup = absl::GetFlag(FLAGS_warmup),
               drain = absl::GetFlag(FLAGS_drain), connect_rate = absl::GetFlag(FLAGS_connect_rate);
  std::vector<double> rates;
  if (const std::string ramp = absl::GetFlag(FLAGS_ramp); !ramp.empty()) {
    // (Debian's abseil has its own string_view, so std parsing here.)
    std::size_t at = 0;
    while (at < ramp.size()) {
      std::size_t comma = ramp.find(',', at);
      if (comma == std::string::npos) comma = ramp.size();
      const std::string r = ramp.substr(at, comma - at);
      at = comma + 1;
      if (r.empty()) continue;
      char* end = nullptr;
      const double v = std::strtod(r.c_str(), &end);
      if (end != r.c_str() + r.size() || !(v > 0)) usage_error("bad --ramp rate: " + r);
      rates.push_back(v);
    }
  } else {
    rates.push_back(absl::GetFlag(FLAGS_rate));
  }
  const bool ramp = rates.size() > 1 || !absl::GetFlag(FLAGS_ramp).empty();
  if (b.clients <= 0 || connect_rate <= 0 || seconds < 0 || warmup < 0 || drain < 0)
    usage_error("need --clients > 0, --connect_rate > 0 and times >= 0");
  if (!b.idle && (b.channels <= 0 || b.senders < 0 || b.senders > b.clients || !(rates[0] > 0)))
    usage_error("need --channels > 0, 0 <= --senders <= --clients and --rate > 0");
  const std::string host = absl::GetFlag(FLAGS_host);
  const bool v6 = host.find(':') != std::string::npos;
  b.target = chat::irc::cat(v6 ? "[" : "", host, v6 ? "]" : "", ":", absl::GetFlag(FLAGS_port));
  b.addr = spindle::address::parse(b.target);  // else dial() looks the name up
  raise_descriptor_limit(b.clients);

  int status = 0;
  spindle::run(spindle::options{.workers = b.workers}, [&] {
    b.members.assign(std::size_t(std::max(1, b.channels)), 0);
    for (int i = 0; i < b.clients; ++i) {
      auto c = std::make_unique<client>();
      c->index = i;
      c->channel = b.idle ? -1 : i % b.channels;
      b.all.push_back(std::move(c));
    }
    // Connect gradually: client i starts at i / connect_rate.
    b.ready.add(b.clients);
    b.alive.add(b.clients);
    const steady_clock::time_point c0 = steady_clock::now();
    for (int i = 0; i < b.clients; ++i) {
      spindle::this_fiber::sleep_until(c0 + seconds_of(double(i) / connect_rate));
      spindle::go(spindle::fiber_options{.name = "client", .stack_size = client_stack,
                                         .worker = int(unsigned(i) % b.workers)},
                  [&b, &c = *b.all[std::size_t(i)]] { client_main(b, c); });
    }
    b.ready.wait();
    const double connect_s = std::chrono::duration<double>(steady_clock::now() - c0).count();
    const std::uint64_t registered = b.registered.load();
    std::fprintf(stderr, "loadgen: %llu of %d clients registered in %.1f s\n",
                 static_cast<unsigned long long>(registered), b.clients, connect_s);

    if (b.idle) {
      std::printf("idle clients=%d registered=%llu failed=%llu ready\n", b.clients,
                  static_cast<unsigned long long>(registered),
                  static_cast<unsigned long long>(b.clients - registered));
      std::fflush(stdout);
      std::error_code ec;
      spindle::wait_signal({SIGTERM, SIGINT}, seconds_of(seconds), ec);
      std::uint64_t connected = 0;
      for (const auto& c : b.all) connected += !c->failed;
      std::printf("idle done connected=%llu errors=%llu\n", static_cast<unsigned long long>(connected),
                  static_cast<unsigned long long>(b.errors.load()));
      if (registered < std::uint64_t(b.clients) || connected < registered) status = 1;
    } else {
      for (const auto& c : b.all)
        if (!c->failed) ++b.members[std::size_t(c->channel)];
      if (b.joined.load() < std::uint64_t(b.clients)) status = 1;
      std::vector<sender_state> senders(std::size_t(b.senders));
      std::string stop_reason = "done";
      for (std::size_t i = 0; i < rates.size(); ++i) {
        const step_result r = run_step(b, senders, rates[i], warmup, seconds, drain);
        if (ramp) {
          std::printf("step=%zu %s\n", i + 1, r.line.c_str());
        } else {
          std::printf("%s\n", r.line.c_str());
        }
        std::fflush(stdout);
        if (r.order > 0) status = 1;
        if (!ramp) {
          if (r.lost > 0 || r.errors > 0) status = 1;
          break;
        }
        if (r.errors > 0 || r.order > 0) stop_reason = "errors";
        else if (r.p99_ms > absl::GetFlag(FLAGS_ramp_max_p99_ms)) stop_reason = "p99";
        else if (r.lost > 0) stop_reason = "lost";
        else if (r.delivered_per_s < absl::GetFlag(FLAGS_ramp_min_ratio) * r.offered_per_s)
          stop_reason = "rate_below_offered";
        if (stop_reason != "done" || i + 1 == rates.size()) {
          std::printf("ramp_end steps=%zu stop=%s\n", i + 1, stop_reason.c_str());
          std::fflush(stdout);
          break;
        }
      }
    }
    b.stopping.store(true);
    for (const auto& c : b.all) {
      std::error_code ec;
      c->conn.close(ec);
    }
    b.alive.wait();
  });
  return status;
}
