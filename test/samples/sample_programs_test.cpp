// The sample programs (samples/) as programs: each run as a child process,
// as a user would run it. --help lists the program's flags and exits 0; a
// bad command line exits 2 with a message; the servers say when they
// cannot listen, serve, and exit 0 on SIGTERM.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
using testing::AllOf;
using testing::HasSubstr;
using testing::Not;

// How long a program may take to answer before the test fails (and kills
// it). Generous: a sanitizer build on a loaded machine is slow to start.
constexpr auto patience = 60s;

// A sample program running as a child process, its stdout and stderr on
// pipes. One thread at a time.
class child {
 public:
  explicit child(std::vector<std::string> argv) : argv_(std::move(argv)) {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    std::vector<char*> args;
    for (std::string& a : argv_) args.push_back(a.data());
    args.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    ::close(err[1]);
    out_ = out[0];
    err_ = err[0];
    if (rc != 0) {
      pid_ = -1;
      ADD_FAILURE() << "cannot run " << argv_[0] << ": " << std::strerror(rc);
    }
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;
  // Whatever failed, the program does not outlive the test.
  ~child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
    if (err_ >= 0) ::close(err_);
  }

  // read_line() is the next line of the program's stdout, without its
  // '\n'; what there is (perhaps "") at end of stream or after patience.
  std::string read_line() {
    const auto give_up = std::chrono::steady_clock::now() + patience;
    std::size_t lf;
    while ((lf = out_text_.find('\n')) == std::string::npos && read_some(out_, out_text_, give_up)) {
    }
    std::string line = out_text_.substr(0, lf);
    out_text_.erase(0, lf == std::string::npos ? lf : lf + 1);
    return line;
  }

  void signal(int sig) { EXPECT_EQ(::kill(pid_, sig), 0) << std::strerror(errno); }

  // finish() reads the rest of the program's stdout and stderr and waits
  // for it to exit; after patience it kills it and fails the test.
  // Returns the exit status, -1 if the program did not exit by itself.
  int finish() {
    const auto give_up = std::chrono::steady_clock::now() + patience;
    while (read_some(out_, out_text_, give_up) || read_some(err_, err_text_, give_up)) {
    }
    if (std::chrono::steady_clock::now() >= give_up) {
      ADD_FAILURE() << argv_[0] << " still running after " << patience.count() << " s";
      ::kill(pid_, SIGKILL);
    }
    int status = 0;
    EXPECT_EQ(::waitpid(pid_, &status, 0), pid_);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  // What the program wrote (to stdout: not yet read by read_line()).
  const std::string& out() const { return out_text_; }
  const std::string& err() const { return err_text_; }

 private:
  // Appends what `fd` has to `to`, waiting for it until `give_up`; false
  // at end of stream or once `give_up` has passed.
  static bool read_some(int fd, std::string& to, std::chrono::steady_clock::time_point give_up) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        give_up - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) return false;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    to.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  std::vector<std::string> argv_;
  pid_t pid_ = -1;
  int out_ = -1;
  int err_ = -1;
  std::string out_text_;
  std::string err_text_;
};

// A blocking TCP connection to 127.0.0.1:port whose reads give up after
// patience; -1 (and a failure) if it cannot connect.
int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const timeval wait{std::chrono::seconds(patience).count(), 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ADD_FAILURE() << "cannot connect to port " << port << ": " << std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

void send_all(int fd, std::string_view bytes) {
  EXPECT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(bytes.size()))
      << std::strerror(errno);
}

// Reads one line (without CR LF) from a socket made by connect_to(); ""
// at end of stream, error or timeout.
std::string read_raw_line(int fd) {
  std::string line;
  char ch;
  while (::recv(fd, &ch, 1, 0) == 1) {
    if (ch == '\n') {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    line += ch;
  }
  return line;
}

// A program and the flags its --help lists.
struct sample {
  const char* path;
  std::vector<std::string> flags;
};

void PrintTo(const sample& s, std::ostream* os) { *os << s.path; }

// A test name's part for the program at `path`: "echoserver".
std::string name_of(std::string_view path) {
  std::string name;
  for (char ch : path.substr(path.rfind('/') + 1)) {
    if (std::isalnum(static_cast<unsigned char>(ch))) name += ch;
  }
  return name;
}

class SampleProgramTest : public testing::TestWithParam<sample> {};

INSTANTIATE_TEST_SUITE_P(
    Samples, SampleProgramTest,
    testing::Values(sample{PING_PONG_PROGRAM, {}},
                    sample{ECHO_SERVER_PROGRAM, {"--port", "--workers", "--bind"}},
                    sample{CHAT_SERVER_PROGRAM,
                           {"--port", "--bind", "--workers", "--server_name", "--network",
                            "--password", "--motd", "--max_clients", "--max_clients_per_ip",
                            "--sendq", "--register_timeout", "--ping_interval", "--ping_timeout",
                            "--flood_rate", "--flood_burst", "--flood_max_delayed"}}),
    [](const testing::TestParamInfo<sample>& info) { return name_of(info.param.path); });

TEST_P(SampleProgramTest, HelpListsTheProgramsOwnFlagsAndExitsZero) {
  child p({GetParam().path, "--help"});
  EXPECT_EQ(p.finish(), 0) << p.err();
  EXPECT_THAT(p.out(), HasSubstr("Usage: "));
  for (const std::string& flag : GetParam().flags) {
    EXPECT_THAT(p.out(), HasSubstr(flag + " (")) << "--help leaves out " << flag;
  }
  // Only its own: not abseil's (--helpfull lists those).
  EXPECT_THAT(p.out(), Not(HasSubstr("--flagfile")));
}

TEST_P(SampleProgramTest, AnUnknownFlagExitsTwoAndSaysWhy) {
  child p({GetParam().path, "--no_such_flag=1"});
  EXPECT_EQ(p.finish(), 2);
  EXPECT_THAT(p.err(), AllOf(HasSubstr("no_such_flag"), HasSubstr("--help")));
  EXPECT_THAT(p.out(), Not(HasSubstr("listening")));
}

TEST_P(SampleProgramTest, AnArgumentItDoesNotTakeExitsTwoAndSaysWhy) {
  child p({GetParam().path, "1", "2", "3", "4"});
  EXPECT_EQ(p.finish(), 2);
  EXPECT_THAT(p.err(), HasSubstr("--help"));
}

// The servers: the same for each.
class ServerProgramTest : public testing::TestWithParam<const char*> {};

INSTANTIATE_TEST_SUITE_P(Servers, ServerProgramTest,
                         testing::Values(ECHO_SERVER_PROGRAM, CHAT_SERVER_PROGRAM),
                         [](const testing::TestParamInfo<const char*>& info) {
                           return name_of(info.param);
                         });

TEST_P(ServerProgramTest, APortThatIsNotANumberExitsTwoAndSaysWhy) {
  child p({GetParam(), "--port=seven"});
  EXPECT_EQ(p.finish(), 2);
  EXPECT_THAT(p.err(), AllOf(HasSubstr("'seven'"), HasSubstr("port")));
}

TEST_P(ServerProgramTest, APortOutOfRangeExitsTwoAndSaysWhy) {
  for (const char* port : {"--port=65536", "--port=-1"}) {
    child p({GetParam(), port});
    EXPECT_EQ(p.finish(), 2) << port;
    EXPECT_THAT(p.err(), HasSubstr("--port must be 0 to 65535")) << port;
  }
}

TEST_P(ServerProgramTest, APortInUseExitsTwoAndSaysWhy) {
  // Taken by a listener of this test's (without SO_REUSEPORT, which the
  // servers do not set either).
  const int taken = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof at;
  ASSERT_EQ(::bind(taken, reinterpret_cast<sockaddr*>(&at), sizeof at), 0) << std::strerror(errno);
  ASSERT_EQ(::listen(taken, 1), 0);
  ASSERT_EQ(::getsockname(taken, reinterpret_cast<sockaddr*>(&at), &size), 0);
  const std::string port = std::to_string(ntohs(at.sin_port));
  child p({GetParam(), "--port=" + port, "--bind=127.0.0.1", "--workers=1"});
  EXPECT_EQ(p.finish(), 2);
  EXPECT_THAT(p.err(), AllOf(HasSubstr("cannot listen on 127.0.0.1:" + port),
                             HasSubstr("Address already in use")));
  ::close(taken);
}

// A connection (as connect_to() makes) to `server`, told to listen on
// 127.0.0.1 port 0, at the port it says first it listens on; -1 (and a
// failure) if it says nothing of the kind.
int connect_to_server(child& server) {
  const std::string first = server.read_line();
  const std::size_t colon = first.rfind(':');
  if (first.find("listening on 127.0.0.1:") == std::string::npos || colon == std::string::npos) {
    ADD_FAILURE() << "it said \"" << first << "\"; stderr: " << server.err();
    return -1;
  }
  return connect_to(std::atoi(first.c_str() + colon + 1));
}

// The echo server, started with flags or with the benchmark scripts'
// arguments (echo_server PORT WORKERS BIND).
class EchoServerProgramTest : public testing::TestWithParam<std::vector<std::string>> {};

INSTANTIATE_TEST_SUITE_P(
    CommandLines, EchoServerProgramTest,
    testing::Values(std::vector<std::string>{"--port=0", "--bind=127.0.0.1", "--workers=2"},
                    std::vector<std::string>{"0", "1", "127.0.0.1"}),
    [](const testing::TestParamInfo<std::vector<std::string>>& info) {
      return info.index == 0 ? "Flags" : "Arguments";
    });

TEST_P(EchoServerProgramTest, EchoesWhatItIsSentAndOnSigtermExitsWithZero) {
  std::vector<std::string> argv = {ECHO_SERVER_PROGRAM};
  argv.insert(argv.end(), GetParam().begin(), GetParam().end());
  child server(argv);
  const int fd = connect_to_server(server);
  ASSERT_GE(fd, 0);
  send_all(fd, "hello, echo\n");
  EXPECT_EQ(read_raw_line(fd), "hello, echo");
  server.signal(SIGTERM);
  EXPECT_EQ(read_raw_line(fd), "");  // closed by the stop
  ::close(fd);
  EXPECT_EQ(server.finish(), 0) << server.err();
  EXPECT_THAT(server.out(), HasSubstr("stopped"));
}

TEST(ChatServerProgramTest, OnSigtermItTellsClientsItIsShuttingDownAndExitsWithZero) {
  child server({CHAT_SERVER_PROGRAM, "--port=0", "--bind=127.0.0.1", "--workers=2"});
  const int fd = connect_to_server(server);  // "chat_server: listening on 127.0.0.1:PORT"
  ASSERT_GE(fd, 0);
  send_all(fd, "NICK sig\r\nUSER sig 0 * :Sig\r\n");
  std::string line;
  do {
    line = read_raw_line(fd);
  } while (!line.empty() && line.find(" 376 ") == std::string::npos &&
           line.find(" 422 ") == std::string::npos);
  ASSERT_FALSE(line.empty()) << "no end of MOTD";

  server.signal(SIGTERM);
  EXPECT_EQ(read_raw_line(fd), "ERROR :Server shutting down");
  EXPECT_EQ(read_raw_line(fd), "");  // then end of stream
  ::close(fd);
  EXPECT_EQ(server.finish(), 0) << server.err();
}

}  // namespace
