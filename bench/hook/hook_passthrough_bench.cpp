// hook_passthrough_bench: what spindle::hook adds to a call it lets
// through to libc. Built twice from this source (bench/hook/CMakeLists.txt):
// hook_passthrough_bench links spindle::hook, hook_passthrough_bench_nohook
// does not; bench/run_hook_bench.sh runs them in turn and reports the
// difference per call.
//
//   BM_ThreadPipeRead   a plain thread's read() of 1 byte from a pipe that
//                       holds data: the hook's plain-thread path (one
//                       thread-local test, then libc's read).
//   BM_FiberFileWrite   a fiber's write() of 64 bytes to a regular file:
//                       the hook's fiber path for a file it never parks on
//                       (the descriptor's slot, its kind, then libc's write).
//   BM_FiberPipeRead    a fiber's read() of 1 byte from a pipe that holds
//                       data: not a pass-through but the fiber's fast path
//                       on a ready descriptor (the call succeeds at once;
//                       no park), for reference.
//
// The pipe is refilled every pipe_refill reads and the file rewound every
// file_rewind writes, inside the timed loop (the same in both builds).
// Each benchmark makes one untimed call first (a 0-byte read or write), so
// that the hook's one-time work (finding libc's function, probing the
// descriptor) stays out of the loop.
//
// --iterations=N (before Google Benchmark's own flags) runs each benchmark
// exactly N iterations: under valgrind --tool=callgrind, two runs with
// different N give the instructions per iteration, free of the noise that
// a shared machine puts into nanoseconds (bench/run_hook_bench.sh).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "sched/scheduler.h"

namespace {

// Reads between refills: a pipe holds 64 KiB by default, so 4 KiB refills
// never block the writer and the pipe is never empty.
constexpr int pipe_refill = 4096;
// Writes between rewinds: the file stays at 64 KiB, in the page cache.
constexpr int file_rewind = 1024;
constexpr std::size_t file_write_size = 64;

struct filled_pipe {
  int fds[2] = {-1, -1};
  char chunk[pipe_refill] = {};
  filled_pipe() {
    if (::pipe(fds) != 0) std::abort();
    refill();
  }
  ~filled_pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  void refill() {
    if (::write(fds[1], chunk, sizeof chunk) != static_cast<ssize_t>(sizeof chunk)) std::abort();
  }
};

void read_loop(benchmark::State& state, filled_pipe& p) {
  char c;
  (void)::read(p.fds[0], &c, 0);
  int left = pipe_refill;
  for (auto _ : state) {
    if (::read(p.fds[0], &c, 1) != 1) std::abort();
    if (--left == 0) p.refill(), left = pipe_refill;
  }
}

void BM_ThreadPipeRead(benchmark::State& state) {
  filled_pipe p;
  read_loop(state, p);
}

void BM_FiberPipeRead(benchmark::State& state) {
  filled_pipe p;
  spindle::run(spindle::options{.workers = 1}, [&] { read_loop(state, p); });
}

void BM_FiberFileWrite(benchmark::State& state) {
  std::string path = (std::filesystem::temp_directory_path() / "hook_passthrough_XXXXXX").string();
  const int fd = ::mkstemp(path.data());
  if (fd < 0) {
    state.SkipWithError("mkstemp failed");
    return;
  }
  ::unlink(path.c_str());
  const char data[file_write_size] = {};
  spindle::run(spindle::options{.workers = 1}, [&] {
    (void)::write(fd, data, 0);
    int left = file_rewind;
    for (auto _ : state) {
      if (::write(fd, data, sizeof data) != static_cast<ssize_t>(sizeof data)) std::abort();
      if (--left == 0) ::lseek(fd, 0, SEEK_SET), left = file_rewind;
    }
  });
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::IterationCount fixed = 0;
  if (argc > 1 && std::string_view(argv[1]).starts_with("--iterations=")) {
    fixed = std::strtoll(argv[1] + std::strlen("--iterations="), nullptr, 10);
    argv[1] = argv[0];  // drop it: Google Benchmark would reject it
    --argc, ++argv;
  }
  for (const auto& [name, fn] : {std::pair{"BM_ThreadPipeRead", &BM_ThreadPipeRead},
                                 std::pair{"BM_FiberPipeRead", &BM_FiberPipeRead},
                                 std::pair{"BM_FiberFileWrite", &BM_FiberFileWrite}}) {
    benchmark::internal::Benchmark* b = benchmark::RegisterBenchmark(name, fn);
    if (fixed > 0) b->Iterations(fixed);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
