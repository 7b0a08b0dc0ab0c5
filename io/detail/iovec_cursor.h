// iovec_cursor: a vector of buffers moved by several vectored system calls
// (writev, sendmsg, readv), each of which may stop anywhere, in the middle
// of a buffer too. Used by connection::write_all() and by file's readv()
// and writev().
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <climits>
#include <cstddef>
#include <limits>
#include <span>

#include "fiber/assert.h"

namespace spindle::detail {

// Buffers handed to one vectored call. More would save system calls only
// for vectors of many tiny buffers; 64 keeps the copy on the stack small
// (1 KiB: the frame of a parked writer, and the blocking pool's fallback
// may run on a fiber's stack) and is far below IOV_MAX (1024 on Linux).
inline constexpr std::size_t iov_batch = 64;
static_assert(iov_batch <= IOV_MAX);

// The most one vectored call may be asked for: buffers that sum past
// SSIZE_MAX make it fail with EINVAL. (Linux moves at most MAX_RW_COUNT,
// about 2 GiB, per call anyway and returns a short count, which the cursor
// resumes from.)
inline constexpr std::size_t max_io_bytes = static_cast<std::size_t>(std::numeric_limits<ssize_t>::max());

// iovec_cursor walks `bufs`, which it never changes:
//
//   iovec_cursor cur(bufs);
//   iovec batch[iov_batch];
//   while (!cur.done()) {
//     const ssize_t n = ::writev(fd, batch, cur.fill(batch));
//     if (n < 0) ...;
//     cur.advance(static_cast<std::size_t>(n));
//   }
class iovec_cursor {
 public:
  explicit iovec_cursor(std::span<const iovec> bufs) noexcept : bufs_(bufs) { skip_finished(); }

  // done() says whether every byte has moved.
  bool done() const noexcept { return first_ == bufs_.size(); }

  // fill() copies what is left into `batch`: at most iov_batch buffers,
  // none of them empty, at most max_io_bytes in all. Returns how many;
  // at least one unless done().
  int fill(iovec (&batch)[iov_batch]) const noexcept {
    int count = 0;
    std::size_t want = 0;
    for (std::size_t i = first_; i < bufs_.size() && count < static_cast<int>(iov_batch) && want < max_io_bytes;
         ++i) {
      iovec v = bufs_[i];
      if (i == first_) {
        v.iov_base = static_cast<char*>(v.iov_base) + skip_;
        v.iov_len -= skip_;
      }
      if (v.iov_len == 0) continue;
      if (v.iov_len > max_io_bytes - want) v.iov_len = max_io_bytes - want;
      want += v.iov_len;
      batch[count++] = v;
    }
    return count;
  }

  // advance() moves past `n` bytes that a call took from the last fill().
  void advance(std::size_t n) noexcept {
    while (n > 0) {
      SPINDLE_ASSERT(first_ < bufs_.size());  // no more than fill() offered
      const std::size_t rest = bufs_[first_].iov_len - skip_;
      if (n < rest) {
        skip_ += n;
        return;
      }
      n -= rest;
      ++first_;
      skip_ = 0;
    }
    skip_finished();
  }

 private:
  // Steps past finished (and empty) buffers.
  void skip_finished() noexcept {
    while (first_ < bufs_.size() && skip_ == bufs_[first_].iov_len) {
      ++first_;
      skip_ = 0;
    }
  }

  std::span<const iovec> bufs_;
  std::size_t first_ = 0;  // the first buffer not finished yet...
  std::size_t skip_ = 0;   // ...and how much of it is done
};

}  // namespace spindle::detail
