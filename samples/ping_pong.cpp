// ping_pong: two fibers taking turns, a hundred thousand sleepers, and a
// join that carries an exception back. The main job of the README until
// the chat server takes its place. It takes no flags but --help.
#include <spindle.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "samples/command_line.h"

int main(int argc, char** argv) {
  samples::parse_command_line(
      argc, argv,
      "Two fibers taking turns, a hundred thousand sleepers, and a join that carries an "
      "exception back.\nUsage: ping_pong",
      __FILE__);
  spindle::run([] {
    // Two fibers take turns, yielding until it is theirs (they may run on
    // different workers, hence the atomic).
    std::atomic<int> turn{0};
    auto player = [&turn](const char* name, int parity) {
      for (int round = 0; round < 3; ++round) {
        while (turn.load() % 2 != parity) spindle::this_fiber::yield();
        std::printf("%s (fiber %llu, worker %d)\n", name,
                    static_cast<unsigned long long>(spindle::this_fiber::get_id().value()),
                    spindle::this_fiber::worker_index());
        turn.fetch_add(1);
      }
    };
    spindle::fiber ping({.name = "ping"}, player, "ping", 0);
    spindle::fiber pong({.name = "pong"}, player, "pong", 1);
    ping.join();
    pong.join();

    // A hundred thousand fibers sleeping at once cost a page of stack each.
    const auto start = std::chrono::steady_clock::now();
    std::atomic<int> woke{0};
    std::vector<spindle::fiber> sleepers;
    for (int i = 0; i < 100'000; ++i) {
      sleepers.emplace_back([&woke] {
        spindle::this_fiber::sleep_for(std::chrono::milliseconds(100));
        woke.fetch_add(1, std::memory_order_relaxed);
      });
    }
    for (auto& f : sleepers) f.join();
    const double ms = std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - start)
                          .count();
    std::printf("%d fibers slept 100 ms each; all done after %.0f ms\n", woke.load(), ms);

    // An exception escaping a fiber comes back through join().
    spindle::fiber failing([] { throw std::runtime_error("boom"); });
    try {
      failing.join();
    } catch (const std::exception& e) {
      std::printf("join() rethrew: %s\n", e.what());
    }
  });
  return 0;
}
