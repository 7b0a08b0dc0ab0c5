// kv_server as a program (samples/kv/main.cpp), run as a child process as
// a user would run it: its command line, a graceful stop on SIGTERM, and
// the real redis-cli talking to it, its output checked as redis-cli
// prints it (when its stdout is a pipe, as here: raw replies, or with
// --no-raw the "(error) ..." and "(integer) ..." forms a terminal shows).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

// How long a program may take before the test fails (and kills it):
// generous, for sanitizer builds on a loaded machine.
constexpr auto patience = 60s;

// A program running as a child process, its stdout and stderr on one
// pipe.
class process {
 public:
  explicit process(std::vector<std::string> argv) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDERR_FILENO);
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    const int rc = ::posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    out_ = out[0];
    if (rc != 0) {
      pid_ = -1;
      ADD_FAILURE() << "cannot run " << argv[0] << ": " << std::strerror(rc);
    }
  }
  process(const process&) = delete;
  process& operator=(const process&) = delete;
  ~process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
  }

  // read_line() is the next line of output without its '\n' ("" at the
  // end, or after patience).
  std::string read_line() {
    const auto give_up = std::chrono::steady_clock::now() + patience;
    std::size_t lf;
    while ((lf = text_.find('\n')) == std::string::npos && read_some(give_up)) {
    }
    std::string line = text_.substr(0, lf);
    text_.erase(0, lf == std::string::npos ? lf : lf + 1);
    return line;
  }
  void signal(int sig) { EXPECT_EQ(::kill(pid_, sig), 0) << std::strerror(errno); }
  // finish() reads the rest of the output and waits for the program to
  // exit: its exit status, -1 if it did not exit by itself in time.
  int finish() {
    const auto give_up = std::chrono::steady_clock::now() + patience;
    while (read_some(give_up)) {
    }
    if (std::chrono::steady_clock::now() >= give_up) {
      ADD_FAILURE() << "still running after " << patience.count() << " s";
      ::kill(pid_, SIGKILL);
    }
    int status = 0;
    EXPECT_EQ(::waitpid(pid_, &status, 0), pid_);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  const std::string& output() const { return text_; }  // what read_line() has not taken

 private:
  bool read_some(std::chrono::steady_clock::time_point give_up) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(give_up - std::chrono::steady_clock::now());
    pollfd p{out_, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) return false;
    char buf[4096];
    const ssize_t n = ::read(out_, buf, sizeof buf);
    if (n <= 0) return false;
    text_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int out_ = -1;
  std::string text_;
};

// output_of() runs a program to its end: {exit status, its output}.
std::pair<int, std::string> output_of(std::vector<std::string> argv) {
  process p(std::move(argv));
  const int status = p.finish();
  return {status, p.output()};
}

// A kv_server on a free port of 127.0.0.1, stopped with SIGTERM by
// stop() (or killed, if the test failed first).
class server_process {
 public:
  server_process() : p_({KV_SERVER_PROGRAM, "--port=0", "--bind=127.0.0.1", "--workers=2"}) {
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
  process p_;
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
