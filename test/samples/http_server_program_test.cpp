// http_server (samples/http/main.cpp) as a program, run as a child
// process: its command line, a request and a SIGTERM; and real curl
// against it (keep-alive, ranges, a chunked upload), skipped where curl
// is not installed. Plain threads only: no fiber here.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "samples/child_process.h"

namespace {

using spindle::test::child_patience;
using spindle::test::child_process;
using spindle::test::run_to_end;
using testing::HasSubstr;
namespace fs = std::filesystem;

// The port a server started with --bind=127.0.0.1 --port=0 says it
// listens on, from its first line; 0 (and a failure) if it says nothing
// of the kind.
int port_of(child_process& server) {
  const std::string first = server.read_line();
  const std::size_t colon = first.rfind(':');
  if (first.find("listening on 127.0.0.1:") == std::string::npos) {
    ADD_FAILURE() << "it said \"" << first << "\"";
    return 0;
  }
  return std::atoi(first.c_str() + colon + 1);
}

// curl's path, found on PATH; nullopt if it is not installed.
std::optional<std::string> find_curl() {
  const char* path = std::getenv("PATH");
  std::string_view dirs = path != nullptr ? path : "/usr/bin:/bin";
  while (!dirs.empty()) {
    const std::size_t colon = dirs.find(':');
    const fs::path candidate = fs::path(dirs.substr(0, colon)) / "curl";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    dirs.remove_prefix(colon == std::string_view::npos ? dirs.size() : colon + 1);
  }
  return std::nullopt;
}

TEST(HttpServerProgram, HelpListsItsFlagsAndExitsZero) {
  child_process p({HTTP_SERVER_PROGRAM, "--help"});
  EXPECT_EQ(p.finish(), 0) << p.err();
  for (const char* flag :
       {"--port", "--bind", "--workers", "--root", "--max_header_bytes", "--max_uri_bytes",
        "--max_body_bytes", "--max_connections", "--header_timeout", "--keepalive_timeout"}) {
    EXPECT_THAT(p.out(), HasSubstr(std::string(flag) + " (")) << flag;
  }
}

TEST(HttpServerProgram, ABogusFlagExitsTwoAndSaysWhy) {
  child_process p({HTTP_SERVER_PROGRAM, "--bogus"});
  EXPECT_EQ(p.finish(), 2);
  EXPECT_THAT(p.err(), HasSubstr("bogus"));
}

TEST(HttpServerProgram, APortOutOfRangeExitsTwoAndSaysWhy) {
  child_process p({HTTP_SERVER_PROGRAM, "--port=65536"});
  EXPECT_EQ(p.finish(), 2);
  EXPECT_THAT(p.err(), HasSubstr("--port must be 0 to 65535"));
}

TEST(HttpServerProgram, ARootThatIsNotADirectoryExitsTwoAndSaysWhy) {
  for (const char* root : {"--root=/no/such/dir", "--root=" HTTP_SERVER_PROGRAM}) {
    child_process p({HTTP_SERVER_PROGRAM, "--port=0", "--bind=127.0.0.1", root});
    EXPECT_EQ(p.finish(), 2) << root;
    EXPECT_THAT(p.err(), HasSubstr("--root")) << root;
  }
}

TEST(HttpServerProgram, AnswersARequestAndExitsZeroOnSigterm) {
  child_process server({HTTP_SERVER_PROGRAM, "--port=0", "--bind=127.0.0.1", "--workers=2"});
  const int port = port_of(server);
  ASSERT_NE(port, 0);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const timeval wait{child_patience.count(), 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to), 0) << std::strerror(errno);
  const std::string request = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  std::string answer;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
    answer.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  EXPECT_THAT(answer, HasSubstr("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(answer, HasSubstr("\r\n\r\nHello, World!\n"));
  server.signal(SIGTERM);
  EXPECT_EQ(server.finish(), 0) << server.err();
  EXPECT_THAT(server.out(), HasSubstr("stopped"));
}

// curl against the program, serving a directory of this test's.
class HttpServerCurl : public testing::Test {
 protected:
  void SetUp() override {
    curl_ = find_curl();
    if (!curl_) GTEST_SKIP() << "curl is not installed (not on PATH)";
    std::string pattern = (fs::temp_directory_path() / "http_curl_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
    std::ofstream(root_ / "digits.txt") << "0123456789";
    server_.emplace(std::vector<std::string>{HTTP_SERVER_PROGRAM, "--port=0", "--bind=127.0.0.1",
                                             "--workers=2", "--root=" + root_.string()});
    base_ = "http://127.0.0.1:" + std::to_string(port_of(*server_));
  }
  void TearDown() override {
    if (server_) {
      server_->signal(SIGTERM);
      EXPECT_EQ(server_->finish(), 0) << server_->err();
    }
    std::error_code ignored;
    if (!root_.empty()) fs::remove_all(root_, ignored);
  }

  // Runs curl with `args` and returns what it wrote on stdout; expects it
  // to exit 0.
  std::string curl(std::vector<std::string> args) {
    args.insert(args.begin(),
                {*curl_, "--silent", "--show-error", "--http1.1", "--max-time", "60"});
    const auto [status, out, err] = run_to_end(std::move(args));
    EXPECT_EQ(status, 0) << err;
    return out;
  }

  std::optional<std::string> curl_;
  fs::path root_;
  std::optional<child_process> server_;
  std::string base_;
};

TEST_F(HttpServerCurl, ReusesOneConnectionForTwoUrls) {
  // num_connects is the connections each transfer opened: 0 for the
  // second, which reused the first's.
  const std::string out =
      curl({"--write-out", "[%{http_code} %{num_connects}]", base_ + "/", base_ + "/digits.txt"});
  EXPECT_EQ(out, "Hello, World!\n[200 1]0123456789[200 0]");
}

TEST_F(HttpServerCurl, GetsARange) {
  EXPECT_EQ(curl({"--range", "2-5", "--write-out", "[%{http_code}]", base_ + "/digits.txt"}),
            "2345[206]");
}

TEST_F(HttpServerCurl, UploadsAChunkedBodyToEcho) {
  std::string body;
  for (int i = 0; i < 20000; ++i) body += "line " + std::to_string(i) + "\n";
  std::ofstream(root_ / "upload.txt") << body;
  EXPECT_EQ(curl({"--upload-file", (root_ / "upload.txt").string(), "--header",
                  "Transfer-Encoding: chunked", base_ + "/echo"}),
            body);
}

}  // namespace
