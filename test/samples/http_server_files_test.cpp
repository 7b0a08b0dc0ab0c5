// The HTTP sample's static files (samples/http/server.h, --root): content
// types, If-Modified-Since, ranges, directories, and paths that would
// leave the root. Each test serves a fresh directory under /tmp.
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include "http_server_test.h"
#include "fiber/this_fiber.h"
#include "samples/http/static_files.h"
#include "sched/blocking.h"

namespace httpd::test {
namespace {

namespace fs = std::filesystem;

// A directory made for one test and removed after it.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "http_files_test.XXXXXX").string();
    EXPECT_NE(::mkdtemp(pattern.data()), nullptr);
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write(const fs::path& p, const std::string& content) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
}

// The served root, with a secret next to it (outside) and links to both.
class HttpServerFiles : public testing::Test {
 protected:
  HttpServerFiles() {
    write(root() / "index.html", "<p>home</p>");
    write(root() / "digits.txt", "0123456789");
    write(root() / "dir/index.html", "<p>dir</p>");
    write(root() / "empty/.keep", "");
    write(top_.path() / "secret.txt", "secret");
    fs::create_symlink(top_.path() / "secret.txt", root() / "out.txt");
    fs::create_symlink(top_.path(), root() / "up");
    fs::create_symlink(root() / "digits.txt", root() / "in.txt");
  }
  fs::path root() const { return top_.path() / "root"; }
  options with_root() const {
    options o = test_options();
    o.root = root();
    return o;
  }

 private:
  temp_dir top_;
};

TEST_F(HttpServerFiles, ServesAFileWithTheContentTypeOfItsExtension) {
  const std::pair<const char*, const char*> types[] = {
      {"a.html", "text/html"},
      {"a.css", "text/css"},
      {"a.js", "application/javascript"},
      {"a.json", "application/json"},
      {"a.txt", "text/plain"},
      {"a.png", "image/png"},
      {"a.jpg", "image/jpeg"},
      {"a.gif", "image/gif"},
      {"a.svg", "image/svg+xml"},
      {"a.ico", "image/x-icon"},
      {"a.pdf", "application/pdf"},
      {"a.wasm", "application/wasm"},
      {"a.bin", "application/octet-stream"},
      {"noext", "application/octet-stream"},
  };
  for (const auto& [name, type] : types) write(root() / name, name);
  with_server(with_root(), [&](server& s) {
    http_client c(s.local_address());
    for (const auto& [name, type] : types) {
      const response r = c.get(std::string("/") + name);
      EXPECT_EQ(r.result_int(), 200) << name;
      EXPECT_EQ(r[http::field::content_type], type) << name;
      EXPECT_EQ(r.body(), name);
    }
  });
}

TEST_F(HttpServerFiles, AnswersHeadOfAFileWithItsHeadersOnly) {
  with_server(with_root(), [](server& s) {
    http_client c(s.local_address());
    c.send("HEAD /digits.txt HTTP/1.1\r\nHost: a\r\n\r\n");
    const response r = c.read(/*head=*/true);
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_EQ(r[http::field::content_length], "10");
    EXPECT_EQ(c.get("/digits.txt").body(), "0123456789");
  });
}

TEST_F(HttpServerFiles, SendsABigFileWhole) {
  std::string big(3 * 1024 * 1024 + 17, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  write(root() / "big.bin", big);
  with_server(with_root(), [&](server& s) {
    http_client c(s.local_address());
    const response r = c.get("/big.bin");
    EXPECT_EQ(r.result_int(), 200);
    EXPECT_TRUE(r.body() == big) << "a body of " << r.body().size() << " bytes differs";
  });
}

TEST_F(HttpServerFiles, AnswersNotModifiedWhenIfModifiedSinceIsTheFilesTime) {
  with_server(with_root(), [](server& s) {
    http_client c(s.local_address());
    const response first = c.get("/digits.txt");
    const std::string modified(first[http::field::last_modified]);
    ASSERT_TRUE(detail::parse_http_date(modified).has_value()) << modified;

    const response same = c.get("/digits.txt", "If-Modified-Since: " + modified + "\r\n");
    EXPECT_EQ(same.result_int(), 304);
    EXPECT_EQ(same.body(), "");
    EXPECT_EQ(same[http::field::last_modified], modified);

    const response other =
        c.get("/digits.txt", "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
    EXPECT_EQ(other.result_int(), 200);
    EXPECT_EQ(other.body(), "0123456789");
  });
}

TEST_F(HttpServerFiles, ServesASingleRangeAsPartialContent) {
  with_server(with_root(), [](server& s) {
    http_client c(s.local_address());
    const std::tuple<const char*, const char*, const char*> ranges[] = {
        {"bytes=2-5", "2345", "bytes 2-5/10"},        {"bytes=7-", "789", "bytes 7-9/10"},
        {"bytes=-3", "789", "bytes 7-9/10"},          {"bytes=8-100", "89", "bytes 8-9/10"},
        {"bytes=-100", "0123456789", "bytes 0-9/10"},
    };
    for (const auto& [range, body, content_range] : ranges) {
      const response r = c.get("/digits.txt", std::string("Range: ") + range + "\r\n");
      EXPECT_EQ(r.result_int(), 206) << range;
      EXPECT_EQ(r.body(), body) << range;
      EXPECT_EQ(r[http::field::content_range], content_range) << range;
    }
  });
}

TEST_F(HttpServerFiles, AnswersAnUnsatisfiableRangeWith416AndTheSize) {
  with_server(with_root(), [](server& s) {
    http_client c(s.local_address());
    for (const char* range : {"bytes=10-", "bytes=10-20", "bytes=5-2", "bytes=-0", "bytes=x"}) {
      const response r = c.get("/digits.txt", std::string("Range: ") + range + "\r\n");
      EXPECT_EQ(r.result_int(), 416) << range;
      EXPECT_EQ(r[http::field::content_range], "bytes */10") << range;
    }
  });
}

TEST_F(HttpServerFiles, ServesTheWholeFileForSeveralRangesOrAnotherUnit) {
  with_server(with_root(), [](server& s) {
    http_client c(s.local_address());
    for (const char* range : {"bytes=0-1,4-5", "lines=1-2"}) {
      const response r = c.get("/digits.txt", std::string("Range: ") + range + "\r\n");
      EXPECT_EQ(r.result_int(), 200) << range;
      EXPECT_EQ(r.body(), "0123456789") << range;
    }
  });
}

TEST_F(HttpServerFiles, ServesTheIndexOfADirectoryAndRedirectsToItsSlash) {
  with_server(with_root(), [](server& s) {
    http_client c(s.local_address());
    EXPECT_EQ(c.get("/dir/").body(), "<p>dir</p>");
    const response bare = c.get("/dir");
    EXPECT_EQ(bare.result_int(), 301);
    EXPECT_EQ(bare[http::field::location], "/dir/");
    EXPECT_EQ(c.get("/empty/").result_int(), 403);  // no index, and no listing
    EXPECT_EQ(c.get("/missing.txt").result_int(), 404);
    EXPECT_EQ(c.get("/digits.txt/").result_int(), 404);
  });
}

TEST_F(HttpServerFiles, RefusesPathsThatLeaveTheRoot) {
  with_server(with_root(), [](server& s) {
    for (const char* target :
         {"/../secret.txt", "/dir/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt",
          "/dir/..%2f..%2fsecret.txt", "/digits.txt%00.html", "/%zz"}) {
      http_client c(s.local_address());
      const response r = c.get(target);
      EXPECT_EQ(r.result_int(), 400) << target;
      EXPECT_THAT(r.body(), testing::Not(testing::HasSubstr("secret"))) << target;
      EXPECT_TRUE(c.closed()) << target;  // as after any 400
    }
  });
}

TEST_F(HttpServerFiles, RefusesASymlinkOutOfTheRootButFollowsOneWithin) {
  with_server(with_root(), [](server& s) {
    http_client c(s.local_address());
    EXPECT_EQ(c.get("/out.txt").result_int(), 403);
    EXPECT_EQ(c.get("/up/secret.txt").result_int(), 403);
    EXPECT_EQ(c.get("/in.txt").body(), "0123456789");
  });
}

TEST_F(HttpServerFiles, AnswersPostToAFileWith405) {
  with_server(with_root(), [](server& s) {
    http_client c(s.local_address());
    c.send("POST /digits.txt HTTP/1.1\r\nHost: a\r\n\r\n");
    const response r = c.read();
    EXPECT_EQ(r.result_int(), 405);
    EXPECT_EQ(r[http::field::allow], "GET, HEAD");
  });
}

// The blocking pool's completed calls once none is in flight.
std::size_t settled_pool_calls() {
  for (;;) {
    const spindle::blocking_pool_stats b = spindle::blocking_stats();
    if (b.running == 0 && b.queued == 0 && b.waiting_room == 0) return b.completed;
    spindle::this_fiber::yield();
  }
}

TEST_F(HttpServerFiles, ServesAFileAgainFromTheOpenFileCacheWithoutThePool) {
  with_server(with_root(), [](server& s) {
    http_client c(s.local_address());
    EXPECT_EQ(c.get("/digits.txt").body(), "0123456789");
    EXPECT_EQ(s.stats().cached_files, 1u);
    // Looked up, opened and stat'ed once: the second request costs no pool
    // round trip (the file's bytes are cached, so send_file needs none).
    const std::size_t before = settled_pool_calls();
    EXPECT_EQ(c.get("/digits.txt", "Range: bytes=2-4\r\n").body(), "234");
    EXPECT_EQ(c.get("/digits.txt").body(), "0123456789");
    EXPECT_EQ(settled_pool_calls(), before);
    // Errors are not cached; a directory's index is, under the directory.
    EXPECT_EQ(c.get("/missing.txt").result_int(), 404);
    EXPECT_EQ(c.get("/dir/").body(), "<p>dir</p>");
    EXPECT_EQ(s.stats().cached_files, 2u);
  });
}

TEST_F(HttpServerFiles, SeesAReplacedFileOnceItsCacheEntryIsOutOfDate) {
  // Within the validity a replaced file is not seen (as nginx's cache);
  // with a validity already over at the next request, it is.
  for (const bool long_valid : {true, false}) {
    write(root() / "v.txt", "old");
    options o = with_root();
    o.open_file_cache_valid = long_valid ? std::chrono::milliseconds(std::chrono::hours(1))
                                         : std::chrono::milliseconds(0);
    with_server(o, [&](server& s) {
      http_client c(s.local_address());
      EXPECT_EQ(c.get("/v.txt").body(), "old");
      write(root() / "v.new", "new!");
      fs::rename(root() / "v.new", root() / "v.txt");
      EXPECT_EQ(c.get("/v.txt").body(), long_valid ? "old" : "new!") << "validity " << long_valid;
    });
  }
}

TEST_F(HttpServerFiles, KeepsNoMoreFilesOpenThanItsCacheHolds) {
  for (int i = 0; i < 5; ++i) write(root() / ("f" + std::to_string(i)), std::to_string(i));
  for (const std::size_t size : {std::size_t{0}, std::size_t{2}}) {
    options o = with_root();
    o.open_file_cache = size;
    with_server(o, [&](server& s) {
      http_client c(s.local_address());
      for (int round = 0; round < 2; ++round) {
        for (int i = 0; i < 5; ++i) {
          EXPECT_EQ(c.get("/f" + std::to_string(i)).body(), std::to_string(i));
          EXPECT_LE(s.stats().cached_files, size);
        }
      }
      EXPECT_EQ(s.stats().cached_files, size);
    });
  }
}

TEST(HttpServerWithoutRoot, AnswersEveryFilePathWith404) {
  with_server([](server& s) {
    http_client c(s.local_address());
    EXPECT_EQ(c.get("/index.html").result_int(), 404);
    EXPECT_EQ(c.get("/").result_int(), 200);
  });
}

}  // namespace
}  // namespace httpd::test
