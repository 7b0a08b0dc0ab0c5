// connection::send_file(): a file's bytes to a socket, from the page cache
// on the worker where it holds them (sendfile), through the pool where it
// does not.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "io/conn.h"
#include "io/error.h"
#include "io/file.h"
#include "io/fs.h"
#include "io/listener.h"
#include "io/page_cache.h"
#include "sched/blocking.h"
#include "sched/scheduler.h"
#include "test_util.h"

namespace {

namespace stdfs = std::filesystem;
using namespace std::chrono_literals;
using spindle::connection;
using spindle::fiber;
using spindle::file;
using spindle::open_mode;
using spindle::test::pattern;
using spindle::test::same_bytes;


// The pool's completed calls once none is in flight (the pool counts a
// call just after it wakes the caller).
std::size_t settled_completed() {
  for (;;) {
    const spindle::blocking_pool_stats s = spindle::blocking_stats();
    if (s.running == 0 && s.queued == 0 && s.waiting_room == 0) return s.completed;
    spindle::this_fiber::yield();
  }
}

struct stream_pair {
  connection client;
  connection server;
};

// With `buffer_bytes` > 0, small socket buffers on both ends, so that a
// send fills them and waits.
stream_pair connected_pair(int buffer_bytes = 0) {
  spindle::listener l = spindle::listen("127.0.0.1:0");
  const auto shrink = [buffer_bytes](int fd) {
    if (buffer_bytes == 0) return;
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_bytes, sizeof buffer_bytes);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof buffer_bytes);
  };
  shrink(l.native_handle());
  connection client = spindle::dial(l.local_address(), 10s);
  shrink(client.native_handle());
  connection server = l.accept(10s);
  return {std::move(client), std::move(server)};
}

// Reads until end of stream, `chunk` bytes at a time, yielding between
// reads when `slow`.
std::vector<std::byte> read_to_end(connection& c, std::size_t chunk = 65536, bool slow = false) {
  std::vector<std::byte> got;
  std::vector<std::byte> buf(chunk);
  while (std::size_t n = c.read_some(std::span(buf))) {
    got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    if (slow) spindle::this_fiber::yield();
  }
  return got;
}

class SendFileTest : public spindle::test::workers_fixture {
 protected:
  void SetUp() override {
    std::string name = (stdfs::temp_directory_path() / "spindle-send-file-XXXXXX").string();
    ASSERT_NE(::mkdtemp(name.data()), nullptr) << std::strerror(errno);
    dir_ = name;
  }
  void TearDown() override {
    std::error_code ignored;
    if (!dir_.empty()) stdfs::remove_all(dir_, ignored);
  }
  // A file of `size` bytes of pattern(seed, size), named `name`.
  stdfs::path make_file(const std::string& name, std::size_t size, std::uint32_t seed) {
    const std::vector<std::byte> data = pattern(seed, size);
    const stdfs::path p = dir_ / name;
    spindle::fs::write_file(p, std::string_view(reinterpret_cast<const char*>(data.data()), size));
    return p;
  }

  stdfs::path dir_;
};

SPINDLE_INSTANTIATE_WORKERS(SendFileTest, 1u, 2u, 4u);

TEST_P(SendFileTest, ACachedFileArrivesWholeAndInRangesWithoutAPoolRoundTrip) {
  constexpr std::size_t size = (1 << 20) + 123;
  const std::vector<std::byte> data = pattern(1, size);
  const stdfs::path p = make_file("cached", size, 1);
  spindle::test::cache(p);
  spindle::run(opts(), [&] {
    file f = file::open(p, open_mode::read);
    stream_pair s = connected_pair();
    std::vector<std::byte> got;
    fiber reader([&] { got = read_to_end(s.client); });
    const std::size_t before = settled_completed();
    EXPECT_EQ(s.server.send_file(f, 0, size), size);
    EXPECT_EQ(s.server.send_file(f, 4095, 10'000), 10'000u);
    EXPECT_EQ(s.server.send_file(f, size - 5, 100), 5u);  // the file ends first
    EXPECT_EQ(s.server.send_file(f, size, 10), 0u);
    EXPECT_EQ(s.server.send_file(f, size + 4096, 10), 0u);
    EXPECT_EQ(s.server.send_file(f, 7, 0), 0u);
    EXPECT_EQ(settled_completed(), before);
    s.server.close();
    reader.join();
    std::vector<std::byte> want = data;
    want.insert(want.end(), data.begin() + 4095, data.begin() + 4095 + 10'000);
    want.insert(want.end(), data.end() - 5, data.end());
    EXPECT_TRUE(same_bytes(got, want));
  });
}

TEST_P(SendFileTest, AnEvictedOrPartlyCachedFileIsReadOnThePoolAndArrivesTheSame) {
  constexpr std::size_t size = 768 * 1024;
  const std::vector<std::byte> data = pattern(2, size);
  for (const std::size_t cached : {std::size_t{0}, size / 3 / 4096 * 4096}) {
    // A new file each time: pages a sendfile gave the socket stay in use
    // (and in the cache) until the kernel frees those buffers, later.
    const stdfs::path p = make_file("cold" + std::to_string(cached), size, 2);
    if (!spindle::test::evict(p, 0, size)) GTEST_SKIP() << "this file system keeps the pages cached";
    spindle::test::cache_range(p, 0, cached);
    spindle::run(opts(), [&] {
      file f = file::open(p, open_mode::read);
      stream_pair s = connected_pair();
      std::vector<std::byte> got;
      fiber reader([&] { got = read_to_end(s.client); });
      const std::size_t before = settled_completed();
      EXPECT_EQ(s.server.send_file(f, 0, size), size);
      EXPECT_GT(settled_completed(), before);
      s.server.close();
      reader.join();
      EXPECT_TRUE(same_bytes(got, data)) << cached << " bytes cached";
    });
  }
}

TEST_P(SendFileTest, ASlowReaderMakesItWaitAndEveryByteArrivesInOrder) {
  const std::size_t size = spindle::test::scaled(4) << 20;
  const std::vector<std::byte> data = pattern(3, size);
  const stdfs::path p = make_file("big", size, 3);
  spindle::test::cache(p);
  spindle::run(opts(), [&] {
    file f = file::open(p, open_mode::read);
    stream_pair s = connected_pair(16 * 1024);
    std::vector<std::byte> got;
    fiber reader([&] { got = read_to_end(s.client, 3000, true); });
    // Two senders in turn on one connection: sends do not interleave.
    fiber other([&] { EXPECT_EQ(s.server.send_file(f, 0, size / 2), size / 2); });
    other.join();
    EXPECT_EQ(s.server.send_file(f, size / 2, size), size - size / 2);
    s.server.close();
    reader.join();
    EXPECT_TRUE(same_bytes(got, data));
  });
}

TEST_P(SendFileTest, ADeadlineOnAFullSocketReportsExactlyTheBytesThatWent) {
  constexpr std::size_t size = 32 << 20;
  const std::vector<std::byte> data = pattern(4, size);
  const stdfs::path p = make_file("huge", size, 4);
  spindle::run(opts(), [&] {
    file f = file::open(p, open_mode::read);
    stream_pair s = connected_pair(16 * 1024);
    std::size_t sent = 0;
    try {
      (void)s.server.send_file(f, 0, size, 100ms);
      ADD_FAILURE() << "the whole file fit: the socket buffers were not small";
    } catch (const spindle::io_error& e) {
      EXPECT_EQ(e.code(), std::errc::timed_out);
      sent = e.bytes_transferred();
    }
    EXPECT_GT(sent, 0u);
    EXPECT_LT(sent, size);
    s.server.close();
    const std::vector<std::byte> got = read_to_end(s.client);
    EXPECT_TRUE(same_bytes(got, std::span(data).first(sent)));
  });
}

TEST_P(SendFileTest, BadArgumentsFailWithAClearErrorAndLeaveTheConnectionUsable) {
  const stdfs::path p = make_file("small", 100, 5);
  spindle::run(opts(), [&] {
    stream_pair s = connected_pair();
    std::error_code ec;
    // A file that is not open.
    file closed;
    EXPECT_EQ(s.server.send_file(closed, 0, 10, ec), 0u);
    EXPECT_EQ(ec, std::errc::bad_file_descriptor);
    EXPECT_THROW((void)s.server.send_file(closed, 0, 10), spindle::io_error);
    // An offset no file has.
    file f = file::open(p, open_mode::read);
    EXPECT_EQ(s.server.send_file(f, std::numeric_limits<std::uint64_t>::max(), 10, ec), 0u);
    EXPECT_EQ(ec, std::errc::invalid_argument);
    // A pipe is no file to send from.
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    file pipe = file::adopt(fds[0]);
    ASSERT_EQ(::write(fds[1], "abc", 3), 3);
    EXPECT_EQ(s.server.send_file(pipe, 0, 3, ec), 0u);
    EXPECT_TRUE(ec) << "sending from a pipe succeeded";
    ::close(fds[1]);
    // The connection still works; a closed one says so.
    EXPECT_EQ(s.server.send_file(f, 0, 100), 100u);
    std::vector<std::byte> got(100);
    EXPECT_EQ(s.client.read_exactly(std::span(got)), 100u);
    EXPECT_TRUE(same_bytes(got, pattern(5, 100)));
    s.server.close();
    EXPECT_EQ(s.server.send_file(f, 0, 10, ec), 0u);
    EXPECT_EQ(ec, std::errc::bad_file_descriptor);
  });
}

}  // namespace
