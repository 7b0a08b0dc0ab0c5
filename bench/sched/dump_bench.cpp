// The fiber dump of a big program, and what it costs the program: 100,000
// fibers parked on a channel at one place, a ping-pong between two fibers
// over channels (a server answering), and a plain thread that dumps every
// fiber to /dev/null a few times. Reports the dump's wall time, and the
// ping-pong's round trips per second and latency while a dump runs and
// while none does.
//
//   build/<dir>/bench/dump_bench [parked fibers] [dumps]
//
// A plain program rather than a Google Benchmark: what matters is the
// interplay of a dump with the running server, measured side by side.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/debug.h"
#include "sched/scheduler.h"
#include "sync/channel.h"

namespace {

using clock_type = std::chrono::steady_clock;

struct latencies {
  std::vector<double> us;
  double seconds = 0;

  void report(const char* what) {
    std::sort(us.begin(), us.end());
    const auto at = [&](double q) {
      return us.empty() ? 0.0 : us[static_cast<std::size_t>(q * static_cast<double>(us.size() - 1))];
    };
    std::printf("%-22s %9.0f round trips/s   p50 %7.1f us   p99 %8.1f us   max %9.1f us\n", what,
                seconds > 0 ? static_cast<double>(us.size()) / seconds : 0.0, at(0.5), at(0.99),
                us.empty() ? 0.0 : us.back());
  }
};

[[gnu::noinline]] void park_in_crowd(spindle::channel<int>& ch) { (void)ch.recv(); }

}  // namespace

int main(int argc, char** argv) {
  const std::size_t parked = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100'000;
  const int dumps = argc > 2 ? std::atoi(argv[2]) : 5;

  std::atomic<std::size_t> arrived{0};
  std::atomic<bool> dumping{false}, stop{false};
  latencies quiet, during;
  std::vector<double> dump_ms;

  spindle::run(spindle::runtime_options{.workers = 2}, [&] {
    spindle::channel<int> crowd;
    for (std::size_t i = 0; i < parked; ++i) {
      spindle::go(spindle::fiber_options{.stack_size = 16 * 1024}, [&] {
        arrived.fetch_add(1, std::memory_order_relaxed);
        park_in_crowd(crowd);
      });
    }
    while (arrived.load() < parked) spindle::this_fiber::yield();

    spindle::channel<int> ping, pong;
    spindle::fiber server([&] {
      while (auto v = ping.recv()) pong.send(*v);
    });
    spindle::fiber client([&] {
      for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        const bool in_dump = dumping.load(std::memory_order_relaxed);
        const auto t0 = clock_type::now();
        ping.send(i);
        (void)pong.recv();
        const double us = std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
        // A round trip counts as "during" if a dump ran at its start or end.
        (in_dump || dumping.load(std::memory_order_relaxed) ? during : quiet).us.push_back(us);
      }
      ping.close();
    });

    // The dumps come from a plain thread, as from a signal's.
    std::thread dumper([&] {
      std::ofstream devnull("/dev/null");
      const auto pause = std::chrono::milliseconds(300);
      std::this_thread::sleep_for(pause);
      for (int k = 0; k < dumps; ++k) {
        const auto t0 = clock_type::now();
        dumping.store(true);
        spindle::dump_fibers(devnull);
        dumping.store(false);
        const auto t1 = clock_type::now();
        dump_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        during.seconds += std::chrono::duration<double>(t1 - t0).count();
        std::this_thread::sleep_for(pause);
        quiet.seconds += std::chrono::duration<double>(pause).count();
      }
      quiet.seconds += std::chrono::duration<double>(pause).count();  // the first pause
      stop.store(true);
    });
    client.join();
    server.join();
    dumper.join();
    crowd.close();
  });

  std::vector<double> sorted = dump_ms;
  std::sort(sorted.begin(), sorted.end());
  std::printf("dump of %zu parked fibers (+3 more), %d dumps: median %.0f ms, min %.0f ms, max %.0f ms\n",
              parked, dumps, sorted.empty() ? 0.0 : sorted[sorted.size() / 2],
              sorted.empty() ? 0.0 : sorted.front(), sorted.empty() ? 0.0 : sorted.back());
  std::printf("(the first dump also loads libdw and reads the program's debug information)\n");
  std::printf("first dump %.0f ms\n", dump_ms.empty() ? 0.0 : dump_ms.front());
  quiet.report("ping-pong, no dump:");
  during.report("ping-pong, during dump:");
}
