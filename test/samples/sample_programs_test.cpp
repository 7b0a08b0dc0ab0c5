// The sample programs (samples/) as programs: each run as a child process,
// as a user would run it. --help lists the program's flags and exits 0; a
// bad command line exits 2 with a message; the servers say when they
// cannot listen, serve, and exit 0 on SIGTERM.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
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
#include <vector>

#include "samples/child_process.h"

namespace {

using spindle::test::child_patience;
using spindle::test::child_process;
using testing::AllOf;
using testing::HasSubstr;
using testing::Not;

// A blocking TCP connection to 127.0.0.1:port whose reads give up after
// child_patience; -1 (and a failure) if it cannot connect.
int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const timeval wait{child_patience.count(), 0};
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
  child_process p({GetParam().path, "--help"});
  EXPECT_EQ(p.finish(), 0) << p.err();
  EXPECT_THAT(p.out(), HasSubstr("Usage: "));
  for (const std::string& flag : GetParam().flags) {
    EXPECT_THAT(p.out(), HasSubstr(flag + " (")) << "--help leaves out " << flag;
  }
  // Only its own: not abseil's (--helpfull lists those).
  EXPECT_THAT(p.out(), Not(HasSubstr("--flagfile")));
}

TEST_P(SampleProgramTest, AnUnknownFlagExitsTwoAndSaysWhy) {
  child_process p({GetParam().path, "--no_such_flag=1"});
  EXPECT_EQ(p.finish(), 2);
  EXPECT_THAT(p.err(), AllOf(HasSubstr("no_such_flag"), HasSubstr("--help")));
  EXPECT_THAT(p.out(), Not(HasSubstr("listening")));
}

TEST_P(SampleProgramTest, AnArgumentItDoesNotTakeExitsTwoAndSaysWhy) {
  child_process p({GetParam().path, "1", "2", "3", "4"});
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
  child_process p({GetParam(), "--port=seven"});
  EXPECT_EQ(p.finish(), 2);
  EXPECT_THAT(p.err(), AllOf(HasSubstr("'seven'"), HasSubstr("port")));
}

TEST_P(ServerProgramTest, APortOutOfRangeExitsTwoAndSaysWhy) {
  for (const char* port : {"--port=65536", "--port=-1"}) {
    child_process p({GetParam(), port});
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
  child_process p({GetParam(), "--port=" + port, "--bind=127.0.0.1", "--workers=1"});
  EXPECT_EQ(p.finish(), 2);
  EXPECT_THAT(p.err(), AllOf(HasSubstr("cannot listen on 127.0.0.1:" + port),
                             HasSubstr("Address already in use")));
  ::close(taken);
}

// A connection (as connect_to() makes) to `server`, told to listen on
// 127.0.0.1 port 0, at the port it says first it listens on; -1 (and a
// failure) if it says nothing of the kind.
int connect_to_server(child_process& server) {
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
  child_process server(argv);
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
  child_process server({CHAT_SERVER_PROGRAM, "--port=0", "--bind=127.0.0.1", "--workers=2"});
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
