// spindle::file and spindle::fs (see file.h).
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
#include "io/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <limits>
#include <new>
#include <utility>

namespace spindle {
namespace {

namespace stdfs = std::filesystem;

std::error_code errno_code(int e) noexcept { return {e, std::generic_category()}; }

const std::error_code& bad_fd_code() noexcept {
  static const std::error_code ec = std::make_error_code(std::errc::bad_file_descriptor);
  return ec;
}

[[noreturn]] void throw_fs(const char* what, const stdfs::path& p, std::error_code ec) {
  throw stdfs::filesystem_error(what, p, ec);
}

[[noreturn]] void throw_fs(const char* what, const stdfs::path& p1, const stdfs::path& p2,
                           std::error_code ec) {
  throw stdfs::filesystem_error(what, p1, p2, ec);
}

mode_t to_mode(stdfs::perms perms) noexcept {
  return static_cast<mode_t>(perms & stdfs::perms::mask);
}

// open_flags() maps `mode` to open(2) flags; false for a combination that
// makes no sense (or unknown bits).
bool open_flags(open_mode mode, int& flags) noexcept {
  constexpr unsigned known = 63;  // the six open_mode bits
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

// ---- Pool-side helpers: they run on a pool thread (or inline on a plain
// thread), never park, and report errors as errno values. ----

// retry() calls `call` (a syscall wrapper returning -1 with errno on
// failure) until it is not interrupted; returns 0 or the errno value.
template <class Call>
int retry(Call call) noexcept {
  for (;;) {
    if (call() >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

int open_fd(const char* name, int flags, mode_t mode, int& fd) noexcept {
  return retry([&] { return fd = ::open(name, flags, mode); });
}

// A transfer's outcome: the bytes moved, and the errno value that stopped
// it early (0 when it ran to the end or to end of file).
struct io_result {
  std::size_t bytes = 0;
  int error = 0;
};

// The most one readv/writev may be asked for: buffers that sum past
// SSIZE_MAX make it fail with EINVAL. (Linux moves at most MAX_RW_COUNT,
// about 2 GiB, per call anyway and returns a short count, which the loops
// below resume from.)
constexpr std::size_t max_io_bytes = static_cast<std::size_t>(std::numeric_limits<ssize_t>::max());

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

// Buffers handed to one readv/writev. More would save syscalls only for
// vectors of many tiny buffers; 64 keeps the copy on the stack small (the
// pool's fallback may run this on a fiber's stack) and is far below
// IOV_MAX (1024 on Linux).
constexpr std::size_t iov_batch = 64;
static_assert(iov_batch <= IOV_MAX);

// transfer_vec() moves all the bytes of `bufs` with `op(iov, count)`,
// a readv/writev-like call, iov_batch buffers at a time, resuming inside a
// buffer after a partial transfer. `bufs` itself is left as it is.
template <class Op>
io_result transfer_vec(std::span<const iovec> bufs, bool is_read, Op op) noexcept {
  io_result r;
  std::size_t first = 0;  // the first buffer not finished yet...
  std::size_t skip = 0;   // ...and how much of it is done
  iovec batch[iov_batch];
  for (;;) {
    while (first < bufs.size() && skip == bufs[first].iov_len) {
      ++first;
      skip = 0;
    }
    if (first == bufs.size()) break;
    int count = 0;
    std::size_t want = 0;
    for (std::size_t i = first;
         i < bufs.size() && count < static_cast<int>(iov_batch) && want < max_io_bytes; ++i) {
      iovec v = bufs[i];
      if (i == first) {
        v.iov_base = static_cast<char*>(v.iov_base) + skip;
        v.iov_len -= skip;
      }
      if (v.iov_len == 0) continue;
      if (v.iov_len > max_io_bytes - want) v.iov_len = max_io_bytes - want;
      want += v.iov_len;
      batch[count++] = v;
    }
    const ssize_t got = op(batch, count);
    if (got < 0) {
      if (errno == EINTR) continue;
      r.error = errno;
      break;
    }
    if (got == 0) {
      if (!is_read) r.error = EIO;  // as in transfer()
      break;
    }
    r.bytes += static_cast<std::size_t>(got);
    // Advance past what moved; it never exceeds the rest of the buffers.
    for (auto left = static_cast<std::size_t>(got); left > 0;) {
      const std::size_t rest = bufs[first].iov_len - skip;
      if (left < rest) {
        skip += left;
        left = 0;
      } else {
        left -= rest;
        ++first;
        skip = 0;
      }
    }
  }
  return r;
}

stdfs::file_type to_file_type(mode_t mode) noexcept {
  switch (mode & S_IFMT) {
    case S_IFREG: return stdfs::file_type::regular;
    case S_IFDIR: return stdfs::file_type::directory;
    case S_IFLNK: return stdfs::file_type::symlink;
    case S_IFBLK: return stdfs::file_type::block;
    case S_IFCHR: return stdfs::file_type::character;
    case S_IFIFO: return stdfs::file_type::fifo;
    case S_IFSOCK: return stdfs::file_type::socket;
    default: return stdfs::file_type::unknown;
  }
}

stdfs::file_type dirent_file_type(unsigned char d_type) noexcept {
  switch (d_type) {
    case DT_REG: return stdfs::file_type::regular;
    case DT_DIR: return stdfs::file_type::directory;
    case DT_LNK: return stdfs::file_type::symlink;
    case DT_BLK: return stdfs::file_type::block;
    case DT_CHR: return stdfs::file_type::character;
    case DT_FIFO: return stdfs::file_type::fifo;
    case DT_SOCK: return stdfs::file_type::socket;
    default: return stdfs::file_type::unknown;
  }
}

file_status to_status(const struct stat& st) noexcept {
  using namespace std::chrono;
  file_status s;
  s.size = static_cast<std::uint64_t>(st.st_size);
  s.type = to_file_type(st.st_mode);
  s.permissions = static_cast<stdfs::perms>(st.st_mode & 07777);
  const sys_time<nanoseconds> mtime{seconds(st.st_mtim.tv_sec) + nanoseconds(st.st_mtim.tv_nsec)};
  s.last_write_time = time_point_cast<stdfs::file_time_type::duration>(file_clock::from_sys(mtime));
  s.hard_link_count = static_cast<std::uint64_t>(st.st_nlink);
  s.inode = static_cast<std::uint64_t>(st.st_ino);
  s.device = static_cast<std::uint64_t>(st.st_dev);
  return s;
}

struct read_result {
  std::string data;
  int error = 0;
};

// First buffer for a file whose size fstat does not know (/proc, pipes).
constexpr std::size_t unknown_size_chunk = 4096;

// read_whole_file() is read_file's whole job, in one pool call.
read_result read_whole_file(const char* name) noexcept {
  read_result r;
  int fd = -1;
  if ((r.error = open_fd(name, O_RDONLY | O_CLOEXEC, 0, fd)) != 0) return r;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    r.error = errno;
  } else if (S_ISDIR(st.st_mode)) {
    r.error = EISDIR;  // read(2) would say so too, but only after the allocation
  } else {
    try {
      // One byte more than the size, so that the read which fills the
      // file's bytes comes back short instead of making the buffer grow
      // before the read that sees end of file.
      std::size_t len = 0;
      r.data.resize(S_ISREG(st.st_mode) && st.st_size > 0 ? static_cast<std::size_t>(st.st_size) + 1
                                                          : unknown_size_chunk);
      for (;;) {
        if (len == r.data.size()) r.data.resize(2 * len);
        const io_result got = transfer(r.data.size() - len, true, [&](std::size_t done) {
          return ::read(fd, r.data.data() + len + done, r.data.size() - len - done);
        });
        len += got.bytes;
        if (got.error != 0) {
          r.error = got.error;
          break;
        }
        if (len < r.data.size()) break;  // end of file
      }
      r.data.resize(len);
    } catch (const std::bad_alloc&) {
      r.error = ENOMEM;
    }
  }
  ::close(fd);  // read-only: nothing to lose
  if (r.error != 0) r.data = std::string();
  return r;
}

int write_whole_file(const char* name, std::string_view data, bool sync, mode_t mode) noexcept {
  int fd = -1;
  if (const int e = open_fd(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode, fd)) return e;
  int err = transfer(data.size(), false, [&](std::size_t done) {
              return ::write(fd, data.data() + done, data.size() - done);
            }).error;
  if (err == 0 && sync) err = retry([fd] { return ::fsync(fd); });
  // close(2) can report a delayed write error (NFS); EINTR still closed it.
  if (::close(fd) != 0 && err == 0 && errno != EINTR) err = errno;
  return err;
}

int list_whole_directory(const char* name, std::vector<fs::directory_entry>& out) noexcept {
  DIR* dir = ::opendir(name);  // glibc opens it O_CLOEXEC
  if (dir == nullptr) return errno;
  int err = 0;
  try {
    for (;;) {
      errno = 0;
      const dirent* e = ::readdir(dir);
      if (e == nullptr) {
        err = errno;  // 0 at the end of the directory
        break;
      }
      const std::string_view entry_name(e->d_name);
      if (entry_name == "." || entry_name == "..") continue;
      stdfs::file_type type = dirent_file_type(e->d_type);
      if (type == stdfs::file_type::unknown) {
        // The file system does not fill d_type in (some XFS, NFS, FUSE).
        struct stat st;
        if (::fstatat(::dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
          type = to_file_type(st.st_mode);
        } else if (errno == ENOENT) {
          continue;  // removed since readdir saw it
        }
      }
      out.push_back(fs::directory_entry{std::string(entry_name), type});
    }
  } catch (const std::bad_alloc&) {
    err = ENOMEM;
  }
  ::closedir(dir);
  return err;
}

// remove_path() is unlink, or rmdir for a directory.
int remove_path(const char* name) noexcept {
  const int e = retry([name] { return ::unlink(name); });
  // Linux says EISDIR for a directory; POSIX allows EPERM.
  if (e != EISDIR && e != EPERM) return e;
  const int e2 = retry([name] { return ::rmdir(name); });
  return e == EPERM && e2 == ENOTDIR ? e : e2;  // a real EPERM on a file
}

// on_pool() runs retry(call) on the pool; 0 or an errno value.
template <class Call>
int on_pool(Call call) noexcept {
  return spindle::blocking([&call]() noexcept { return retry(call); });
}

std::error_code to_code(int e) noexcept { return e == 0 ? std::error_code() : errno_code(e); }

}  // namespace

// ---- file ----

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

void file::throw_error(const char* what, std::error_code ec) const { throw_fs(what, path_, ec); }

file file::open(const stdfs::path& p, open_mode mode, stdfs::perms perms) {
  std::error_code ec;
  file f = open(p, mode, perms, ec);
  if (ec) throw_fs("spindle::file::open", p, ec);
  return f;
}

file file::open(const stdfs::path& p, open_mode mode, std::error_code& ec) noexcept {
  return open(p, mode, stdfs::perms(0644), ec);
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
  const mode_t m = to_mode(perms);
  int fd = -1;
  if (const int e = spindle::blocking([&]() noexcept { return open_fd(name, flags, m, fd); })) {
    ec = errno_code(e);
    return file();
  }
  return file(fd, std::move(copy));
}

file file::adopt(int fd, stdfs::path p) noexcept { return file(fd < 0 ? -1 : fd, std::move(p)); }

int file::release() noexcept { return std::exchange(fd_, -1); }

void file::close() {
  std::error_code ec;
  close(ec);
  if (ec) throw_error("spindle::file::close", ec);
}

void file::close(std::error_code& ec) noexcept {
  ec.clear();
  if (!is_open()) {
    ec = bad_fd_code();
    return;
  }
  const int fd = std::exchange(fd_, -1);
  // Not retried on EINTR: see the top of this file.
  const int e =
      spindle::blocking([fd]() noexcept { return ::close(fd) == 0 || errno == EINTR ? 0 : errno; });
  ec = to_code(e);
}

std::size_t file::read(std::span<std::byte> buf) {
  std::error_code ec;
  const std::size_t n = read(buf, ec);
  if (ec) throw_error("spindle::file::read", ec);
  return n;
}

std::size_t file::read(std::span<std::byte> buf, std::error_code& ec) noexcept {
  ec.clear();
  if (!is_open()) {
    ec = bad_fd_code();
    return 0;
  }
  const int fd = fd_;
  const io_result r = spindle::blocking([fd, buf]() noexcept {
    return transfer(buf.size(), true, [&](std::size_t done) {
      return ::read(fd, buf.data() + done, buf.size() - done);
    });
  });
  ec = to_code(r.error);
  return r.bytes;
}

std::size_t file::pread(std::span<std::byte> buf, std::uint64_t offset) {
  std::error_code ec;
  const std::size_t n = pread(buf, offset, ec);
  if (ec) throw_error("spindle::file::pread", ec);
  return n;
}

std::size_t file::pread(std::span<std::byte> buf, std::uint64_t offset,
                        std::error_code& ec) noexcept {
  ec.clear();
  if (!is_open()) {
    ec = bad_fd_code();
    return 0;
  }
  if (offset > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max())) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return 0;
  }
  const int fd = fd_;
  const io_result r = spindle::blocking([fd, buf, offset]() noexcept {
    return transfer(buf.size(), true, [&](std::size_t done) {
      return ::pread(fd, buf.data() + done, buf.size() - done, static_cast<off_t>(offset + done));
    });
  });
  ec = to_code(r.error);
  return r.bytes;
}

std::size_t file::readv(std::span<const iovec> bufs) {
  std::error_code ec;
  const std::size_t n = readv(bufs, ec);
  if (ec) throw_error("spindle::file::readv", ec);
  return n;
}

std::size_t file::readv(std::span<const iovec> bufs, std::error_code& ec) noexcept {
  ec.clear();
  if (!is_open()) {
    ec = bad_fd_code();
    return 0;
  }
  const int fd = fd_;
  const io_result r = spindle::blocking([fd, bufs]() noexcept {
    return transfer_vec(bufs, true,
                        [fd](const iovec* iov, int count) { return ::readv(fd, iov, count); });
  });
  ec = to_code(r.error);
  return r.bytes;
}

std::size_t file::write(std::span<const std::byte> data) {
  std::error_code ec;
  const std::size_t n = write(data, ec);
  if (ec) throw_error("spindle::file::write", ec);
  return n;
}

std::size_t file::write(std::span<const std::byte> data, std::error_code& ec) noexcept {
  ec.clear();
  if (!is_open()) {
    ec = bad_fd_code();
    return 0;
  }
  const int fd = fd_;
  const io_result r = spindle::blocking([fd, data]() noexcept {
    return transfer(data.size(), false, [&](std::size_t done) {
      return ::write(fd, data.data() + done, data.size() - done);
    });
  });
  ec = to_code(r.error);
  return r.bytes;
}

std::size_t file::pwrite(std::span<const std::byte> data, std::uint64_t offset) {
  std::error_code ec;
  const std::size_t n = pwrite(data, offset, ec);
  if (ec) throw_error("spindle::file::pwrite", ec);
  return n;
}

std::size_t file::pwrite(std::span<const std::byte> data, std::uint64_t offset,
                         std::error_code& ec) noexcept {
  ec.clear();
  if (!is_open()) {
    ec = bad_fd_code();
    return 0;
  }
  if (offset > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max())) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return 0;
  }
  const int fd = fd_;
  const io_result r = spindle::blocking([fd, data, offset]() noexcept {
    return transfer(data.size(), false, [&](std::size_t done) {
      return ::pwrite(fd, data.data() + done, data.size() - done,
                      static_cast<off_t>(offset + done));
    });
  });
  ec = to_code(r.error);
  return r.bytes;
}

std::size_t file::writev(std::span<const iovec> bufs) {
  std::error_code ec;
  const std::size_t n = writev(bufs, ec);
  if (ec) throw_error("spindle::file::writev", ec);
  return n;
}

std::size_t file::writev(std::span<const iovec> bufs, std::error_code& ec) noexcept {
  ec.clear();
  if (!is_open()) {
    ec = bad_fd_code();
    return 0;
  }
  const int fd = fd_;
  const io_result r = spindle::blocking([fd, bufs]() noexcept {
    return transfer_vec(bufs, false,
                        [fd](const iovec* iov, int count) { return ::writev(fd, iov, count); });
  });
  ec = to_code(r.error);
  return r.bytes;
}

void file::fsync() {
  std::error_code ec;
  fsync(ec);
  if (ec) throw_error("spindle::file::fsync", ec);
}

void file::fsync(std::error_code& ec) noexcept {
  ec.clear();
  if (!is_open()) {
    ec = bad_fd_code();
    return;
  }
  const int fd = fd_;
  ec = to_code(on_pool([fd] { return ::fsync(fd); }));
}

void file::fdatasync() {
  std::error_code ec;
  fdatasync(ec);
  if (ec) throw_error("spindle::file::fdatasync", ec);
}

void file::fdatasync(std::error_code& ec) noexcept {
  ec.clear();
  if (!is_open()) {
    ec = bad_fd_code();
    return;
  }
  const int fd = fd_;
  ec = to_code(on_pool([fd] { return ::fdatasync(fd); }));
}

void file::truncate(std::uint64_t size) {
  std::error_code ec;
  truncate(size, ec);
  if (ec) throw_error("spindle::file::truncate", ec);
}

void file::truncate(std::uint64_t size, std::error_code& ec) noexcept {
  ec.clear();
  if (!is_open()) {
    ec = bad_fd_code();
    return;
  }
  if (size > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max())) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return;
  }
  const int fd = fd_;
  ec = to_code(on_pool([fd, size] { return ::ftruncate(fd, static_cast<off_t>(size)); }));
}

file_status file::stat() const {
  std::error_code ec;
  file_status s = stat(ec);
  if (ec) throw_error("spindle::file::stat", ec);
  return s;
}

file_status file::stat(std::error_code& ec) const noexcept {
  ec.clear();
  if (!is_open()) {
    ec = bad_fd_code();
    return {};
  }
  const int fd = fd_;
  struct stat st;
  ec = to_code(on_pool([fd, &st] { return ::fstat(fd, &st); }));
  return ec ? file_status{} : to_status(st);
}

// ---- fs ----

namespace detail {

std::string read_file_until(const stdfs::path& p, std::chrono::steady_clock::time_point deadline) {
  std::error_code ec;
  std::string data = read_file_until(p, deadline, ec);
  if (ec) throw_fs("spindle::fs::read_file_until", p, ec);
  return data;
}

std::string read_file_until(const stdfs::path& p, std::chrono::steady_clock::time_point deadline,
                            std::error_code& ec) noexcept {
  ec.clear();
  try {
    // The call owns its copy of the name and its buffer: if the deadline
    // passes while it runs, it finishes (and frees them) on its own.
    read_result r = spindle::blocking_until(
        deadline, [name = p.native()]() noexcept { return read_whole_file(name.c_str()); });
    ec = to_code(r.error);
    return std::move(r.data);
  } catch (const std::system_error& e) {
    ec = e.code();  // timed_out
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
  }
  return std::string();
}

}  // namespace detail

namespace fs {

std::string read_file(const stdfs::path& p) {
  std::error_code ec;
  std::string data = fs::read_file(p, ec);
  if (ec) throw_fs("spindle::fs::read_file", p, ec);
  return data;
}

std::string read_file(const stdfs::path& p, std::error_code& ec) noexcept {
  const char* name = p.c_str();
  read_result r = spindle::blocking([name]() noexcept { return read_whole_file(name); });
  ec = to_code(r.error);
  return std::move(r.data);
}

void write_file(const stdfs::path& p, std::string_view data, bool sync, stdfs::perms perms) {
  std::error_code ec;
  fs::write_file(p, data, sync, perms, ec);
  if (ec) throw_fs("spindle::fs::write_file", p, ec);
}

void write_file(const stdfs::path& p, std::string_view data, std::error_code& ec) noexcept {
  fs::write_file(p, data, false, stdfs::perms(0644), ec);
}

void write_file(const stdfs::path& p, std::string_view data, bool sync, stdfs::perms perms,
                std::error_code& ec) noexcept {
  const char* name = p.c_str();
  const mode_t mode = to_mode(perms);
  ec = to_code(spindle::blocking(
      [name, data, sync, mode]() noexcept { return write_whole_file(name, data, sync, mode); }));
}

file_status stat(const stdfs::path& p) {
  std::error_code ec;
  file_status s = fs::stat(p, ec);
  if (ec) throw_fs("spindle::fs::stat", p, ec);
  return s;
}

file_status stat(const stdfs::path& p, std::error_code& ec) noexcept {
  const char* name = p.c_str();
  struct stat st;
  ec = to_code(on_pool([name, &st] { return ::stat(name, &st); }));
  return ec ? file_status{} : to_status(st);
}

void rename(const stdfs::path& from, const stdfs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) throw_fs("spindle::fs::rename", from, to, ec);
}

void rename(const stdfs::path& from, const stdfs::path& to, std::error_code& ec) noexcept {
  const char* a = from.c_str();
  const char* b = to.c_str();
  ec = to_code(on_pool([a, b] { return ::rename(a, b); }));
}

void unlink(const stdfs::path& p) {
  std::error_code ec;
  fs::unlink(p, ec);
  if (ec) throw_fs("spindle::fs::unlink", p, ec);
}

void unlink(const stdfs::path& p, std::error_code& ec) noexcept {
  const char* name = p.c_str();
  ec = to_code(on_pool([name] { return ::unlink(name); }));
}

void mkdir(const stdfs::path& p, stdfs::perms perms) {
  std::error_code ec;
  fs::mkdir(p, perms, ec);
  if (ec) throw_fs("spindle::fs::mkdir", p, ec);
}

void mkdir(const stdfs::path& p, std::error_code& ec) noexcept {
  fs::mkdir(p, stdfs::perms(0755), ec);
}

void mkdir(const stdfs::path& p, stdfs::perms perms, std::error_code& ec) noexcept {
  const char* name = p.c_str();
  const mode_t mode = to_mode(perms);
  ec = to_code(on_pool([name, mode] { return ::mkdir(name, mode); }));
}

void remove(const stdfs::path& p) {
  std::error_code ec;
  fs::remove(p, ec);
  if (ec) throw_fs("spindle::fs::remove", p, ec);
}

void remove(const stdfs::path& p, std::error_code& ec) noexcept {
  const char* name = p.c_str();
  ec = to_code(spindle::blocking([name]() noexcept { return remove_path(name); }));
}

std::vector<directory_entry> list_directory(const stdfs::path& p) {
  std::error_code ec;
  std::vector<directory_entry> entries = fs::list_directory(p, ec);
  if (ec) throw_fs("spindle::fs::list_directory", p, ec);
  return entries;
}

std::vector<directory_entry> list_directory(const stdfs::path& p, std::error_code& ec) noexcept {
  const char* name = p.c_str();
  std::vector<directory_entry> entries;
  ec = to_code(spindle::blocking(
      [name, &entries]() noexcept { return list_whole_directory(name, entries); }));
  if (ec) entries.clear();
  return entries;
}

}  // namespace fs
}  // namespace spindle
