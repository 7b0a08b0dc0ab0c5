// Latency protection by the blocking pool: 1000 fibers tick every 10 ms
// (sleep_until the next tick, note how late they woke) while 8 other
// fibers hammer the file system (1 MiB writes with fdatasync, 64 KiB reads
// of a file pushed out of the page cache, stat, rename). With `pool`, the
// file system work goes through spindle::file / spindle::fs (the blocking
// pool); with `direct`, the same system calls run on the workers. Prints
// the p50/p99/p99.9/max lateness of the ticks and the file system
// operations done.
//
// Usage: latency_bench pool|direct [seconds=5] [workers=2]
// bench/run_blocking_bench.sh runs both modes one after the other.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "io/file.h"
#include "sched/blocking.h"
#include "sched/scheduler.h"

namespace {

using clock_type = std::chrono::steady_clock;
namespace stdfs = std::filesystem;

constexpr int tickers = 1000;
constexpr auto tick = std::chrono::milliseconds(10);
constexpr int hammers = 8;
constexpr std::size_t big_file_size = 256 << 20;
constexpr std::size_t write_chunk = 1 << 20;
constexpr std::size_t read_chunk = 64 << 10;

void check(bool ok, const char* what) {
  if (!ok) {
    std::perror(what);
    std::exit(1);
  }
}

// The file system work of one hammer fiber, once: done through the pool
// (spindle's file API) or with the same system calls on the worker.
void hammer_once(bool pool, const stdfs::path& dir, int id, const stdfs::path& big,
                 std::vector<std::byte>& buf, std::uint32_t& rng) {
  char name[2][16];
  std::snprintf(name[0], sizeof name[0], "w%d", id);
  std::snprintf(name[1], sizeof name[1], "m%d", id);
  const stdfs::path mine = dir / name[0];
  const stdfs::path moved = dir / name[1];
  rng = rng * 1664525u + 1013904223u;
  const auto off = static_cast<std::uint64_t>(rng % (big_file_size / read_chunk)) * read_chunk;
  std::span<std::byte> chunk(buf.data(), read_chunk);
  if (pool) {
    {
      spindle::file w = spindle::file::open(
          mine, spindle::open_mode::write | spindle::open_mode::create | spindle::open_mode::truncate);
      w.write(std::span<const std::byte>(buf.data(), write_chunk));
      w.fdatasync();
    }
    spindle::file r = spindle::file::open(big, spindle::open_mode::read);
    (void)r.pread(chunk, off);
    (void)spindle::fs::stat(mine);
    spindle::fs::rename(mine, moved);
  } else {
    const int w = ::open(mine.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    check(w >= 0, "open");
    check(::write(w, buf.data(), write_chunk) == static_cast<ssize_t>(write_chunk), "write");
    check(::fdatasync(w) == 0, "fdatasync");
    ::close(w);
    const int r = ::open(big.c_str(), O_RDONLY | O_CLOEXEC);
    check(r >= 0, "open");
    check(::pread(r, chunk.data(), chunk.size(), static_cast<off_t>(off)) >= 0, "pread");
    ::close(r);
    struct stat st;
    check(::stat(mine.c_str(), &st) == 0, "stat");
    check(::rename(mine.c_str(), moved.c_str()) == 0, "rename");
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || (std::strcmp(argv[1], "pool") != 0 && std::strcmp(argv[1], "direct") != 0)) {
    std::fprintf(stderr, "usage: %s pool|direct [seconds=5] [workers=2]\n", argv[0]);
    return 2;
  }
  const bool pool = std::strcmp(argv[1], "pool") == 0;
  const int seconds = argc > 2 ? std::atoi(argv[2]) : 5;
  const unsigned workers = argc > 3 ? static_cast<unsigned>(std::atoi(argv[3])) : 2;

  // A scratch directory next to the temporary files, on the same disk.
  std::string tmpl = (stdfs::temp_directory_path() / "spindle_latency_XXXXXX").string();
  check(::mkdtemp(tmpl.data()) != nullptr, "mkdtemp");
  const stdfs::path dir = tmpl;
  const stdfs::path big = dir / "big";
  {
    std::string data(big_file_size, 'x');
    const int fd = ::open(big.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    check(fd >= 0 && ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) &&
              ::fsync(fd) == 0,
          "writing the big file");
    ::close(fd);
  }

  std::vector<std::vector<double>> late_us(tickers);
  std::atomic<long> fs_ops{0};
  spindle::run(spindle::options{.workers = workers}, [&] {
    const auto start = clock_type::now() + std::chrono::milliseconds(100);
    const auto end = start + std::chrono::seconds(seconds);
    std::atomic<bool> stop{false};
    std::vector<spindle::fiber> fibers;
    for (int i = 0; i < tickers; ++i) {
      fibers.emplace_back([&, i] {
        auto& mine = late_us[static_cast<std::size_t>(i)];
        mine.reserve(static_cast<std::size_t>(seconds) * 100 + 10);
        // Spread the tickers over the period, as independent timers are.
        auto next = start + tick * i / tickers;
        while (next < end) {
          spindle::this_fiber::sleep_until(next);
          mine.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - next).count());
          next += tick;
        }
      });
    }
    for (int h = 0; h < hammers; ++h) {
      fibers.emplace_back([&, h] {
        std::vector<std::byte> buf(write_chunk, std::byte{0x5a});
        std::uint32_t rng = 777u + static_cast<std::uint32_t>(h);
        spindle::this_fiber::sleep_until(start);
        while (!stop.load(std::memory_order_relaxed)) {
          hammer_once(pool, dir, h, big, buf, rng);
          fs_ops.fetch_add(1, std::memory_order_relaxed);
          // As a server's fiber would between requests (it parks on its
          // socket): without it, in `direct` mode, hammers that never
          // leave their workers would starve the tickers for good.
          spindle::this_fiber::yield();
        }
      });
    }
    // Keep the big file out of the page cache, so that its reads go to
    // the disk. Through the pool in both modes: it is not what is measured.
    spindle::fiber evictor([&] {
      while (clock_type::now() < end) {
        spindle::blocking([&] {
          const int fd = ::open(big.c_str(), O_RDONLY | O_CLOEXEC);
          if (fd >= 0) {
            ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            ::close(fd);
          }
        });
        spindle::this_fiber::sleep_for(std::chrono::milliseconds(50));
      }
    });
    for (int i = 0; i < tickers; ++i) fibers[static_cast<std::size_t>(i)].join();
    stop = true;
    for (auto& f : fibers) {
      if (f.joinable()) f.join();
    }
    evictor.join();
  });

  std::vector<double> all;
  for (auto& v : late_us) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all.empty() ? 0.0 : all[std::min(all.size() - 1, static_cast<std::size_t>(p * static_cast<double>(all.size())))];
  };
  std::printf("%-6s workers=%u ticks=%zu lateness_us p50=%.0f p99=%.0f p99.9=%.0f max=%.0f fs_ops=%ld (%.0f/s)\n",
              pool ? "pool" : "direct", workers, all.size(), pct(0.50), pct(0.99), pct(0.999),
              all.empty() ? 0.0 : all.back(), fs_ops.load(),
              static_cast<double>(fs_ops.load()) / seconds);
  std::error_code ec;
  stdfs::remove_all(dir, ec);
  return 0;
}
