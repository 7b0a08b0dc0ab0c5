// The program that gdb_fibers_test.py runs under gdb: fibers parked in
// known places, then a call to all_parked_now() where gdb stops it, lists
// its fibers and writes a core file for the second half of the test
// (share/spindle/gdb/spindle.py on a core).
//
// Each fiber blocks inside a function with a distinctive name that its
// backtrace must show. The program prints the fibers' ids (the test checks
// them against what `info fibers` says), waits until every one is parked
// (test/parked.h: no sleeping as synchronization), and calls
// all_parked_now() with the main fiber still running.
//
// `gdb_fibers_program --skip REASON` prints REASON and exits with 77, the
// test's skip status: how the build registers the test where it cannot
// run (no python3 at configure time).
#include <spindle.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "fiber/detail/stack.h"
#include "test/parked.h"

// Not static, so that gdb finds them by their plain names; noinline, and
// with work after the blocking call, so that each keeps a frame of its
// own (no inlining, no tail call).
[[gnu::noinline]] void all_parked_now() {
  // A call to an empty function may be dropped; this keeps it.
  asm volatile("" ::: "memory");
}

[[gnu::noinline]] void parked_on_channel_recv_here(spindle::channel<int>& ch) {
  std::optional<int> v = ch.recv();
  asm volatile("" : : "r"(v.has_value()) : "memory");
}

[[gnu::noinline]] void parked_in_select_here(spindle::channel<int>& a, spindle::channel<int>& b) {
  spindle::recv_case from_a(a);
  spindle::recv_case from_b(b);
  const int chosen = spindle::select(from_a, from_b);
  asm volatile("" : : "r"(chosen) : "memory");
}

[[gnu::noinline]] void parked_on_mutex_here(spindle::mutex& mu) {
  mu.lock();
  asm volatile("" ::: "memory");
  mu.unlock();
}

[[gnu::noinline]] void sleeping_here() {
  // Longer than any test: the program ends with _Exit() before it wakes.
  spindle::this_fiber::sleep_for(std::chrono::hours(1));
  asm volatile("" ::: "memory");
}

[[gnu::noinline]] void joining_here(spindle::fiber& f) {
  f.join();
  asm volatile("" ::: "memory");
}

// The fibers' ids, for the test's gdb commands (fiber bt gdb_fiber_ids.recv).
struct fiber_ids {
  std::uint64_t main, recv, select, mutex, sleep, join;
};
fiber_ids gdb_fiber_ids;

namespace {

// Far more than the few stacks this program maps.
constexpr std::size_t mprotect_guards = 1024;

void print_id(const char* what, spindle::fiber::id id, std::uint64_t& global) {
  global = id.value();
  std::printf("gdb_fibers_program: %s=%llu\n", what, static_cast<unsigned long long>(id.value()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--skip") == 0) {
    std::printf("SKIPPED: %s\n", argv[2]);
    return 77;
  }
  // gdb's generate-core-file copies each mapping with one read, and a
  // MADV_GUARD_INSTALL guard page (Linux 6.13+) inside a mapping of
  // stacks fails that read: gdb then leaves the whole mapping, fiber
  // stacks and all, out of the core ("Memory read failed for corefile
  // section"). An mprotect guard is a mapping of its own, which gdb
  // skips; so this program's stacks get those.
  spindle::detail::set_guard_policy_for_testing(spindle::detail::guard_kind::mprotect_guard,
                                                mprotect_guards);
  spindle::runtime_options opts;
  opts.workers = 2;  // a second worker thread, whatever the machine
  spindle::run(opts, [] {
    using spindle::detail::wait_reason;
    spindle::channel<int> ch(0);
    spindle::channel<int> select_a(0);
    spindle::channel<int> select_b(1);
    spindle::mutex mu;
    mu.lock();  // held by the main fiber, so that the locker parks

    spindle::fiber recv_fiber({.name = "gdb-recv"}, [&ch] { parked_on_channel_recv_here(ch); });
    spindle::fiber select_fiber({.name = "gdb-select"}, [&select_a, &select_b] {
      parked_in_select_here(select_a, select_b);
    });
    spindle::fiber mutex_fiber({.name = "gdb-mutex"}, [&mu] { parked_on_mutex_here(mu); });
    spindle::fiber sleep_fiber({.name = "gdb-sleep"}, [] { sleeping_here(); });
    spindle::fiber join_fiber({.name = "gdb-join"},
                              [&recv_fiber] { joining_here(recv_fiber); });

    print_id("main", spindle::this_fiber::get_id(), gdb_fiber_ids.main);
    print_id("recv", recv_fiber.get_id(), gdb_fiber_ids.recv);
    print_id("select", select_fiber.get_id(), gdb_fiber_ids.select);
    print_id("mutex", mutex_fiber.get_id(), gdb_fiber_ids.mutex);
    print_id("sleep", sleep_fiber.get_id(), gdb_fiber_ids.sleep);
    print_id("join", join_fiber.get_id(), gdb_fiber_ids.join);
    std::fflush(stdout);

    // A channel's send and recv record no wait reason (yet): parked will do.
    spindle::test::wait_until_parked(recv_fiber.get_id());
    spindle::test::wait_until_parked(select_fiber.get_id(), wait_reason::select);
    spindle::test::wait_until_parked(mutex_fiber.get_id(), wait_reason::mutex);
    spindle::test::wait_until_parked(sleep_fiber.get_id(), wait_reason::sleep);
    spindle::test::wait_until_parked(join_fiber.get_id(), wait_reason::join);

    all_parked_now();

    // Run on its own (not under gdb), the program ends here: the sleeper
    // would hold run() for an hour, so leave without unwinding anything.
    std::printf("gdb_fibers_program: all parked\n");
    std::fflush(stdout);
    std::_Exit(0);
  });
  return 1;  // not reached
}
