// hiredis_bench: N clients of hiredis's blocking API (redisConnect,
// redisCommand), each keeping one command in flight, as
// `redis-benchmark -P 1` does, against a redis-server on 127.0.0.1.
// Built twice from this source (bench/hook/CMakeLists.txt):
//
//   hiredis_bench         linked with spindle::hook: on fibers, hiredis's
//                         write(), read() and poll() park the fiber.
//   hiredis_bench_nohook  the same program without the hook: on a fiber,
//                         every command blocks the worker for its round trip.
//
// The clients run on N fibers of a one-worker runtime (--workers), or on
// N std::threads (--threads); the code is the same, through the `Port`
// policies below. Each client sends `SET key:__rand_int__ xxx`, the
// command and payload of `redis-benchmark -t set` (3-byte value; without
// -r the key is that literal string). After every client has connected,
// --warmup seconds pass, then the commands completed in the next
// --seconds seconds are counted. Prints one line:
//
//   mode=fibers hook=1 clients=500 ops=123456 seconds=5.00 ops_per_s=24691 errors=0
//
// --ticker adds a fiber (or thread) that sleeps until each 10 ms tick and
// records how late it woke (wake - scheduled) during the measured time;
// a tick already past when it would sleep is skipped and counted, as
// Tornado's PeriodicCallback skips them. The line then ends with
//
//   ticks=500 missed=0 late_p50_us=12 late_p99_us=80 late_max_us=310
//
// --yield makes every client yield after each command (a fiber yield, or
// std::this_thread::yield()): without the hook a client fiber never parks,
// so it would keep the one worker to itself, and neither the other clients
// nor the ticker nor the timer that ends the run would ever run again.
// With it, a blocking command delays the ticker by at most one round trip
// per client queued before it: the lateness an event loop shows when its
// handlers call a blocking client (the "Tornado" figure).
//
//   hiredis_bench --port=P [--clients=1] [--threads] [--workers=1]
//                 [--seconds=5] [--warmup=1] [--ticker] [--yield]
#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"

#ifndef HIREDIS_BENCH_HOOK
#define HIREDIS_BENCH_HOOK 0
#endif
#if HIREDIS_BENCH_HOOK
#include "hook/hook.h"
#endif

namespace {

using clock_type = std::chrono::steady_clock;
constexpr auto tick_period = std::chrono::milliseconds(10);

// The two ports of the same client code.
struct std_port {
  using thread = std::thread;
  static void sleep_for(clock_type::duration d) { std::this_thread::sleep_for(d); }
  static void sleep_until(clock_type::time_point t) { std::this_thread::sleep_until(t); }
  static void yield() { std::this_thread::yield(); }
};
struct spindle_port {
  using thread = spindle::thread;
  static void sleep_for(clock_type::duration d) { spindle::this_thread::sleep_for(d); }
  static void sleep_until(clock_type::time_point t) { spindle::this_thread::sleep_until(t); }
  static void yield() { spindle::this_thread::yield(); }
};

struct options {
  int port = 0;
  int clients = 1;
  bool threads = false;
  unsigned workers = 1;
  double seconds = 5, warmup = 1;
  bool ticker = false;
  bool yield = false;
};

enum phase : int { warming, measuring, stopping };

// What the clients, the ticker and the controller share.
struct run_state {
  std::atomic<int> phase{warming};
  std::atomic<int> ready{0};  // clients connected (or failed to)
  std::atomic<long> ops{0};
  std::atomic<int> errors{0};
  std::vector<double> lateness_us;  // the ticker's, measured ticks only
  long missed_ticks = 0;
};

template <class Port>
void client(run_state& st, const options& o) {
  redisContext* c = redisConnect("127.0.0.1", o.port);
  if (c == nullptr || c->err) {
    std::fprintf(stderr, "hiredis_bench: connect: %s\n", c != nullptr ? c->errstr : "out of memory");
    if (c != nullptr) redisFree(c);
    st.errors.fetch_add(1);
    st.ready.fetch_add(1);
    return;
  }
  st.ready.fetch_add(1);
  long done = 0;
  for (;;) {
    const int ph = st.phase.load(std::memory_order_relaxed);
    if (ph == stopping) break;
    auto* reply = static_cast<redisReply*>(redisCommand(c, "SET key:__rand_int__ xxx"));
    if (reply == nullptr || reply->type == REDIS_REPLY_ERROR) {
      std::fprintf(stderr, "hiredis_bench: SET: %s\n", reply != nullptr ? reply->str : c->errstr);
      if (reply != nullptr) freeReplyObject(reply);
      st.errors.fetch_add(1);
      break;
    }
    freeReplyObject(reply);
    if (ph == measuring) ++done;
    if (o.yield) Port::yield();
  }
  st.ops.fetch_add(done);
  redisFree(c);
}

template <class Port>
void ticker(run_state& st) {
  clock_type::time_point next = clock_type::now() + tick_period;
  while (st.phase.load(std::memory_order_relaxed) != stopping) {
    Port::sleep_until(next);
    const clock_type::time_point woke = clock_type::now();
    if (st.phase.load(std::memory_order_relaxed) == measuring) {
      st.lateness_us.push_back(std::chrono::duration<double, std::micro>(woke - next).count());
    }
    next += tick_period;
    while (next <= woke) {  // skip the ticks already past
      next += tick_period;
      if (st.phase.load(std::memory_order_relaxed) == measuring) ++st.missed_ticks;
    }
  }
}

// Runs the clients (and the ticker) on Port's threads; returns the
// measured seconds.
template <class Port>
double run_clients(run_state& st, const options& o) {
  std::vector<typename Port::thread> threads;
  threads.reserve(static_cast<std::size_t>(o.clients) + 1);
  for (int i = 0; i < o.clients; ++i) threads.emplace_back([&st, &o] { client<Port>(st, o); });
  while (st.ready.load() < o.clients) Port::sleep_for(std::chrono::milliseconds(1));
  if (o.ticker) threads.emplace_back([&st] { ticker<Port>(st); });
  Port::sleep_for(std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o.warmup)));
  const clock_type::time_point t0 = clock_type::now();
  st.phase.store(measuring);
  Port::sleep_for(std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o.seconds)));
  st.phase.store(stopping);
  const clock_type::time_point t1 = clock_type::now();
  for (auto& t : threads) t.join();
  return std::chrono::duration<double>(t1 - t0).count();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

[[noreturn]] void usage(std::string_view what) {
  std::fprintf(stderr,
               "hiredis_bench: %.*s\n"
               "usage: hiredis_bench --port=P [--clients=1] [--threads] [--workers=1]\n"
               "                     [--seconds=5] [--warmup=1] [--ticker] [--yield]\n",
               static_cast<int>(what.size()), what.data());
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const std::size_t eq = a.find('=');
    const std::string name = a.substr(0, eq);
    auto value = [&]() -> std::string {
      if (eq != std::string::npos) return a.substr(eq + 1);
      if (i + 1 >= argc) usage(name + " needs a value");
      return argv[++i];
    };
    auto number = [&]() {
      const std::string v = value();
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || d < 0) usage("bad value for " + name + ": " + v);
      return d;
    };
    if (name == "--port") o.port = static_cast<int>(number());
    else if (name == "--clients") o.clients = static_cast<int>(number());
    else if (name == "--workers") o.workers = static_cast<unsigned>(number());
    else if (name == "--seconds") o.seconds = number();
    else if (name == "--warmup") o.warmup = number();
    else if (a == "--threads") o.threads = true;
    else if (a == "--ticker") o.ticker = true;
    else if (a == "--yield") o.yield = true;
    else usage("unknown argument " + a);
  }
  if (o.port <= 0 || o.port > 65535 || o.clients <= 0 || o.workers == 0) usage("need --port, --clients >= 1");
  if (!HIREDIS_BENCH_HOOK && !o.threads && !o.yield) {
    usage("without the hook, fibers need --yield (a client fiber would keep the worker for ever)");
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  run_state st;
  double seconds = 0;
  if (o.threads) {
    seconds = run_clients<std_port>(st, o);
  } else {
    spindle::run(spindle::options{.workers = o.workers}, [&] { seconds = run_clients<spindle_port>(st, o); });
  }
  const long ops = st.ops.load();
  std::printf("mode=%s hook=%d clients=%d ops=%ld seconds=%.2f ops_per_s=%.0f errors=%d", o.threads ? "threads" : "fibers",
              HIREDIS_BENCH_HOOK, o.clients, ops, seconds, seconds > 0 ? static_cast<double>(ops) / seconds : 0.0,
              st.errors.load());
  if (o.ticker) {
    std::printf(" ticks=%zu missed=%ld late_p50_us=%.0f late_p99_us=%.0f late_max_us=%.0f", st.lateness_us.size(),
                st.missed_ticks, percentile(st.lateness_us, 0.50), percentile(st.lateness_us, 0.99),
                percentile(st.lateness_us, 1.0));
  }
  std::printf("\n");
#if HIREDIS_BENCH_HOOK
  if (!spindle::hook::linked()) {
    std::fprintf(stderr, "hiredis_bench: built with the hook, but the hook is not what read() reaches\n");
    return 1;
  }
#endif
  return st.errors.load() == 0 ? 0 : 1;
}
