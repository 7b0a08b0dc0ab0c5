// The cost of file reads: 4 KiB preads of a file in the page cache through
// spindle::file::pread (on the worker, since the data is cached), through
// the blocking pool (what every read cost before, and what a read of
// uncached data costs), and ::pread directly on the worker (the limit),
// with 1, 8 and 64 fibers reading concurrently on 2 workers. Also one call of
// spindle::blocking() that does nothing: the round trip alone.
// bench/run_blocking_bench.sh runs it beside the latency benchmark.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "fiber/fiber.h"
#include "io/file.h"
#include "sched/blocking.h"
#include "sched/scheduler.h"

namespace {

constexpr std::size_t file_size = 64 << 20;
constexpr std::size_t block = 4096;
constexpr int reads_per_fiber = 2000;

// A 64 MiB file, written once and read once so that it is in the page cache.
const std::filesystem::path& cached_file() {
  static const std::filesystem::path path = [] {
    std::filesystem::path p = std::filesystem::temp_directory_path() / "spindle_file_bench.dat";
    std::string data(file_size, '\0');
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31);
    spindle::fs::write_file(p, data);
    (void)spindle::fs::read_file(p);
    return p;
  }();
  return path;
}

std::uint64_t offset_for(std::uint32_t& rng) {
  rng = rng * 1664525u + 1013904223u;
  return static_cast<std::uint64_t>(rng % (file_size / block)) * block;
}

template <class ReadAt>
void concurrent_preads(benchmark::State& state, ReadAt read_at) {
  const int fibers = static_cast<int>(state.range(0));
  const auto& path = cached_file();
  spindle::run(spindle::options{.workers = 2}, [&] {
    spindle::file f = spindle::file::open(path, spindle::open_mode::read);
    for (auto _ : state) {
      std::vector<spindle::fiber> readers;
      for (int i = 0; i < fibers; ++i) {
        readers.emplace_back([&f, &read_at, i] {
          std::vector<std::byte> buf(block);
          std::uint32_t rng = 12345u + static_cast<std::uint32_t>(i);
          for (int r = 0; r < reads_per_fiber; ++r) {
            if (read_at(f, std::span<std::byte>(buf), offset_for(rng)) != block) std::abort();
          }
        });
      }
      for (auto& r : readers) r.join();
    }
  });
  const double reads = static_cast<double>(state.iterations()) * fibers * reads_per_fiber;
  state.counters["reads_per_s"] = benchmark::Counter(reads, benchmark::Counter::kIsRate);
  state.counters["ns_per_read"] =
      benchmark::Counter(reads, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// spindle::file::pread: the data is cached, so it is read on the worker
// (preadv2 with RWF_NOWAIT), with no pool round trip.
void BM_FilePread(benchmark::State& state) {
  concurrent_preads(state, [](spindle::file& f, std::span<std::byte> buf, std::uint64_t off) {
    return f.pread(buf, off);
  });
}
BENCHMARK(BM_FilePread)->Arg(1)->Arg(8)->Arg(64)->UseRealTime()->Unit(benchmark::kMillisecond);

// Through the pool, as every file read went before the fast path (and as
// a read of uncached data still goes): ::pread inside spindle::blocking().
void BM_PreadThroughPool(benchmark::State& state) {
  concurrent_preads(state, [](spindle::file& f, std::span<std::byte> buf, std::uint64_t off) {
    return spindle::blocking([&]() noexcept {
      const ssize_t n = ::pread(f.native_handle(), buf.data(), buf.size(), static_cast<off_t>(off));
      return n < 0 ? std::size_t{0} : static_cast<std::size_t>(n);
    });
  });
}
BENCHMARK(BM_PreadThroughPool)->Arg(1)->Arg(8)->Arg(64)->UseRealTime()->Unit(benchmark::kMillisecond);

// Directly on the worker: ::pread on the same descriptor.
void BM_PreadOnWorker(benchmark::State& state) {
  concurrent_preads(state, [](spindle::file& f, std::span<std::byte> buf, std::uint64_t off) {
    const ssize_t n = ::pread(f.native_handle(), buf.data(), buf.size(), static_cast<off_t>(off));
    return n < 0 ? std::size_t{0} : static_cast<std::size_t>(n);
  });
}
BENCHMARK(BM_PreadOnWorker)->Arg(1)->Arg(8)->Arg(64)->UseRealTime()->Unit(benchmark::kMillisecond);

// One fiber, calls that do nothing: the pool's round trip alone.
void BM_EmptyBlockingCall(benchmark::State& state) {
  spindle::run(spindle::options{.workers = 2}, [&] {
    for (auto _ : state) spindle::blocking([] {});
  });
}
BENCHMARK(BM_EmptyBlockingCall)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
