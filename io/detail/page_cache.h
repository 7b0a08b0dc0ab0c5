// Reading a regular file on the worker when the page cache already holds
// what is asked for, and on the blocking pool only when it does not: the
// fast path of spindle::file's reads and of connection::send_file().
//
// epoll cannot say whether a regular file's read would block, so every
// file call used to be a pool round trip (~15 µs: two thread handoffs)
// even for data already in memory, where the read itself takes well under
// a microsecond. Two kernel interfaces answer the question without
// blocking:
//
//   preadv2(..., RWF_NOWAIT) (Linux 4.14; buffered reads since 5.x) copies
//     what the page cache holds and fails with EAGAIN where it would have
//     to wait for the device (or returns a short count: the cached part).
//   cachestat(2) (Linux 6.5) counts the cached pages of a range, so that
//     sendfile(2), which has no NOWAIT flag, runs on the worker only for a
//     range that is all in memory.
//
// Where neither is available (an older kernel, a file system without
// NOWAIT reads) everything goes to the pool as before: both report
// "unknown", never a wrong "cached". A page evicted between the check
// and the sendfile is read by the worker itself: a rare stall, not an
// error.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

namespace spindle::detail {

// The most one call reads on the worker. A read of cached data costs its
// copy, about 10 µs per 100 KiB here; past 256 KiB that is more than twice
// a pool round trip, so the hop no longer dominates, and a worker kept on
// one large copy delays every other fiber on it. Larger calls go to the
// pool whole.
inline constexpr std::size_t max_read_on_worker = 256 * 1024;

// The outcome of read_cached().
struct cached_read {
  std::size_t bytes = 0;  // copied, from the start of the buffers
  bool finished = false;  // the whole request is done: all read, or end of file
};

// read_cached() reads into `iov` (`count` buffers of `total` bytes in all)
// at `offset` (-1: at the file offset, which it advances) without waiting
// for the device: preadv2(RWF_NOWAIT), again after a short count. Stops at
// the first part that is not cached, and at any error, which it leaves to
// the pool's attempt to report (so errors read as they always did). Does
// nothing for a request over max_read_on_worker. Never blocks on I/O.
cached_read read_cached(int fd, const iovec* iov, int count, std::size_t total, off_t offset) noexcept;

// The answer of range_cached().
enum class cache_state { cached, not_cached, unknown };

// range_cached() says whether every page of `len` bytes of `fd` from
// `offset` is in the page cache (cachestat(2)); `unknown` on a kernel
// without it (remembered, so asked once per process) or on any error. A
// range past the end of the file has no pages there: not_cached.
cache_state range_cached(int fd, std::uint64_t offset, std::size_t len) noexcept;

}  // namespace spindle::detail
