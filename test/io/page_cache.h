// Test helpers for the page-cache fast paths of spindle::file's reads and
// connection::send_file() (io/detail/page_cache.h): whether a file's pages
// are cached, and dropping them from the cache.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <filesystem>
#include <vector>

namespace spindle::test {

// resident_pages() counts the pages of `len` bytes of `p` from `offset`
// (page-aligned) that the page cache holds (mincore on a mapping, which
// faults nothing in).
inline std::size_t resident_pages(const std::filesystem::path& p, off_t offset, std::size_t len) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  std::size_t n = 0;
  void* const m = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, offset);
  if (m != MAP_FAILED) {
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    std::vector<unsigned char> v((len + page - 1) / page);
    if (::mincore(m, len, v.data()) == 0) {
      for (unsigned char c : v) n += c & 1;
    }
    ::munmap(m, len);
  }
  ::close(fd);
  return n;
}

// evict() writes `len` bytes of `p` from `offset` (page-aligned) back and
// drops them from the page cache; false where they stay cached all the
// same (tmpfs, whose cache is the file, or a file system that ignores the
// advice): a test then skips what needs a cold file.
inline bool evict(const std::filesystem::path& p, off_t offset, std::size_t len) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ::fdatasync(fd);
  ::posix_fadvise(fd, offset, static_cast<off_t>(len), POSIX_FADV_DONTNEED);
  ::close(fd);
  return resident_pages(p, offset, len) == 0;
}

// cache() reads all of `p` once, so that the page cache holds it.
inline void cache(const std::filesystem::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[65536];
  while (::read(fd, buf, sizeof buf) > 0) {
  }
  ::close(fd);
}

// cache_range() reads `len` bytes of `p` from `offset` with readahead
// off, so that the page cache holds those pages and, of a file evicted
// before, no others. (Evicting half of a cached file instead can fail: a
// large folio that spans both halves is not split.)
inline void cache_range(const std::filesystem::path& p, off_t offset, std::size_t len) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<char> buf(page);
  for (std::size_t at = 0; at < len; at += page) {
    if (::pread(fd, buf.data(), page, offset + static_cast<off_t>(at)) <= 0) break;
  }
  ::close(fd);
}

}  // namespace spindle::test
