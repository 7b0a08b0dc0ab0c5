// spindle::fs (see fs.h): each operation is one pool round trip, as
// io/detail/file_ops.h explains.
#include "io/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <new>
#include <utility>

#include "io/detail/file_ops.h"
#include "io/detail/or_throw.h"

namespace spindle {
namespace {

namespace stdfs = std::filesystem;
using detail::errno_code;
using detail::io_result;
using detail::on_pool;
using detail::open_fd;
using detail::or_throw_fs;
using detail::retry_eintr;
using detail::to_code;
using detail::to_file_type;
using detail::to_mode;
using detail::to_status;
using detail::transfer;

// ---- Pool-side helpers of the path operations (see file_ops.h) ----

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
  if (err == 0 && sync) err = retry_eintr([fd] { return ::fsync(fd); });
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
  const int e = retry_eintr([name] { return ::unlink(name); });
  // Linux says EISDIR for a directory; POSIX allows EPERM.
  if (e != EISDIR && e != EPERM) return e;
  const int e2 = retry_eintr([name] { return ::rmdir(name); });
  return e == EPERM && e2 == ENOTDIR ? e : e2;  // a real EPERM on a file
}

}  // namespace

// ---- fs ----

namespace detail {

std::string read_file_until(const stdfs::path& p, std::chrono::steady_clock::time_point deadline) {
  return or_throw_fs("spindle::fs::read_file_until", p,
                     [&](std::error_code& ec) { return read_file_until(p, deadline, ec); });
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
  return or_throw_fs("spindle::fs::read_file", p, [&](std::error_code& ec) { return fs::read_file(p, ec); });
}

std::string read_file(const stdfs::path& p, std::error_code& ec) noexcept {
  const char* name = p.c_str();
  read_result r = spindle::blocking([name]() noexcept { return read_whole_file(name); });
  ec = to_code(r.error);
  return std::move(r.data);
}

void write_file(const stdfs::path& p, std::string_view data, bool sync, stdfs::perms perms) {
  or_throw_fs("spindle::fs::write_file", p, [&](std::error_code& ec) { fs::write_file(p, data, sync, perms, ec); });
}

void write_file(const stdfs::path& p, std::string_view data, std::error_code& ec) noexcept {
  fs::write_file(p, data, false, default_file_perms, ec);
}

void write_file(const stdfs::path& p, std::string_view data, bool sync, stdfs::perms perms,
                std::error_code& ec) noexcept {
  const char* name = p.c_str();
  const mode_t mode = to_mode(perms);
  ec = to_code(spindle::blocking(
      [name, data, sync, mode]() noexcept { return write_whole_file(name, data, sync, mode); }));
}

file_status stat(const stdfs::path& p) {
  return or_throw_fs("spindle::fs::stat", p, [&](std::error_code& ec) { return fs::stat(p, ec); });
}

file_status stat(const stdfs::path& p, std::error_code& ec) noexcept {
  const char* name = p.c_str();
  struct stat st;
  ec = to_code(on_pool([name, &st] { return ::stat(name, &st); }));
  return ec ? file_status{} : to_status(st);
}

void rename(const stdfs::path& from, const stdfs::path& to) {
  or_throw_fs("spindle::fs::rename", from, to, [&](std::error_code& ec) { fs::rename(from, to, ec); });
}

void rename(const stdfs::path& from, const stdfs::path& to, std::error_code& ec) noexcept {
  const char* a = from.c_str();
  const char* b = to.c_str();
  ec = to_code(on_pool([a, b] { return ::rename(a, b); }));
}

void unlink(const stdfs::path& p) {
  or_throw_fs("spindle::fs::unlink", p, [&](std::error_code& ec) { fs::unlink(p, ec); });
}

void unlink(const stdfs::path& p, std::error_code& ec) noexcept {
  const char* name = p.c_str();
  ec = to_code(on_pool([name] { return ::unlink(name); }));
}

void mkdir(const stdfs::path& p, stdfs::perms perms) {
  or_throw_fs("spindle::fs::mkdir", p, [&](std::error_code& ec) { fs::mkdir(p, perms, ec); });
}

void mkdir(const stdfs::path& p, std::error_code& ec) noexcept {
  fs::mkdir(p, default_directory_perms, ec);
}

void mkdir(const stdfs::path& p, stdfs::perms perms, std::error_code& ec) noexcept {
  const char* name = p.c_str();
  const mode_t mode = to_mode(perms);
  ec = to_code(on_pool([name, mode] { return ::mkdir(name, mode); }));
}

void remove(const stdfs::path& p) {
  or_throw_fs("spindle::fs::remove", p, [&](std::error_code& ec) { fs::remove(p, ec); });
}

void remove(const stdfs::path& p, std::error_code& ec) noexcept {
  const char* name = p.c_str();
  ec = to_code(spindle::blocking([name]() noexcept { return remove_path(name); }));
}

std::vector<directory_entry> list_directory(const stdfs::path& p) {
  return or_throw_fs("spindle::fs::list_directory", p, [&](std::error_code& ec) { return fs::list_directory(p, ec); });
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
