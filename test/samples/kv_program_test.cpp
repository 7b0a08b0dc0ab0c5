// kv_server as a program (samples/kv/main.cpp), run as a child process as
// a user would run it: its command line, a graceful stop on SIGTERM, and
// the real redis-cli talking to it, its output checked as redis-cli
// prints it (when its stdout is a pipe, as here: raw replies, or with
// --no-raw the "(error) ..." and "(integer) ..." forms a terminal shows).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "samples/child_process.h"

namespace {

using spindle::test::child_process;

// output_of() runs a program to its end, its stdout and stderr on one
// pipe: {exit status, its output}.
std::pair<int, std::string> output_of(std::vector<std::string> argv) {
  auto [status, out, err] =
      spindle::test::run_to_end(std::move(argv), child_process::stderr_to::stdout_pipe);
  return {status, std::move(out)};
}

// A kv_server on a free port of 127.0.0.1, stopped with SIGTERM by
// stop() (or killed, if the test failed first).
class server_process {
 public:
  server_process()
      : p_({KV_SERVER_PROGRAM, "--port=0", "--bind=127.0.0.1", "--workers=2"},
           child_process::stderr_to::stdout_pipe) {
    const std::string line = p_.read_line();  // "kv_server: listening on 127.0.0.1:PORT"
    const std::size_t colon = line.rfind(':');
    EXPECT_TRUE(line.starts_with("kv_server: listening on ")) << line;
    if (colon != std::string::npos) port_ = std::atoi(line.c_str() + colon + 1);
  }
  int port() const { return port_; }
  // stop() sends SIGTERM; the exit status.
  int stop() {
    p_.signal(SIGTERM);
    return p_.finish();
  }

 private:
  child_process p_;
  int port_ = 0;
};

TEST(KvServerProgramTest, AnUnknownFlagExitsTwoAndSaysWhy) {
  const auto [status, out] = output_of({KV_SERVER_PROGRAM, "--bogus"});
  EXPECT_EQ(status, 2);
  EXPECT_NE(out.find("bogus"), std::string::npos) << out;
  EXPECT_NE(out.find("kv_server --help"), std::string::npos) << out;
}

TEST(KvServerProgramTest, HelpListsItsFlagsAndExitsZero) {
  const auto [status, out] = output_of({KV_SERVER_PROGRAM, "--help"});
  EXPECT_EQ(status, 0);
  for (const char* flag : {"-port", "-bind", "-workers", "-maxclients", "-proto_max_bulk_len",
                           "-max_multibulk_len", "-write_timeout"}) {
    EXPECT_NE(out.find(flag), std::string::npos) << flag << " in:\n" << out;
  }
}

TEST(KvServerProgramTest, AnswersPingAndOnSigtermExitsZero) {
  server_process s;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(s.port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
  ASSERT_EQ(::send(fd, "PING\r\n", 6, MSG_NOSIGNAL), 6);
  char buf[16] = {};
  std::size_t got = 0;
  while (got < 7) {
    const ssize_t n = ::recv(fd, buf + got, 7 - got, 0);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  EXPECT_EQ(std::string(buf, got), "+PONG\r\n");
  EXPECT_EQ(s.stop(), 0);  // with a client still connected
  ::close(fd);
}

// redis-cli's path, or "" if it is not installed.
std::string redis_cli() {
  for (const char* dir : {"/usr/bin/", "/usr/local/bin/"}) {
    const std::string path = std::string(dir) + "redis-cli";
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return "";
}

TEST(KvServerProgramTest, RedisCliPrintsItsRepliesAsItPrintsRedissOwn) {
  const std::string cli = redis_cli();
  if (cli.empty()) GTEST_SKIP() << "redis-cli is not installed (Debian package redis-tools)";
  server_process s;
  const std::string port = std::to_string(s.port());
  const auto cli_run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {cli, "-p", port});
    const auto [status, out] = output_of(args);
    EXPECT_EQ(status, 0) << out;
    return out;
  };
  EXPECT_EQ(cli_run({"SET", "k", "v"}), "OK\n");
  EXPECT_EQ(cli_run({"GET", "k"}), "v\n");
  EXPECT_EQ(cli_run({"GET", "nope"}), "\n");  // nil, raw
  EXPECT_EQ(cli_run({"RPUSH", "l", "a", "b", "c"}), "3\n");
  EXPECT_EQ(cli_run({"LRANGE", "l", "0", "-1"}), "a\nb\nc\n");
  EXPECT_EQ(cli_run({"--no-raw", "LRANGE", "l", "0", "-1"}), "1) \"a\"\n2) \"b\"\n3) \"c\"\n");
  EXPECT_EQ(cli_run({"--no-raw", "INCR", "n"}), "(integer) 1\n");
  EXPECT_EQ(cli_run({"--no-raw", "GET", "nope"}), "(nil)\n");
  EXPECT_EQ(cli_run({"--no-raw", "foo", "a"}),
            "(error) ERR unknown command 'foo', with args beginning with: 'a' \n");
  EXPECT_EQ(cli_run({"--no-raw", "GET", "l"}),
            "(error) WRONGTYPE Operation against a key holding the wrong kind of value\n");
  EXPECT_EQ(cli_run({"DBSIZE"}), "3\n");
  EXPECT_EQ(s.stop(), 0);
}

}  // namespace
