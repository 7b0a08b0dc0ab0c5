#include "io/detail/page_cache.h"

#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "io/detail/iovec_cursor.h"

namespace spindle::detail {
namespace {

// cachestat(2)'s number and structures (Linux 6.5, include/uapi/linux/mman.h),
// which Debian 12's headers predate. The number is the same on every
// architecture that has the generic table.
#ifndef SYS_cachestat
constexpr long sys_cachestat = 451;
#else
constexpr long sys_cachestat = SYS_cachestat;
#endif

struct cachestat_range {
  std::uint64_t off;
  std::uint64_t len;  // 0: to the end of the file
};

struct cachestat_result {
  std::uint64_t nr_cache;
  std::uint64_t nr_dirty;
  std::uint64_t nr_writeback;
  std::uint64_t nr_evicted;
  std::uint64_t nr_recently_evicted;
};

// Set once cachestat(2) is found missing (ENOSYS: an older kernel, or a
// seccomp filter that refuses it): later calls answer `unknown` at once.
std::atomic<bool> no_cachestat{false};

std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

}  // namespace

cached_read read_cached(int fd, const iovec* iov, int count, std::size_t total, off_t offset) noexcept {
  cached_read r;
  if (total > max_read_on_worker) return r;
  iovec_cursor cursor(std::span<const iovec>(iov, static_cast<std::size_t>(count)));
  iovec batch[iov_batch];
  while (!cursor.done()) {
    const off_t at = offset < 0 ? -1 : offset + static_cast<off_t>(r.bytes);
    const ssize_t got = ::preadv2(fd, batch, cursor.fill(batch), at, RWF_NOWAIT);
    if (got > 0) {
      r.bytes += static_cast<std::size_t>(got);
      cursor.advance(static_cast<std::size_t>(got));
    } else if (got == 0) {
      r.finished = true;  // end of file
      return r;
    } else if (errno != EINTR) {
      return r;  // EAGAIN: not cached; anything else: the pool reports it
    }
  }
  r.finished = true;
  return r;
}

cache_state range_cached(int fd, std::uint64_t offset, std::size_t len) noexcept {
  if (len == 0 || no_cachestat.load(std::memory_order_relaxed)) return cache_state::unknown;
  const std::size_t page = page_size();
  const std::uint64_t first = offset / page;
  const std::uint64_t last = (offset + len - 1) / page;
  cachestat_range range{first * page, (last - first + 1) * page};
  cachestat_result st{};
  if (::syscall(sys_cachestat, fd, &range, &st, 0) != 0) {
    if (errno == ENOSYS) no_cachestat.store(true, std::memory_order_relaxed);
    return cache_state::unknown;
  }
  return st.nr_cache == last - first + 1 ? cache_state::cached : cache_state::not_cached;
}

}  // namespace spindle::detail
