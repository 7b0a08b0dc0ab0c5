// The non-template helpers of file_ops.h.
#include "io/detail/file_ops.h"

#include <fcntl.h>

#include <chrono>

namespace spindle::detail {

namespace stdfs = std::filesystem;

int open_fd(const char* name, int flags, mode_t mode, int& fd) noexcept {
  return retry_eintr([&] { return fd = ::open(name, flags, mode); });
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

file_status to_status(const struct stat& st) noexcept {
  using namespace std::chrono;
  file_status s;
  s.size = static_cast<std::uint64_t>(st.st_size);
  s.type = to_file_type(st.st_mode);
  s.permissions = static_cast<stdfs::perms>(st.st_mode) & stdfs::perms::mask;  // the 07777 bits
  const sys_time<nanoseconds> mtime{seconds(st.st_mtim.tv_sec) + nanoseconds(st.st_mtim.tv_nsec)};
  s.last_write_time = time_point_cast<stdfs::file_time_type::duration>(file_clock::from_sys(mtime));
  s.hard_link_count = static_cast<std::uint64_t>(st.st_nlink);
  s.inode = static_cast<std::uint64_t>(st.st_ino);
  s.device = static_cast<std::uint64_t>(st.st_dev);
  return s;
}

}  // namespace spindle::detail
