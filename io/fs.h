// spindle::fs: path operations (read or write a whole file, stat, rename,
// mkdir, ...) that run on the blocking pool (sched/blocking.h), because
// epoll cannot make a regular file non-blocking; and file_status, what
// they and spindle::file (io/file.h) say about a file.
//
//   spindle::run([] {
//     std::string conf = spindle::fs::read_file("app.conf");  // one pool round trip
//     spindle::fs::write_file("app.conf.bak", conf, /*sync=*/true);
//     spindle::fs::rename("app.conf.bak", "app.conf.old");
//   });
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "sched/blocking.h"

namespace spindle {

// file_status is what fstat(2)/stat(2) say about a file, in std types.
struct file_status {
  std::uint64_t size = 0;  // bytes (0 for most /proc files: read them to learn)
  std::filesystem::file_type type = std::filesystem::file_type::none;
  std::filesystem::perms permissions = std::filesystem::perms::none;  // the 07777 bits
  // st_mtim, in the clock of std::filesystem::last_write_time(), so the two
  // compare directly (nanosecond resolution).
  std::filesystem::file_time_type last_write_time{};
  std::uint64_t hard_link_count = 0;
  std::uint64_t inode = 0;
  std::uint64_t device = 0;  // st_dev: the device the file lives on
};

namespace detail {
// The steady-clock core of fs::read_file_until() (in io/fs.cpp).
[[nodiscard]] std::string read_file_until(const std::filesystem::path& p,
                                          std::chrono::steady_clock::time_point deadline);
[[nodiscard]] std::string read_file_until(const std::filesystem::path& p,
                                          std::chrono::steady_clock::time_point deadline,
                                          std::error_code& ec) noexcept;
}  // namespace detail

// Path operations, each one pool round trip (inline on a plain thread),
// each with a throwing form (std::filesystem::filesystem_error carrying the
// path or paths) and a noexcept std::error_code& form. Any fiber or thread.
//
// Call them qualified (spindle::fs::rename(a, b)): an unqualified
// rename(a, b) or remove(p) with std::filesystem::path arguments also
// finds std::filesystem's functions by argument-dependent lookup.
namespace fs {

// The permissions a file or directory is created with when the caller
// names none, less the umask as open(2) and mkdir(2) apply it: what
// `touch` and `mkdir` give (owner rw(x), group and others r(x)).
inline constexpr std::filesystem::perms default_file_perms = std::filesystem::perms(0644);
inline constexpr std::filesystem::perms default_directory_perms = std::filesystem::perms(0755);

// directory_entry is one name in a directory, as list_directory() reports.
struct directory_entry {
  std::string name;  // the name alone, not a path
  // The entry itself, not what a symlink points to (d_type, or lstat(2)
  // where the file system does not fill d_type in).
  std::filesystem::file_type type = std::filesystem::file_type::unknown;
};

// read_file() returns the whole content of `p`: open, fstat, read to end
// of file, close, all in one pool round trip. It reads until end of file
// rather than trusting the size fstat gives, so /proc files (size 0) and
// files that grow meanwhile read correctly. A directory fails with
// std::errc::is_a_directory.
[[nodiscard]] std::string read_file(const std::filesystem::path& p);
[[nodiscard]] std::string read_file(const std::filesystem::path& p, std::error_code& ec) noexcept;

// read_file_until() is read_file() with a deadline (see
// spindle::blocking_until): at the deadline it fails with
// std::errc::timed_out; a read already running then finishes in the
// background into a buffer of its own, which is dropped. A deadline that
// has passed already fails at once, even on a plain thread.
template <class Clock, class Duration>
[[nodiscard]] std::string read_file_until(
    const std::filesystem::path& p, const std::chrono::time_point<Clock, Duration>& deadline) {
  return spindle::detail::read_file_until(p, spindle::deadline(deadline).when());
}
template <class Clock, class Duration>
[[nodiscard]] std::string read_file_until(const std::filesystem::path& p,
                                          const std::chrono::time_point<Clock, Duration>& deadline,
                                          std::error_code& ec) noexcept {
  return spindle::detail::read_file_until(p, spindle::deadline(deadline).when(), ec);
}

// read_file_for() is read_file_until(p, now + timeout).
template <class Rep, class Period>
[[nodiscard]] std::string read_file_for(const std::filesystem::path& p,
                                        const std::chrono::duration<Rep, Period>& timeout) {
  return spindle::detail::read_file_until(p, spindle::deadline(timeout).when());
}
template <class Rep, class Period>
[[nodiscard]] std::string read_file_for(const std::filesystem::path& p,
                                        const std::chrono::duration<Rep, Period>& timeout,
                                        std::error_code& ec) noexcept {
  return spindle::detail::read_file_until(p, spindle::deadline(timeout).when(), ec);
}

// write_file() replaces the content of `p` with `data`: open (creating it
// with `perms`, less the umask, or truncating it), write everything, fsync
// when `sync`, close; all in one pool round trip. Without `sync` the data
// may still be only in the page cache when it returns. A failed write
// leaves the file partly written.
//
// There is no deadline form: a write still running at the deadline would go
// on reading `data`, which belongs to the caller and may be gone by then
// (and copying it to make that safe would double the cost of every write).
void write_file(const std::filesystem::path& p, std::string_view data, bool sync = false,
                std::filesystem::perms perms = default_file_perms);
void write_file(const std::filesystem::path& p, std::string_view data,
                std::error_code& ec) noexcept;
void write_file(const std::filesystem::path& p, std::string_view data, bool sync,
                std::filesystem::perms perms, std::error_code& ec) noexcept;

// stat() describes `p`, following symlinks (stat(2)).
[[nodiscard]] file_status stat(const std::filesystem::path& p);
[[nodiscard]] file_status stat(const std::filesystem::path& p, std::error_code& ec) noexcept;

// rename() renames `from` to `to`, atomically replacing a file at `to`
// (rename(2)).
void rename(const std::filesystem::path& from, const std::filesystem::path& to);
void rename(const std::filesystem::path& from, const std::filesystem::path& to,
            std::error_code& ec) noexcept;

// unlink() removes the name `p` of a file (not a directory: that fails
// with std::errc::is_a_directory).
void unlink(const std::filesystem::path& p);
void unlink(const std::filesystem::path& p, std::error_code& ec) noexcept;

// mkdir() creates the directory `p` with `perms` less the umask; one that
// exists already fails with std::errc::file_exists. Parents are not
// created.
void mkdir(const std::filesystem::path& p,
           std::filesystem::perms perms = default_directory_perms);
void mkdir(const std::filesystem::path& p, std::error_code& ec) noexcept;
void mkdir(const std::filesystem::path& p, std::filesystem::perms perms,
           std::error_code& ec) noexcept;

// remove() removes a file or an empty directory. Unlike
// std::filesystem::remove, a missing `p` is an error
// (no_such_file_or_directory); a directory that is not empty fails with
// std::errc::directory_not_empty.
void remove(const std::filesystem::path& p);
void remove(const std::filesystem::path& p, std::error_code& ec) noexcept;

// list_directory() lists the entries of the directory `p`, without "." and
// "..", in the order the file system gives them (unspecified).
[[nodiscard]] std::vector<directory_entry> list_directory(const std::filesystem::path& p);
[[nodiscard]] std::vector<directory_entry> list_directory(const std::filesystem::path& p,
                                                          std::error_code& ec) noexcept;

}  // namespace fs
}  // namespace spindle

