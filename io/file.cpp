// spindle::file (see file.h): each operation is one pool round trip, as
// io/detail/file_ops.h explains, except a read of data the page cache
// holds, which runs on the worker (io/detail/page_cache.h).
#include "io/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <limits>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

#include "io/detail/file_ops.h"
#include "io/detail/iovec_cursor.h"
#include "io/detail/or_throw.h"
#include "io/detail/page_cache.h"

namespace spindle {
namespace {

namespace stdfs = std::filesystem;
using detail::errno_code;
using detail::io_result;
using detail::or_throw_fs;
using detail::to_code;
using detail::transfer;
using detail::transfer_vec;

// open_flags() maps `mode` to open(2) flags; false for a combination that
// makes no sense (or unknown bits).
bool open_flags(open_mode mode, int& flags) noexcept {
  // Every bit some open_mode has: more is a caller's mistake.
  constexpr unsigned known = static_cast<unsigned>(
      open_mode::read | open_mode::write | open_mode::append | open_mode::create |
      open_mode::truncate | open_mode::exclusive);
  const auto has = [mode](open_mode m) { return (mode & m) == m; };
  const bool rd = has(open_mode::read);
  const bool wr = has(open_mode::write);
  if ((static_cast<unsigned>(mode) & ~known) != 0) return false;
  if (!rd && !wr) return false;
  if (has(open_mode::truncate) && !wr) return false;
  if (has(open_mode::exclusive) && !has(open_mode::create)) return false;
  flags = O_CLOEXEC | (rd && wr ? O_RDWR : wr ? O_WRONLY : O_RDONLY);
  if (has(open_mode::append)) flags |= O_APPEND;
  if (has(open_mode::create)) flags |= O_CREAT;
  if (has(open_mode::truncate)) flags |= O_TRUNC;
  if (has(open_mode::exclusive)) flags |= O_EXCL;
  return true;
}

// rejects_offset() says whether `offset` (pread, pwrite, truncate) must
// fail with invalid_argument, set in `ec`, before any round trip: it does
// not fit off_t, and the file is open (a closed file reports that first).
bool rejects_offset(int fd, std::uint64_t offset, std::error_code& ec) noexcept {
  if (fd < 0 || offset <= static_cast<std::uint64_t>(std::numeric_limits<off_t>::max())) return false;
  ec = std::make_error_code(std::errc::invalid_argument);
  return true;
}

// on_open_file() is the body of every operation on an open file: `ec`
// cleared; bad_file_descriptor, with no pool round trip, when `fd` is not
// open (-1); else `job(fd)`, an io_result, run on the pool, its error in
// `ec`. Returns the bytes it moved.
template <class Job>
std::size_t on_open_file(int fd, std::error_code& ec, Job job) noexcept {
  ec.clear();
  if (fd < 0) {
    ec = std::make_error_code(std::errc::bad_file_descriptor);
    return 0;
  }
  const io_result r = spindle::blocking([&]() noexcept -> io_result { return job(fd); });
  ec = to_code(r.error);
  return r.bytes;
}

// A job of on_open_file() for read(), write(), pread() and pwrite(): all of
// `buf` (a read stops at end of file), at `offset` if there is one, else
// at the file offset. `Byte` is const for a write.
template <class Byte>
auto whole_buffer(std::span<Byte> buf, std::optional<std::uint64_t> offset = std::nullopt) noexcept {
  constexpr bool is_read = !std::is_const_v<Byte>;
  return [buf, offset](int fd) noexcept {
    return transfer(buf.size(), is_read, [&](std::size_t done) {
      Byte* const p = buf.data() + done;
      const std::size_t n = buf.size() - done;
      if constexpr (is_read) {
        return offset ? ::pread(fd, p, n, static_cast<off_t>(*offset + done)) : ::read(fd, p, n);
      } else {
        return offset ? ::pwrite(fd, p, n, static_cast<off_t>(*offset + done)) : ::write(fd, p, n);
      }
    });
  };
}

// read_on_worker_first() is on_open_file() for a read of `total` bytes
// into `iov` (`count` buffers) at `offset` (-1: at the file offset): what
// the page cache holds is copied on the calling worker
// (detail::read_cached()), and only the rest, if any, costs a pool round
// trip, `rest(fd, done)` reading from byte `done` on.
template <class Rest>
std::size_t read_on_worker_first(int fd, const iovec* iov, int count, std::size_t total, off_t offset,
                                 std::error_code& ec, Rest rest) noexcept {
  ec.clear();
  if (fd < 0) {
    ec = std::make_error_code(std::errc::bad_file_descriptor);
    return 0;
  }
  const detail::cached_read fast = detail::read_cached(fd, iov, count, total, offset);
  if (fast.finished) return fast.bytes;
  const io_result r = spindle::blocking([&]() noexcept -> io_result { return rest(fd, fast.bytes); });
  ec = to_code(r.error);
  return fast.bytes + r.bytes;
}

// A job of on_open_file() for readv() and writev(): all of `bufs`.
auto all_buffers(std::span<const iovec> bufs, bool is_read) noexcept {
  return [bufs, is_read](int fd) noexcept {
    return transfer_vec(bufs, is_read, [fd, is_read](const iovec* iov, int count) {
      return is_read ? ::readv(fd, iov, count) : ::writev(fd, iov, count);
    });
  };
}

// A job of on_open_file() that moves no bytes: `call(fd)`, retried on EINTR.
template <class Call>
auto no_bytes(Call call) noexcept {
  return [call](int fd) noexcept { return io_result{0, detail::retry_eintr([&] { return call(fd); })}; };
}

}  // namespace

file::file(file&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {
  other.path_.clear();
}

file& file::operator=(file&& other) noexcept {
  if (this != &other) {
    std::error_code ignored;
    if (is_open()) close(ignored);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}

file::~file() {
  std::error_code ignored;
  if (is_open()) close(ignored);
}

file file::open(const stdfs::path& p, open_mode mode, stdfs::perms perms) {
  return or_throw_fs("spindle::file::open", p,
                     [&](std::error_code& ec) { return open(p, mode, perms, ec); });
}

file file::open(const stdfs::path& p, open_mode mode, std::error_code& ec) noexcept {
  return open(p, mode, fs::default_file_perms, ec);
}

file file::open(const stdfs::path& p, open_mode mode, stdfs::perms perms,
                std::error_code& ec) noexcept {
  ec.clear();
  int flags = 0;
  if (!open_flags(mode, flags)) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return file();
  }
  stdfs::path copy;
  try {
    copy = p;  // before opening: a descriptor never leaks to a bad_alloc
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    return file();
  }
  const char* name = p.c_str();
  const mode_t m = detail::to_mode(perms);
  int fd = -1;
  if (const int e = spindle::blocking([&]() noexcept { return detail::open_fd(name, flags, m, fd); })) {
    ec = errno_code(e);
    return file();
  }
  return file(fd, std::move(copy));
}

file file::adopt(int fd, stdfs::path p) noexcept { return file(fd < 0 ? -1 : fd, std::move(p)); }

int file::release() noexcept { return std::exchange(fd_, -1); }

void file::close() {
  or_throw_fs("spindle::file::close", path_, [&](std::error_code& ec) { close(ec); });
}

void file::close(std::error_code& ec) noexcept {
  // Not retried on EINTR: see io/detail/file_ops.h.
  on_open_file(std::exchange(fd_, -1), ec, [](int fd) noexcept {
    return io_result{0, ::close(fd) == 0 || errno == EINTR ? 0 : errno};
  });
}

std::size_t file::read(std::span<std::byte> buf) {
  return or_throw_fs("spindle::file::read", path_, [&](std::error_code& ec) { return read(buf, ec); });
}

std::size_t file::read(std::span<std::byte> buf, std::error_code& ec) noexcept {
  const iovec v{buf.data(), buf.size()};
  return read_on_worker_first(fd_, &v, 1, buf.size(), -1, ec, [buf](int fd, std::size_t done) noexcept {
    return whole_buffer(buf.subspan(done))(fd);
  });
}

std::size_t file::pread(std::span<std::byte> buf, std::uint64_t offset) {
  return or_throw_fs("spindle::file::pread", path_,
                     [&](std::error_code& ec) { return pread(buf, offset, ec); });
}

std::size_t file::pread(std::span<std::byte> buf, std::uint64_t offset,
                        std::error_code& ec) noexcept {
  if (rejects_offset(fd_, offset, ec)) return 0;
  const iovec v{buf.data(), buf.size()};
  return read_on_worker_first(fd_, &v, 1, buf.size(), static_cast<off_t>(offset), ec,
                              [buf, offset](int fd, std::size_t done) noexcept {
                                return whole_buffer(buf.subspan(done), offset + done)(fd);
                              });
}

std::size_t file::readv(std::span<const iovec> bufs) {
  return or_throw_fs("spindle::file::readv", path_, [&](std::error_code& ec) { return readv(bufs, ec); });
}

std::size_t file::readv(std::span<const iovec> bufs, std::error_code& ec) noexcept {
  // Only a vector one call takes is tried on the worker (more buffers, or
  // more bytes than it allows, are a large read: see max_read_on_worker).
  std::size_t total = 0;
  for (const iovec& v : bufs) total += v.iov_len;
  if (bufs.size() > detail::iov_batch || total > detail::max_read_on_worker) {
    return on_open_file(fd_, ec, all_buffers(bufs, true));
  }
  return read_on_worker_first(
      fd_, bufs.data(), static_cast<int>(bufs.size()), total, -1, ec, [bufs](int fd, std::size_t done) noexcept {
        // The buffers from byte `done` on: the same vector, its first
        // `done` bytes skipped (iovec_cursor never changes `bufs`).
        detail::iovec_cursor cursor(bufs);
        cursor.advance(done);
        iovec rest[detail::iov_batch];
        const int n = cursor.done() ? 0 : cursor.fill(rest);
        return all_buffers(std::span<const iovec>(rest, static_cast<std::size_t>(n)), true)(fd);
      });
}

std::size_t file::write(std::span<const std::byte> data) {
  return or_throw_fs("spindle::file::write", path_, [&](std::error_code& ec) { return write(data, ec); });
}

std::size_t file::write(std::span<const std::byte> data, std::error_code& ec) noexcept {
  return on_open_file(fd_, ec, whole_buffer(data));
}

std::size_t file::pwrite(std::span<const std::byte> data, std::uint64_t offset) {
  return or_throw_fs("spindle::file::pwrite", path_,
                     [&](std::error_code& ec) { return pwrite(data, offset, ec); });
}

std::size_t file::pwrite(std::span<const std::byte> data, std::uint64_t offset,
                         std::error_code& ec) noexcept {
  if (rejects_offset(fd_, offset, ec)) return 0;
  return on_open_file(fd_, ec, whole_buffer(data, offset));
}

std::size_t file::writev(std::span<const iovec> bufs) {
  return or_throw_fs("spindle::file::writev", path_, [&](std::error_code& ec) { return writev(bufs, ec); });
}

std::size_t file::writev(std::span<const iovec> bufs, std::error_code& ec) noexcept {
  return on_open_file(fd_, ec, all_buffers(bufs, false));
}

void file::fsync() {
  or_throw_fs("spindle::file::fsync", path_, [&](std::error_code& ec) { fsync(ec); });
}

void file::fsync(std::error_code& ec) noexcept {
  on_open_file(fd_, ec, no_bytes([](int fd) { return ::fsync(fd); }));
}

void file::fdatasync() {
  or_throw_fs("spindle::file::fdatasync", path_, [&](std::error_code& ec) { fdatasync(ec); });
}

void file::fdatasync(std::error_code& ec) noexcept {
  on_open_file(fd_, ec, no_bytes([](int fd) { return ::fdatasync(fd); }));
}

void file::truncate(std::uint64_t size) {
  or_throw_fs("spindle::file::truncate", path_, [&](std::error_code& ec) { truncate(size, ec); });
}

void file::truncate(std::uint64_t size, std::error_code& ec) noexcept {
  if (rejects_offset(fd_, size, ec)) return;
  on_open_file(fd_, ec, no_bytes([size](int fd) { return ::ftruncate(fd, static_cast<off_t>(size)); }));
}

file_status file::stat() const {
  return or_throw_fs("spindle::file::stat", path_, [&](std::error_code& ec) { return stat(ec); });
}

file_status file::stat(std::error_code& ec) const noexcept {
  struct stat st;
  on_open_file(fd_, ec, no_bytes([&st](int fd) { return ::fstat(fd, &st); }));
  return ec ? file_status{} : detail::to_status(st);
}

}  // namespace spindle
