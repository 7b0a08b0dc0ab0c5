// What spindle::file (io/file.cpp) and spindle::fs (io/fs.cpp) share: the
// pool-side helpers, which run on a pool thread (or inline on a plain
// thread), never park, and report errors as errno values; and the mapping
// of their results to std types.
//
// Every operation is one spindle::blocking() call: the lambda handed to
// the pool does the whole job (all the read(2)s of a large buffer, the
// open+fstat+read+close of read_file) and returns an errno value, so the
// caller parks once per operation. Rejected: one pool call per syscall
// (an 8 MiB read would pay dozens of hops when the kernel returns short
// counts, and read_file four), and running small operations inline on
// the worker (a regular file's "fast" read still blocks on a page-cache
// miss or on NFS, which is the reason the pool exists).
//
// The lambdas read errno on the pool thread and return it by value:
// errno belongs to the thread that made the call, not to the fiber.
// EINTR is retried everywhere except close(2), which on Linux releases
// the descriptor even when it reports EINTR (retrying could close a
// descriptor another thread has just been given).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <filesystem>
#include <span>
#include <system_error>

#include "io/detail/iovec_cursor.h"
#include "io/fs.h"
#include "sched/blocking.h"

namespace spindle::detail {

inline std::error_code errno_code(int e) noexcept { return {e, std::generic_category()}; }
// 0 (success) as an empty error_code, else errno_code().
inline std::error_code to_code(int e) noexcept { return e == 0 ? std::error_code() : errno_code(e); }

inline mode_t to_mode(std::filesystem::perms perms) noexcept {
  return static_cast<mode_t>(perms & std::filesystem::perms::mask);
}

// retry_eintr() calls `call` (a syscall wrapper returning -1 with errno on
// failure) until it is not interrupted; returns 0 or the errno value. (Not
// fd_state's retry, which also waits out EAGAIN on a socket.)
template <class Call>
int retry_eintr(Call call) noexcept {
  for (;;) {
    if (call() >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

// on_pool() runs retry_eintr(call) on the blocking pool; 0 or an errno.
template <class Call>
int on_pool(Call call) noexcept {
  return spindle::blocking([&call]() noexcept { return retry_eintr(call); });
}

// open(2), retried on EINTR; 0 (with `fd`) or an errno value.
int open_fd(const char* name, int flags, mode_t mode, int& fd) noexcept;

// A transfer's outcome: the bytes moved, and the errno value that stopped
// it early (0 when it ran to the end or to end of file).
struct io_result {
  std::size_t bytes = 0;
  int error = 0;
};

// transfer() moves `n` bytes with `op(done)`, a read/write-like call for
// the bytes from `done` on, looping over short counts and EINTR. A read
// stops at end of file (op returns 0). A write that returns 0 for a
// non-empty buffer would loop forever: it is reported as EIO (POSIX only
// allows it for a 0-byte request).
template <class Op>
io_result transfer(std::size_t n, bool is_read, Op op) noexcept {
  io_result r;
  while (r.bytes < n) {
    const ssize_t got = op(r.bytes);
    if (got > 0) {
      r.bytes += static_cast<std::size_t>(got);
    } else if (got == 0) {
      if (!is_read) r.error = EIO;
      break;
    } else if (errno != EINTR) {
      r.error = errno;
      break;
    }
  }
  return r;
}

// transfer_vec() moves all the bytes of `bufs` with `op(iov, count)`, a
// readv/writev-like call, iov_batch buffers at a time, resuming inside a
// buffer after a partial transfer; end of file and a 0-byte write as in
// transfer(). `bufs` itself is left as it is.
template <class Op>
io_result transfer_vec(std::span<const iovec> bufs, bool is_read, Op op) noexcept {
  io_result r;
  iovec_cursor cursor(bufs);
  iovec batch[iov_batch];
  while (!cursor.done()) {
    const ssize_t got = op(batch, cursor.fill(batch));
    if (got < 0) {
      if (errno == EINTR) continue;
      r.error = errno;
      break;
    }
    if (got == 0) {
      if (!is_read) r.error = EIO;
      break;
    }
    r.bytes += static_cast<std::size_t>(got);
    cursor.advance(static_cast<std::size_t>(got));
  }
  return r;
}

std::filesystem::file_type to_file_type(mode_t mode) noexcept;
file_status to_status(const struct stat& st) noexcept;

}  // namespace spindle::detail
