#include "io/file.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "io/fs.h"
#include "sched/blocking.h"
#include "sched/scheduler.h"
#include "io/page_cache.h"
#include "test_util.h"

namespace {

namespace stdfs = std::filesystem;
using spindle::fiber;
using spindle::test::bytes_of;
using spindle::test::pattern;
using spindle::test::same_bytes;
using spindle::file;
using spindle::open_mode;
using namespace std::chrono_literals;

constexpr open_mode read_write = open_mode::read | open_mode::write;
constexpr open_mode create_new = open_mode::write | open_mode::create | open_mode::truncate;

// Gives each test a fresh directory under the system's temp directory and
// removes it afterwards.
template <class Base>
class with_temp_dir : public Base {
 protected:
  void SetUp() override {
    std::string name = (stdfs::temp_directory_path() / "spindle-file-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(name.data()), nullptr) << std::strerror(errno);
    dir_ = name;
  }
  void TearDown() override {
    std::error_code ignored;
    if (!dir_.empty()) stdfs::remove_all(dir_, ignored);
  }

  stdfs::path dir_;
};

class FileTest : public with_temp_dir<spindle::test::workers_fixture> {};
class FileOnPlainThreadTest : public with_temp_dir<testing::Test> {};

SPINDLE_INSTANTIATE_WORKERS(FileTest, 1u, 2u, 4u);


// Open descriptors of this process (the directory's own included, which
// cancels out between two counts).
std::size_t open_fd_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : stdfs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// The pool's completed-call counter once no call is in flight. The pool
// counts a call just after it wakes the caller, so right after a call
// returns the counter may not show it yet: wait for `running` to drop.
std::size_t settled_completed() {
  for (;;) {
    const spindle::blocking_pool_stats s = spindle::blocking_stats();
    if (s.running == 0 && s.queued == 0 && s.waiting_room == 0) return s.completed;
    spindle::this_fiber::yield();
  }
}

// Expects `op()` to throw filesystem_error with `want` and these paths.
template <class Op>
void expect_fs_error(Op&& op, std::errc want, const stdfs::path& path1,
                     const stdfs::path& path2 = {}) {
  try {
    op();
    ADD_FAILURE() << "no exception; want " << std::make_error_code(want).message();
  } catch (const stdfs::filesystem_error& e) {
    EXPECT_EQ(e.code(), want) << e.what();
    EXPECT_EQ(e.path1(), path1) << e.what();
    EXPECT_EQ(e.path2(), path2) << e.what();
  }
}

// iovecs over `buf` in pieces of growing size (1, 4, 13, ... bytes), with
// an empty one after the first piece.
std::vector<iovec> pieces(std::span<std::byte> buf) {
  std::vector<iovec> out;
  std::size_t at = 0;
  for (std::size_t piece = 1; at < buf.size(); piece = piece * 3 + 1) {
    const std::size_t len = std::min(piece, buf.size() - at);
    out.push_back(iovec{buf.data() + at, len});
    if (out.size() == 1) out.push_back(iovec{nullptr, 0});
    at += len;
  }
  return out;
}

std::vector<iovec> pieces(std::span<const std::byte> buf) {
  // writev() does not write through iov_base; iovec just is not const.
  return pieces(std::span(const_cast<std::byte*>(buf.data()), buf.size()));
}

TEST_P(FileTest, ConcurrentFibersReadBackExactlyWhatTheyWrote) {
  // Each fiber writes its own file in three parts (write, pwrite, writev),
  // then reads it back four ways (read, pread, readv, read_file).
  constexpr int files = 64;
  constexpr std::size_t size = 100'003;  // odd: no part is page-aligned
  constexpr std::size_t a = size / 3;
  constexpr std::size_t b = 2 * size / 3;
  std::atomic<int> checked{0};
  spindle::run(opts(), [&] {
    std::vector<spindle::fiber> fibers;
    for (int id = 0; id < files; ++id) {
      fibers.emplace_back([&, id] {
        const std::vector<std::byte> want = pattern(static_cast<std::uint32_t>(id), size);
        const std::span<const std::byte> all(want);
        const stdfs::path p = dir_ / ("file" + std::to_string(id));
        {
          file f = file::open(p, open_mode::write | open_mode::create | open_mode::exclusive);
          EXPECT_EQ(f.write(all.first(a)), a);
          EXPECT_EQ(f.pwrite(all.subspan(b), b), size - b);  // the file offset stays at a
          EXPECT_EQ(f.writev(pieces(all.subspan(a, b - a))), b - a);
          f.close();
        }

        file f = file::open(p, open_mode::read);
        std::vector<std::byte> got(size + 10);
        EXPECT_EQ(f.read(got), size);  // short only at end of file...
        EXPECT_TRUE(same_bytes(std::span(got).first(size), want));
        EXPECT_EQ(f.read(got), 0u);  // ...and 0 there

        std::vector<std::byte> by_pread(size);
        constexpr std::size_t chunk = 7919;
        for (std::size_t at = 0; at < size; at += chunk) {
          const std::size_t n = std::min(chunk, size - at);
          EXPECT_EQ(f.pread(std::span(by_pread).subspan(at, n), at), n);
        }
        EXPECT_TRUE(same_bytes(by_pread, want));

        std::vector<std::byte> by_readv(size);
        file g = file::open(p, open_mode::read);
        EXPECT_EQ(g.readv(pieces(std::span(by_readv))), size);
        EXPECT_TRUE(same_bytes(by_readv, want));

        EXPECT_TRUE(same_bytes(bytes_of(spindle::fs::read_file(p)), want));
        checked.fetch_add(1);
      });
    }
    for (auto& f : fibers) f.join();
  });
  EXPECT_EQ(checked.load(), files);
}

TEST_P(FileTest, ManyFibersPreadDisjointRangesOfOneSharedFile) {
  constexpr int readers = 64;
  constexpr std::size_t range = 16 * 1024 + 5;
  constexpr std::size_t size = readers * range;
  const int rounds = static_cast<int>(spindle::test::scaled(20));
  const std::vector<std::byte> want = pattern(7, size);
  const stdfs::path p = dir_ / "shared";
  spindle::run(opts(), [&] {
    spindle::fs::write_file(p, std::string_view(reinterpret_cast<const char*>(want.data()), size));
    file shared = file::open(p, open_mode::read);
    std::vector<std::byte> got(size);
    std::vector<spindle::fiber> fibers;
    for (int r = 0; r < readers; ++r) {
      fibers.emplace_back([&, r] {
        const std::span<std::byte> mine = std::span(got).subspan(r * range, range);
        for (int round = 0; round < rounds; ++round) {
          std::fill(mine.begin(), mine.end(), std::byte{0});
          // In two reads that split the range differently each round.
          const std::size_t split = (round * 997) % range;
          EXPECT_EQ(shared.pread(mine.first(split), r * range), split);
          EXPECT_EQ(shared.pread(mine.subspan(split), r * range + split), range - split);
          EXPECT_TRUE(same_bytes(mine, std::span(want).subspan(r * range, range)));
        }
      });
    }
    for (auto& f : fibers) f.join();
    EXPECT_TRUE(same_bytes(got, want));
  });
}

TEST_P(FileTest, ALargeTransferIsOnePoolRoundTrip) {
  constexpr std::size_t size = 8 << 20;
  const std::vector<std::byte> want = pattern(3, size);
  spindle::run(opts(), [&] {
    const stdfs::path p = dir_ / "large";
    file f = file::open(p, read_write | open_mode::create);

    std::size_t before = settled_completed();
    EXPECT_EQ(f.write(want), size);
    EXPECT_EQ(settled_completed(), before + 1);

    std::vector<std::byte> got(size);
    before = settled_completed();
    EXPECT_EQ(f.pread(got, 0), size);
    EXPECT_EQ(settled_completed(), before + 1);
    EXPECT_TRUE(same_bytes(got, want));

    file g = file::open(p, open_mode::read);
    std::fill(got.begin(), got.end(), std::byte{0});
    before = settled_completed();
    EXPECT_EQ(g.read(got), size);
    EXPECT_EQ(settled_completed(), before + 1);
    EXPECT_TRUE(same_bytes(got, want));

    // 1024 buffers of 8 KiB: more than one readv/writev takes, still one
    // round trip.
    constexpr std::size_t buffers = 1024;
    std::vector<iovec> in(buffers);
    std::vector<iovec> out(buffers);
    std::fill(got.begin(), got.end(), std::byte{0});
    for (std::size_t i = 0; i < buffers; ++i) {
      in[i] = iovec{const_cast<std::byte*>(want.data()) + i * (size / buffers), size / buffers};
      out[i] = iovec{got.data() + i * (size / buffers), size / buffers};
    }
    file h = file::open(dir_ / "vectored", read_write | open_mode::create);
    before = settled_completed();
    EXPECT_EQ(h.writev(in), size);
    EXPECT_EQ(settled_completed(), before + 1);
    file k = file::open(dir_ / "vectored", open_mode::read);
    before = settled_completed();
    EXPECT_EQ(k.readv(out), size);
    EXPECT_EQ(settled_completed(), before + 1);
    EXPECT_TRUE(same_bytes(got, want));

    before = settled_completed();
    const std::string whole = spindle::fs::read_file(p);
    EXPECT_EQ(settled_completed(), before + 1);
    EXPECT_TRUE(same_bytes(bytes_of(whole), want));

    before = settled_completed();
    spindle::fs::write_file(dir_ / "copy", whole, true);
    EXPECT_EQ(settled_completed(), before + 1);
    EXPECT_EQ(stdfs::file_size(dir_ / "copy"), size);
  });
}

TEST_P(FileTest, ReadIsShortOnlyAtEndOfFile) {
  spindle::run(opts(), [&] {
    const stdfs::path p = dir_ / "short";
    spindle::fs::write_file(p, "0123456789");
    file f = file::open(p, open_mode::read);
    char buf[4];
    EXPECT_EQ(f.read(buf, 0), 0u);  // an empty buffer reads nothing
    EXPECT_EQ(f.read(buf, 4), 4u);
    EXPECT_EQ(std::string_view(buf, 4), "0123");
    EXPECT_EQ(f.read(buf, 4), 4u);
    EXPECT_EQ(f.read(buf, 4), 2u);
    EXPECT_EQ(std::string_view(buf, 2), "89");
    EXPECT_EQ(f.read(buf, 4), 0u);
    EXPECT_EQ(f.pread(buf, 4, 8), 2u);
    EXPECT_EQ(f.pread(buf, 4, 100), 0u);
    std::error_code ec;
    EXPECT_EQ(f.read(buf, 4, ec), 0u);
    EXPECT_FALSE(ec);
  });
}

TEST_P(FileTest, AppendModeWritesAtTheEnd) {
  spindle::run(opts(), [&] {
    const stdfs::path p = dir_ / "log";
    spindle::fs::write_file(p, "abc");
    file f = file::open(p, open_mode::write | open_mode::append);
    f.write("def", 3);
    f.write("gh", 2);
    f.close();
    EXPECT_EQ(spindle::fs::read_file(p), "abcdefgh");
  });
}

TEST_P(FileTest, TruncateCutsAndZeroExtends) {
  spindle::run(opts(), [&] {
    const stdfs::path p = dir_ / "t";
    file f = file::open(p, read_write | open_mode::create);
    f.write("hello world", 11);
    f.truncate(5);
    EXPECT_EQ(f.stat().size, 5u);
    f.truncate(8);
    f.fsync();
    f.fdatasync();
    EXPECT_EQ(spindle::fs::read_file(p), std::string("hello\0\0\0", 8));
    // truncate cuts the file, not the offset: the next write leaves a hole.
    f.write("!", 1);
    EXPECT_EQ(spindle::fs::read_file(p), std::string("hello\0\0\0\0\0\0!", 12));
  });
}

TEST_P(FileTest, StatAgreesWithStdFilesystem) {
  spindle::run(opts(), [&] {
    const stdfs::path p = dir_ / "s";
    spindle::fs::write_file(p, "12345", false, stdfs::perms(0640));
    file f = file::open(p, open_mode::read);
    const spindle::file_status s = f.stat();
    EXPECT_EQ(s.size, 5u);
    EXPECT_EQ(s.type, stdfs::file_type::regular);
    EXPECT_EQ(s.permissions, stdfs::status(p).permissions());
    EXPECT_EQ(s.last_write_time, stdfs::last_write_time(p));
    EXPECT_EQ(s.hard_link_count, 1u);
    struct stat st;
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    EXPECT_EQ(s.inode, st.st_ino);
    EXPECT_EQ(s.device, st.st_dev);

    stdfs::create_hard_link(p, dir_ / "link");
    EXPECT_EQ(f.stat().hard_link_count, 2u);
    stdfs::create_symlink(p, dir_ / "sym");
    const spindle::file_status via_link = spindle::fs::stat(dir_ / "sym");  // follows it
    EXPECT_EQ(via_link.inode, s.inode);
    EXPECT_EQ(via_link.type, stdfs::file_type::regular);
    EXPECT_EQ(spindle::fs::stat(dir_).type, stdfs::file_type::directory);
  });
}

TEST_P(FileTest, WriteFileReplacesContentAndSetsPermissionsOfANewFile) {
  spindle::run(opts(), [&] {
    const stdfs::path p = dir_ / "w";
    spindle::fs::write_file(p, "a longer first content", true, stdfs::perms(0600));
    spindle::fs::write_file(p, "short");
    EXPECT_EQ(spindle::fs::read_file(p), "short");
    // The umask may only take bits away; it takes none of the owner's.
    const stdfs::perms perms = spindle::fs::stat(p).permissions;
    EXPECT_EQ(perms, stdfs::perms(0600));
    spindle::fs::write_file(dir_ / "empty", "");
    EXPECT_EQ(spindle::fs::read_file(dir_ / "empty"), "");
  });
}

TEST_P(FileTest, PathOperationsRenameRemoveAndMkdir) {
  spindle::run(opts(), [&] {
    spindle::fs::write_file(dir_ / "a", "A");
    spindle::fs::write_file(dir_ / "b", "B");
    spindle::fs::rename(dir_ / "a", dir_ / "b");  // replaces b
    EXPECT_FALSE(stdfs::exists(dir_ / "a"));
    EXPECT_EQ(spindle::fs::read_file(dir_ / "b"), "A");

    spindle::fs::mkdir(dir_ / "d");
    EXPECT_TRUE(stdfs::is_directory(dir_ / "d"));
    spindle::fs::remove(dir_ / "d");  // an empty directory
    EXPECT_FALSE(stdfs::exists(dir_ / "d"));
    spindle::fs::remove(dir_ / "b");  // a file
    EXPECT_FALSE(stdfs::exists(dir_ / "b"));

    spindle::fs::write_file(dir_ / "c", "C");
    spindle::fs::unlink(dir_ / "c");
    EXPECT_FALSE(stdfs::exists(dir_ / "c"));
  });
}

TEST_P(FileTest, ListDirectoryListsExactlyTheEntriesWithTheirTypes) {
  spindle::run(opts(), [&] {
    const stdfs::path d = dir_ / "list";
    spindle::fs::mkdir(d);
    spindle::fs::write_file(d / "file1", "x");
    spindle::fs::write_file(d / "file2", "");
    spindle::fs::mkdir(d / "sub");
    spindle::fs::write_file(d / "sub" / "nested", "not listed");
    stdfs::create_symlink("file1", d / "link");
    stdfs::create_symlink("nowhere", d / "dangling");
    ASSERT_EQ(::mkfifo((d / "fifo").c_str(), 0600), 0) << std::strerror(errno);

    std::vector<spindle::fs::directory_entry> entries = spindle::fs::list_directory(d);
    std::sort(entries.begin(), entries.end(),
              [](const auto& x, const auto& y) { return x.name < y.name; });
    const std::vector<std::pair<std::string, stdfs::file_type>> want = {
        {"dangling", stdfs::file_type::symlink}, {"fifo", stdfs::file_type::fifo},
        {"file1", stdfs::file_type::regular},    {"file2", stdfs::file_type::regular},
        {"link", stdfs::file_type::symlink},     {"sub", stdfs::file_type::directory},
    };
    ASSERT_EQ(entries.size(), want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(entries[i].name, want[i].first);
      EXPECT_EQ(entries[i].type, want[i].second) << entries[i].name;
    }
    spindle::fs::mkdir(d / "empty");
    EXPECT_TRUE(spindle::fs::list_directory(d / "empty").empty());
  });
}

TEST_P(FileTest, ReadFileReadsUntilEndOfFileWhateverFstatSays) {
  // /proc files have size 0 in fstat; a FIFO has no size at all and makes
  // the buffer grow several times.
  constexpr std::size_t size = 100'000;
  const std::vector<std::byte> want = pattern(11, size);
  const stdfs::path fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  spindle::run(opts(), [&] {
    EXPECT_EQ(spindle::fs::stat("/proc/self/status").size, 0u);
    EXPECT_NE(spindle::fs::read_file("/proc/self/status").find("Name:"), std::string::npos);

    std::thread writer([&] {
      const int fd = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);  // waits for the reader
      ASSERT_GE(fd, 0) << std::strerror(errno);
      EXPECT_EQ(::write(fd, want.data(), size), static_cast<ssize_t>(size));
      ::close(fd);
    });
    const std::string got = spindle::fs::read_file(fifo);
    writer.join();
    EXPECT_TRUE(same_bytes(bytes_of(got), want));
  });
}

TEST_P(FileTest, ReadFileUntilADeadlineTimesOutOrReturnsTheContent) {
  spindle::run(opts(), [&] {
    const stdfs::path p = dir_ / "r";
    spindle::fs::write_file(p, "content");
    expect_fs_error(
        [&] { (void)spindle::fs::read_file_until(p, std::chrono::steady_clock::now() - 1s); },
        std::errc::timed_out, p);
    std::error_code ec;
    EXPECT_EQ(spindle::fs::read_file_for(p, 0s, ec), "");
    EXPECT_EQ(ec, std::errc::timed_out);

    EXPECT_EQ(spindle::fs::read_file_for(p, 1h), "content");
    EXPECT_EQ(spindle::fs::read_file_until(p, std::chrono::system_clock::now() + 1h, ec),
              "content");
    EXPECT_FALSE(ec);
    // A deadline does not change the errors.
    expect_fs_error([&] { (void)spindle::fs::read_file_for(dir_ / "missing", 1h); },
                    std::errc::no_such_file_or_directory, dir_ / "missing");
  });
}

TEST_P(FileTest, OpeningAMissingFileFailsWithNoSuchFileAndItsPath) {
  spindle::run(opts(), [&] {
    const stdfs::path p = dir_ / "missing";
    std::error_code ec;
    file f = file::open(p, open_mode::read, ec);
    EXPECT_EQ(ec, std::errc::no_such_file_or_directory);
    EXPECT_FALSE(f.is_open());
    expect_fs_error([&] { (void)file::open(p, open_mode::read); },
                    std::errc::no_such_file_or_directory, p);

    EXPECT_EQ(spindle::fs::read_file(p, ec), "");
    EXPECT_EQ(ec, std::errc::no_such_file_or_directory);
    expect_fs_error([&] { (void)spindle::fs::read_file(p); }, std::errc::no_such_file_or_directory,
                    p);
    expect_fs_error([&] { (void)spindle::fs::stat(p); }, std::errc::no_such_file_or_directory, p);
    expect_fs_error([&] { spindle::fs::unlink(p); }, std::errc::no_such_file_or_directory, p);
    expect_fs_error([&] { spindle::fs::remove(p); }, std::errc::no_such_file_or_directory, p);
    expect_fs_error([&] { (void)spindle::fs::list_directory(p); },
                    std::errc::no_such_file_or_directory, p);
    expect_fs_error([&] { spindle::fs::write_file(p / "x", "x"); },
                    std::errc::no_such_file_or_directory, p / "x");
  });
}

TEST_P(FileTest, OpeningAnUnreadableFileFailsWithPermissionDenied) {
  if (::geteuid() == 0) GTEST_SKIP() << "root bypasses file permissions";
  spindle::run(opts(), [&] {
    const stdfs::path p = dir_ / "secret";
    spindle::fs::write_file(p, "secret", false, stdfs::perms::none);
    std::error_code ec;
    file f = file::open(p, open_mode::read, ec);
    EXPECT_EQ(ec, std::errc::permission_denied);
    EXPECT_FALSE(f.is_open());
    expect_fs_error([&] { (void)file::open(p, open_mode::read); }, std::errc::permission_denied, p);
    expect_fs_error([&] { (void)spindle::fs::read_file(p); }, std::errc::permission_denied, p);
  });
}

TEST_P(FileTest, DirectoriesGiveIsADirectoryOrFileExistsOrDirectoryNotEmpty) {
  spindle::run(opts(), [&] {
    std::error_code ec;
    file f = file::open(dir_, open_mode::write, ec);
    EXPECT_EQ(ec, std::errc::is_a_directory);
    EXPECT_FALSE(f.is_open());
    expect_fs_error([&] { (void)file::open(dir_, open_mode::write); }, std::errc::is_a_directory,
                    dir_);
    expect_fs_error([&] { (void)spindle::fs::read_file(dir_); }, std::errc::is_a_directory, dir_);
    EXPECT_EQ(spindle::fs::read_file(dir_, ec), "");
    EXPECT_EQ(ec, std::errc::is_a_directory);

    const stdfs::path d = dir_ / "d";
    spindle::fs::mkdir(d);
    spindle::fs::mkdir(d, ec);
    EXPECT_EQ(ec, std::errc::file_exists);
    expect_fs_error([&] { spindle::fs::mkdir(d); }, std::errc::file_exists, d);

    spindle::fs::write_file(d / "inside", "x");
    spindle::fs::remove(d, ec);
    EXPECT_EQ(ec, std::errc::directory_not_empty);
    expect_fs_error([&] { spindle::fs::remove(d); }, std::errc::directory_not_empty, d);
    EXPECT_TRUE(stdfs::exists(d / "inside"));
    expect_fs_error([&] { spindle::fs::unlink(d); }, std::errc::is_a_directory, d);
    expect_fs_error([&] { (void)spindle::fs::list_directory(d / "inside"); },
                    std::errc::not_a_directory, d / "inside");
  });
}

TEST_P(FileTest, RenamingAMissingFileFailsWithBothPaths) {
  spindle::run(opts(), [&] {
    const stdfs::path from = dir_ / "missing";
    const stdfs::path to = dir_ / "target";
    std::error_code ec;
    spindle::fs::rename(from, to, ec);
    EXPECT_EQ(ec, std::errc::no_such_file_or_directory);
    expect_fs_error([&] { spindle::fs::rename(from, to); }, std::errc::no_such_file_or_directory,
                    from, to);
  });
}

TEST_P(FileTest, ExclusiveCreateOfAnExistingFileFailsWithFileExists) {
  spindle::run(opts(), [&] {
    const stdfs::path p = dir_ / "x";
    constexpr open_mode mode = open_mode::write | open_mode::create | open_mode::exclusive;
    file first = file::open(p, mode);
    EXPECT_TRUE(first.is_open());
    std::error_code ec;
    file second = file::open(p, mode, ec);
    EXPECT_EQ(ec, std::errc::file_exists);
    EXPECT_FALSE(second.is_open());
    expect_fs_error([&] { (void)file::open(p, mode); }, std::errc::file_exists, p);
  });
}

TEST_P(FileTest, BadOpenModesAreInvalidArguments) {
  spindle::run(opts(), [&] {
    const stdfs::path p = dir_ / "m";
    const open_mode bad[] = {
        open_mode{},                                    // neither read nor write
        open_mode::create | open_mode::append,          // neither read nor write
        open_mode::read | open_mode::truncate,          // truncate without write
        open_mode::write | open_mode::exclusive,        // exclusive without create
        open_mode::write | static_cast<open_mode>(64),  // not an open_mode bit
    };
    for (const open_mode mode : bad) {
      std::error_code ec;
      file f = file::open(p, mode, ec);
      EXPECT_EQ(ec, std::errc::invalid_argument) << static_cast<unsigned>(mode);
      EXPECT_FALSE(f.is_open());
      expect_fs_error([&] { (void)file::open(p, mode); }, std::errc::invalid_argument, p);
    }
    EXPECT_FALSE(stdfs::exists(p));  // none of them created it
  });
}

TEST_P(FileTest, UsingAClosedFileFailsWithBadFileDescriptor) {
  spindle::run(opts(), [&] {
    const stdfs::path p = dir_ / "closed";
    file closed = file::open(p, read_write | open_mode::create);
    closed.close();
    EXPECT_FALSE(closed.is_open());
    EXPECT_EQ(closed.native_handle(), -1);
    EXPECT_EQ(closed.path(), p);  // kept for error messages
    file never_opened;

    std::byte buf[8] = {};
    iovec iov{buf, sizeof buf};
    for (file* f : {&closed, &never_opened}) {
      std::error_code ec;
      const auto expect_bad = [&](const char* what) {
        EXPECT_EQ(ec, std::errc::bad_file_descriptor) << what;
        ec.clear();
      };
      EXPECT_EQ(f->read(buf, ec), 0u);
      expect_bad("read");
      EXPECT_EQ(f->pread(buf, 0, ec), 0u);
      expect_bad("pread");
      EXPECT_EQ(f->readv(std::span(&iov, 1), ec), 0u);
      expect_bad("readv");
      EXPECT_EQ(f->write(buf, ec), 0u);
      expect_bad("write");
      EXPECT_EQ(f->pwrite(buf, 0, ec), 0u);
      expect_bad("pwrite");
      EXPECT_EQ(f->writev(std::span(&iov, 1), ec), 0u);
      expect_bad("writev");
      f->fsync(ec);
      expect_bad("fsync");
      f->fdatasync(ec);
      expect_bad("fdatasync");
      f->truncate(0, ec);
      expect_bad("truncate");
      (void)f->stat(ec);
      expect_bad("stat");
      f->close(ec);
      expect_bad("close");

      const std::errc bad = std::errc::bad_file_descriptor;
      expect_fs_error([&] { (void)f->read(buf); }, bad, f->path());
      expect_fs_error([&] { (void)f->pread(buf, 0); }, bad, f->path());
      expect_fs_error([&] { (void)f->readv(std::span(&iov, 1)); }, bad, f->path());
      expect_fs_error([&] { f->write(buf); }, bad, f->path());
      expect_fs_error([&] { f->pwrite(buf, 0); }, bad, f->path());
      expect_fs_error([&] { f->writev(std::span(&iov, 1)); }, bad, f->path());
      expect_fs_error([&] { f->fsync(); }, bad, f->path());
      expect_fs_error([&] { f->fdatasync(); }, bad, f->path());
      expect_fs_error([&] { f->truncate(0); }, bad, f->path());
      expect_fs_error([&] { (void)f->stat(); }, bad, f->path());
      expect_fs_error([&] { f->close(); }, bad, f->path());
    }
  });
}

TEST_P(FileTest, TheOsErrorOfAnOperationReachesTheCaller) {
  spindle::run(opts(), [&] {
    const stdfs::path p = dir_ / "ro";
    spindle::fs::write_file(p, "data");
    file f = file::open(p, open_mode::read);
    std::error_code ec;
    EXPECT_EQ(f.write("x", 1, ec), 0u);  // open for reading only
    EXPECT_EQ(ec, std::errc::bad_file_descriptor);
    expect_fs_error([&] { f.write("x", 1); }, std::errc::bad_file_descriptor, p);
    expect_fs_error([&] { f.truncate(0); }, std::errc::invalid_argument, p);
    char buf[4];
    EXPECT_EQ(f.pread(buf, 4, std::uint64_t{1} << 63, ec), 0u);  // past off_t
    EXPECT_EQ(ec, std::errc::invalid_argument);
    EXPECT_EQ(spindle::fs::read_file(p), "data");
  });
}

TEST_P(FileTest, AdoptTakesOwnershipAndReleaseGivesItBack) {
  spindle::run(opts(), [&] {
    const stdfs::path p = dir_ / "adopted";
    spindle::fs::write_file(p, "adopted");
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    file f = file::adopt(fd, p);
    EXPECT_TRUE(f.is_open());
    EXPECT_EQ(f.native_handle(), fd);
    EXPECT_EQ(f.path(), p);
    char buf[16];
    EXPECT_EQ(f.read(buf, sizeof buf), 7u);
    EXPECT_EQ(f.release(), fd);
    EXPECT_FALSE(f.is_open());
    EXPECT_EQ(f.release(), -1);
    EXPECT_EQ(::close(fd), 0);  // still open: release() did not close it
    EXPECT_FALSE(file::adopt(-1).is_open());
  });
}

TEST_P(FileTest, MovedFromFileIsNotOpenAndTheDestructorCloses) {
  spindle::run(opts(), [&] {
    const stdfs::path p = dir_ / "moved";
    const std::size_t before = open_fd_count();
    {
      file a = file::open(p, read_write | open_mode::create);
      EXPECT_EQ(open_fd_count(), before + 1);
      file b(std::move(a));
      EXPECT_FALSE(a.is_open());  // NOLINT(bugprone-use-after-move): checking the moved-from state
      EXPECT_EQ(a.native_handle(), -1);
      EXPECT_TRUE(a.path().empty());
      EXPECT_TRUE(b.is_open());
      EXPECT_EQ(b.path(), p);
      file c;
      c = std::move(b);
      EXPECT_FALSE(b.is_open());  // NOLINT(bugprone-use-after-move)
      EXPECT_TRUE(c.is_open());
      EXPECT_EQ(open_fd_count(), before + 1);

      file d = file::open(p, open_mode::read);
      EXPECT_EQ(open_fd_count(), before + 2);
      d = std::move(c);  // closes d's own descriptor
      EXPECT_EQ(open_fd_count(), before + 1);
      EXPECT_TRUE(d.is_open());
      d.write("still usable", 12);
    }
    EXPECT_EQ(open_fd_count(), before);
    EXPECT_EQ(spindle::fs::read_file(p), "still usable");
  });
}

TEST_P(FileTest, NothingLeaksADescriptor) {
  const int rounds = static_cast<int>(spindle::test::scaled(100));
  spindle::run(opts(), [&] {
    const stdfs::path p = dir_ / "leak";
    spindle::fs::write_file(p, "leak");
    spindle::fs::mkdir(dir_ / "sub");
    const auto one_round = [&] {
      std::error_code ec;
      {
        file f = file::open(p, read_write);
        file g(std::move(f));
        file h = file::open(p, open_mode::read);
        h = std::move(g);
        h.close();
      }
      (void)file::open(dir_ / "missing", open_mode::read, ec);
      (void)file::open(p, open_mode::truncate | open_mode::read, ec);
      (void)file::open(p, open_mode::write | open_mode::create | open_mode::exclusive, ec);
      (void)file::open(dir_, open_mode::write, ec);
      (void)file::adopt(::open(p.c_str(), O_RDONLY | O_CLOEXEC), p);  // destroyed at once
      const int fd = file::adopt(::open(p.c_str(), O_RDONLY | O_CLOEXEC)).release();
      ::close(fd);
      (void)spindle::fs::read_file(p);
      (void)spindle::fs::read_file(dir_, ec);  // fails after its open
      (void)spindle::fs::read_file_until(p, std::chrono::steady_clock::now() - 1s, ec);
      spindle::fs::write_file(p, "leak", true);
      spindle::fs::write_file(dir_, "x", ec);
      (void)spindle::fs::list_directory(dir_);
      (void)spindle::fs::list_directory(p, ec);
      try {
        (void)file::open(dir_ / "missing", open_mode::read);
      } catch (const stdfs::filesystem_error&) {
      }
    };
    one_round();  // anything set up lazily is set up now
    const std::size_t before = open_fd_count();
    for (int r = 0; r < rounds; ++r) one_round();
    EXPECT_EQ(open_fd_count(), before);
  });
}

// ---- Reads from the page cache, on the worker ----

// A page-aligned file size: eviction drops whole pages.
constexpr std::size_t cold_size = 192 * 1024;

TEST_P(FileTest, AReadOfCachedDataRunsOnTheWorkerWithoutAPoolRoundTrip) {
  constexpr std::size_t size = 64 * 1024 + 123;  // ends inside a page
  const std::vector<std::byte> want = pattern(11, size);
  const stdfs::path p = dir_ / "cached";
  spindle::run(opts(), [&] {
    spindle::fs::write_file(p, std::string_view(reinterpret_cast<const char*>(want.data()), size));
    spindle::test::cache(p);
    file f = file::open(p, open_mode::read);
    const std::size_t before = settled_completed();

    std::vector<std::byte> got(4096);
    EXPECT_EQ(f.pread(got, 8192), 4096u);
    EXPECT_TRUE(same_bytes(got, std::span(want).subspan(8192, 4096)));
    // Short at the end of the file, and 0 there and past it.
    EXPECT_EQ(f.pread(got, size - 100), 100u);
    EXPECT_TRUE(same_bytes(std::span(got).first(100), std::span(want).last(100)));
    EXPECT_EQ(f.pread(got, size), 0u);
    EXPECT_EQ(f.pread(got, size + 5000), 0u);

    // read() moves the file offset as it goes, to the end.
    std::vector<std::byte> all(size + 1);
    EXPECT_EQ(f.read(std::span(all).first(1000)), 1000u);
    EXPECT_EQ(f.read(std::span(all).subspan(1000)), size - 1000);
    EXPECT_EQ(f.read(all), 0u);
    EXPECT_TRUE(same_bytes(std::span(all).first(size), want));

    file g = file::open(p, open_mode::read);
    const std::size_t after_open = settled_completed();
    std::vector<std::byte> by_readv(size);
    EXPECT_EQ(g.readv(pieces(std::span(by_readv))), size);
    EXPECT_TRUE(same_bytes(by_readv, want));
    EXPECT_EQ(settled_completed() - after_open, 0u);
    EXPECT_EQ(after_open - before, 1u);  // the open, and nothing else
  });
}

TEST_P(FileTest, AReadOfEvictedDataGoesToThePoolAndGetsTheSameBytes) {
  const std::vector<std::byte> want = pattern(12, cold_size);
  const stdfs::path p = dir_ / "cold";
  spindle::fs::write_file(p, std::string_view(reinterpret_cast<const char*>(want.data()), cold_size));
  if (!spindle::test::evict(p, 0, cold_size)) GTEST_SKIP() << "this file system keeps the pages cached";
  spindle::run(opts(), [&] {
    file f = file::open(p, open_mode::read);
    std::vector<std::byte> got(cold_size);
    std::size_t before = settled_completed();
    EXPECT_EQ(f.pread(got, 0), cold_size);
    EXPECT_EQ(settled_completed(), before + 1);
    EXPECT_TRUE(same_bytes(got, want));
    // The pool's read brought it into the cache: the next is on the worker.
    std::fill(got.begin(), got.end(), std::byte{0});
    before = settled_completed();
    EXPECT_EQ(f.pread(got, 0), cold_size);
    EXPECT_EQ(settled_completed(), before);
    EXPECT_TRUE(same_bytes(got, want));
  });
}

TEST_P(FileTest, AReadOfPartlyCachedDataCopiesTheCachedPartAndReadsTheRestOnThePool) {
  constexpr std::size_t half = cold_size / 2;
  const std::vector<std::byte> want = pattern(13, cold_size);
  const stdfs::path p = dir_ / "half";
  spindle::fs::write_file(p, std::string_view(reinterpret_cast<const char*>(want.data()), cold_size));
  // The first half cached, the second not.
  const auto half_cached = [&] {
    if (!spindle::test::evict(p, 0, cold_size)) return false;
    spindle::test::cache_range(p, 0, half);
    return spindle::test::resident_pages(p, 0, half) == half / static_cast<std::size_t>(::getpagesize()) &&
           spindle::test::resident_pages(p, half, half) == 0;
  };
  if (!half_cached()) GTEST_SKIP() << "this file system does not drop or keep the pages asked";
  spindle::run(opts(), [&] {
    // read(), at the file offset: the cached half on the worker, the rest
    // on the pool from where the worker stopped.
    file f = file::open(p, open_mode::read);
    std::vector<std::byte> got(cold_size + 10);
    const std::size_t before = settled_completed();
    EXPECT_EQ(f.read(got), cold_size);
    EXPECT_EQ(settled_completed(), before + 1);
    EXPECT_TRUE(same_bytes(std::span(got).first(cold_size), want));
    EXPECT_EQ(f.read(got), 0u);  // the file offset is at the end
  });
  // The same through readv() and pread(), the second half cold again.
  if (!half_cached()) GTEST_SKIP() << "this file system does not drop or keep the pages asked";
  spindle::run(opts(), [&] {
    file f = file::open(p, open_mode::read);
    std::vector<std::byte> got(cold_size);
    EXPECT_EQ(f.readv(pieces(std::span(got))), cold_size);
    EXPECT_TRUE(same_bytes(got, want));
  });
}

TEST_P(FileTest, ReadsOfAFileBeingAppendedToSeeEveryByteInOrder) {
  constexpr std::size_t chunk = 997;
  const std::size_t chunks = spindle::test::scaled(400);
  const std::vector<std::byte> want = pattern(14, chunk * chunks);
  const stdfs::path p = dir_ / "growing";
  const int wfd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  ASSERT_GE(wfd, 0) << std::strerror(errno);
  spindle::run(opts(), [&] {
    file f = file::open(p, open_mode::read);
    std::thread writer([&] {
      for (std::size_t i = 0; i < chunks; ++i) {
        ASSERT_EQ(::write(wfd, want.data() + i * chunk, chunk), static_cast<ssize_t>(chunk));
      }
    });
    // One reader with read() (the file offset), one with pread() at the
    // end of what it has: each short read, and each 0 at the current end,
    // must be exact.
    std::vector<std::byte> by_read;
    std::vector<std::byte> by_pread;
    fiber preader([&] {
      std::vector<std::byte> buf(4096);
      while (by_pread.size() < want.size()) {
        const std::size_t n = f.pread(buf, by_pread.size());
        by_pread.insert(by_pread.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
        if (n == 0) spindle::this_fiber::yield();
      }
    });
    std::vector<std::byte> buf(3000);
    while (by_read.size() < want.size()) {
      const std::size_t n = f.read(buf);
      by_read.insert(by_read.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
      if (n == 0) spindle::this_fiber::yield();
    }
    preader.join();
    writer.join();
    EXPECT_TRUE(same_bytes(by_read, want));
    EXPECT_TRUE(same_bytes(by_pread, want));
  });
  ::close(wfd);
}

TEST_P(FileTest, AReadOfAnAdoptedPipeTakesWhatIsThereAndWaitsOnThePoolForMore) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  spindle::run(opts(), [&] {
    file in = file::adopt(fds[0]);
    ASSERT_EQ(::write(fds[1], "abc", 3), 3);
    char buf[3];
    EXPECT_EQ(in.read(buf, 3), 3u);
    EXPECT_EQ(std::string_view(buf, 3), "abc");
    // Nothing there: the read waits on the pool until a plain thread writes.
    fiber reader([&] {
      EXPECT_EQ(in.read(buf, 3), 3u);
      EXPECT_EQ(std::string_view(buf, 3), "xyz");
    });
    spindle::test::yield_until([] { return spindle::blocking_stats().running == 1; });
    std::thread([&] { ASSERT_EQ(::write(fds[1], "xyz", 3), 3); }).join();
    reader.join();
    // pread() of a pipe fails as it always did.
    std::error_code ec;
    EXPECT_EQ(in.pread(buf, 3, 0, ec), 0u);
    EXPECT_EQ(ec, std::errc::invalid_seek);
  });
  ::close(fds[1]);
}

TEST_F(FileOnPlainThreadTest, EveryOperationRunsInlineWithoutARuntime) {
  const stdfs::path p = dir_ / "plain";
  const std::size_t fds = open_fd_count();
  {
    file f = file::open(p, read_write | open_mode::create);
    EXPECT_EQ(f.write("hello ", 6), 6u);
    const std::string_view tail = "world";
    std::vector<iovec> iov = pieces(bytes_of(tail));
    EXPECT_EQ(f.writev(iov), 5u);
    EXPECT_EQ(f.pwrite("H", 1, 0), 1u);
    f.fsync();
    char buf[16] = {};
    EXPECT_EQ(f.pread(buf, sizeof buf, 0), 11u);
    EXPECT_EQ(std::string_view(buf, 11), "Hello world");
    EXPECT_EQ(f.stat().size, 11u);
    file g = file::open(p, open_mode::read);
    std::byte first[5];
    std::byte rest[6];
    const iovec into[] = {{first, sizeof first}, {rest, sizeof rest}};
    EXPECT_EQ(g.readv(into), 11u);
    EXPECT_EQ(g.read(buf, sizeof buf), 0u);
  }
  EXPECT_EQ(open_fd_count(), fds);
  EXPECT_EQ(spindle::fs::read_file(p), "Hello world");
  EXPECT_EQ(spindle::fs::read_file_for(p, 1h), "Hello world");
  std::error_code ec;
  (void)spindle::fs::read_file_until(p, std::chrono::steady_clock::now() - 1s, ec);
  EXPECT_EQ(ec, std::errc::timed_out);
  spindle::fs::mkdir(dir_ / "d");
  spindle::fs::rename(p, dir_ / "d" / "moved");
  EXPECT_EQ(spindle::fs::list_directory(dir_ / "d").size(), 1u);
  spindle::fs::remove(dir_ / "d" / "moved");
  spindle::fs::remove(dir_ / "d");
  EXPECT_TRUE(spindle::fs::list_directory(dir_).empty());
  expect_fs_error([&] { (void)file::open(p, open_mode::read); },
                  std::errc::no_such_file_or_directory, p);
  EXPECT_EQ(spindle::blocking_stats().completed, 0u);  // no pool on a plain thread
}

}  // namespace
