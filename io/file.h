// spindle::file: a regular file (or anything else open(2) opens) whose
// operations run on the blocking pool (sched/blocking.h), because epoll
// cannot make a regular file non-blocking. Path operations (read_file,
// stat, rename, ...) are in io/fs.h.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <system_error>

#include "io/fs.h"

namespace spindle {

// open_mode says how file::open() opens a file; combine with `|`. Each
// value maps to one open(2) flag, and O_CLOEXEC is always added.
enum class open_mode : unsigned {
  read = 1,        // O_RDONLY, or O_RDWR together with write
  write = 2,       // O_WRONLY, or O_RDWR together with read
  append = 4,      // O_APPEND: every write goes to the end of the file
  create = 8,      // O_CREAT: create the file if it does not exist
  truncate = 16,   // O_TRUNC: cut an existing file to 0 bytes (needs write)
  exclusive = 32,  // O_EXCL: fail with file_exists if it exists (needs create)
};

constexpr open_mode operator|(open_mode a, open_mode b) noexcept {
  return static_cast<open_mode>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}
constexpr open_mode operator&(open_mode a, open_mode b) noexcept {
  return static_cast<open_mode>(static_cast<unsigned>(a) & static_cast<unsigned>(b));
}
constexpr open_mode& operator|=(open_mode& a, open_mode b) noexcept { return a = a | b; }

// A file owns a file descriptor of a regular file (or anything else open(2)
// opens) and runs every operation on it on the runtime's blocking pool, as
// spindle::blocking() does: the calling fiber parks and its worker runs
// other fibers meanwhile. Unlike std::fstream there is no buffering and no
// stream state: read() and write() move whole buffers, looping over short
// transfers and EINTR inside ONE pool round trip, however large the buffer
// (a round trip costs two thread handoffs, so nothing is split into
// several). On a plain thread (not a fiber) each call runs inline.
//
// Reads skip the pool where they can: read(), pread() and readv() of up
// to 256 KiB first copy what the page cache holds on the calling worker
// (preadv2 with RWF_NOWAIT, which never waits for the device), and only
// a part that is not cached goes to the pool. A cached 4 KiB pread then
// costs about what ::pread does, instead of a round trip 20 times that.
// Writes, and larger reads, always take the pool: a write can wait for
// the device's writeback, and a large copy would hold the worker.
//
//   spindle::run([] {
//     using spindle::open_mode;
//     auto log = spindle::file::open("app.log", open_mode::write | open_mode::create |
//                                                   open_mode::append);
//     log.write("started\n", 8);  // parks this fiber for one pool round trip
//     log.close();                // reports the error the destructor would drop
//   });
//
// Errors follow std::filesystem: each operation throws
// std::filesystem::filesystem_error carrying path() and the error_code, or
// has a noexcept overload that sets a std::error_code& instead (and returns
// the bytes moved before the error). An operation on a file that is not
// open fails with std::errc::bad_file_descriptor without a pool round trip.
//
// A file is move-only; the destructor closes it (on the pool too) and
// ignores errors. Several fibers may use one file at once (pread() and
// pwrite() of disjoint ranges are the natural fit; read() and write() share
// the OS file offset as with any fd), but close(), release() and
// assignment must not race with any other use. Any fiber or thread.
class file {
 public:
  // A file that is not open.
  file() noexcept = default;
  file(file&& other) noexcept;
  // Closes this file (ignoring errors), then takes over `other`'s.
  file& operator=(file&& other) noexcept;
  file(const file&) = delete;
  file& operator=(const file&) = delete;
  // Closes the file, ignoring errors (call close() to see them).
  ~file();

  // open() opens `p` with `mode`; a file it creates gets `perms` (less the
  // process umask, as open(2) does). A mode with neither read nor write,
  // truncate without write or exclusive without create fails with
  // std::errc::invalid_argument. One pool round trip.
  [[nodiscard]] static file open(const std::filesystem::path& p, open_mode mode,
                                 std::filesystem::perms perms = fs::default_file_perms);
  [[nodiscard]] static file open(const std::filesystem::path& p, open_mode mode,
                                 std::error_code& ec) noexcept;
  [[nodiscard]] static file open(const std::filesystem::path& p, open_mode mode,
                                 std::filesystem::perms perms, std::error_code& ec) noexcept;

  // adopt() takes ownership of `fd`, an open descriptor; `p` is only what
  // path() and error messages show. No system call.
  [[nodiscard]] static file adopt(int fd, std::filesystem::path p = {}) noexcept;

  bool is_open() const noexcept { return fd_ >= 0; }
  // native_handle() is the descriptor, or -1 when not open.
  int native_handle() const noexcept { return fd_; }
  // release() gives the descriptor up without closing it: the caller owns
  // it now, and this file is no longer open. Returns -1 when not open.
  [[nodiscard]] int release() noexcept;
  // path() is the path the file was opened (or adopted) with; close() and
  // release() keep it, a moved-from file has an empty one.
  const std::filesystem::path& path() const noexcept { return path_; }

  // close() closes the descriptor; the file is not open afterwards even
  // when close(2) reports an error (EIO of a delayed write, for example).
  // One pool round trip.
  void close();
  void close(std::error_code& ec) noexcept;

  // read() reads at the file offset until `buf` is full or the file ends:
  // it returns less than buf.size() only at end of file, and 0 there. On
  // the worker when the page cache holds the data, else one pool round
  // trip (see above).
  [[nodiscard]] std::size_t read(std::span<std::byte> buf);
  [[nodiscard]] std::size_t read(std::span<std::byte> buf, std::error_code& ec) noexcept;
  [[nodiscard]] std::size_t read(void* data, std::size_t size) { return read(as_span(data, size)); }
  [[nodiscard]] std::size_t read(void* data, std::size_t size, std::error_code& ec) noexcept {
    return read(as_span(data, size), ec);
  }

  // pread() is read() at `offset`, leaving the file offset alone.
  [[nodiscard]] std::size_t pread(std::span<std::byte> buf, std::uint64_t offset);
  [[nodiscard]] std::size_t pread(std::span<std::byte> buf, std::uint64_t offset,
                                  std::error_code& ec) noexcept;
  [[nodiscard]] std::size_t pread(void* data, std::size_t size, std::uint64_t offset) {
    return pread(as_span(data, size), offset);
  }
  [[nodiscard]] std::size_t pread(void* data, std::size_t size, std::uint64_t offset,
                                  std::error_code& ec) noexcept {
    return pread(as_span(data, size), offset, ec);
  }

  // readv() fills the buffers in order until all are full or the file
  // ends; returns the bytes read. As read() for up to 64 buffers and
  // 256 KiB, else one pool round trip.
  [[nodiscard]] std::size_t readv(std::span<const iovec> bufs);
  [[nodiscard]] std::size_t readv(std::span<const iovec> bufs, std::error_code& ec) noexcept;

  // write() writes all of `data` at the file offset (at the end in append
  // mode) and returns data.size(); the error_code form returns the bytes
  // written before the error. One pool round trip.
  std::size_t write(std::span<const std::byte> data);
  std::size_t write(std::span<const std::byte> data, std::error_code& ec) noexcept;
  std::size_t write(const void* data, std::size_t size) { return write(as_span(data, size)); }
  std::size_t write(const void* data, std::size_t size, std::error_code& ec) noexcept {
    return write(as_span(data, size), ec);
  }

  // pwrite() is write() at `offset`, leaving the file offset alone.
  std::size_t pwrite(std::span<const std::byte> data, std::uint64_t offset);
  std::size_t pwrite(std::span<const std::byte> data, std::uint64_t offset,
                     std::error_code& ec) noexcept;
  std::size_t pwrite(const void* data, std::size_t size, std::uint64_t offset) {
    return pwrite(as_span(data, size), offset);
  }
  std::size_t pwrite(const void* data, std::size_t size, std::uint64_t offset,
                     std::error_code& ec) noexcept {
    return pwrite(as_span(data, size), offset, ec);
  }

  // writev() writes every buffer, in order, and returns their total size;
  // after a partial write it carries on from where the kernel stopped.
  // One pool round trip.
  std::size_t writev(std::span<const iovec> bufs);
  std::size_t writev(std::span<const iovec> bufs, std::error_code& ec) noexcept;

  // fsync() flushes data and metadata to the device; fdatasync() only what
  // reading the data back needs. One pool round trip each.
  void fsync();
  void fsync(std::error_code& ec) noexcept;
  void fdatasync();
  void fdatasync(std::error_code& ec) noexcept;

  // truncate() sets the file's size to `size`, cutting or zero-extending
  // it. One pool round trip.
  void truncate(std::uint64_t size);
  void truncate(std::uint64_t size, std::error_code& ec) noexcept;

  // stat() describes the open file (fstat(2)). One pool round trip.
  [[nodiscard]] file_status stat() const;
  [[nodiscard]] file_status stat(std::error_code& ec) const noexcept;

 private:
  file(int fd, std::filesystem::path p) noexcept : fd_(fd), path_(std::move(p)) {}
  static std::span<std::byte> as_span(void* data, std::size_t size) noexcept {
    return {static_cast<std::byte*>(data), size};
  }
  static std::span<const std::byte> as_span(const void* data, std::size_t size) noexcept {
    return {static_cast<const std::byte*>(data), size};
  }

  int fd_ = -1;  // -1 when not open
  std::filesystem::path path_;
};

}  // namespace spindle
