// The hooked socket calls on a fiber against the same calls on a plain
// thread: socket, socketpair, accept, accept4, connect, recv, recvfrom,
// recvmsg, send, sendto, sendmsg (and read, readv, write, writev on
// sockets), SO_RCVTIMEO and SO_SNDTIMEO. test/hook/family_util.h says how
// each scenario runs on both, with its companion on the same worker.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "hook/family_util.h"

namespace {

using namespace spindle::test::family;
using outcomes = std::vector<outcome>;

// nonblocking(fd): 1 when F_GETFL shows O_NONBLOCK, 0 when not.
long nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  return flags < 0 ? -1 : (flags & O_NONBLOCK) != 0;
}

void close_all(std::initializer_list<int> fds) {
  for (int fd : fds) {
    if (fd >= 0) ::close(fd);
  }
}

// ---- socket, socketpair ----

TEST(HookSocketsTest, ASocketOrSocketpairMadeOnAFiberIsBlockingToItsUserUnlessAskedOtherwise) {
  expect_on_both(
      [] {
        outcomes r;
        int s = -1;
        r.push_back(descriptor(capture([&] { return s = ::socket(AF_INET, SOCK_STREAM, 0); })));
        r.push_back(returned(nonblocking(s)));
        const int n = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        r.push_back(returned(nonblocking(n)));
        int sv[2] = {-1, -1};
        r.push_back(capture([&] { return ::socketpair(AF_UNIX, SOCK_STREAM, 0, sv); }));
        r.push_back(returned(nonblocking(sv[0]) + nonblocking(sv[1])));
        int nv[2] = {-1, -1};
        r.push_back(capture([&] { return ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, nv); }));
        r.push_back(returned(nonblocking(nv[0]) + nonblocking(nv[1])));
        r.push_back(capture([] { return ::socket(AF_INET, SOCK_STREAM, IPPROTO_UDP); }));
        close_all({s, n, sv[0], sv[1], nv[0], nv[1]});
        return r;
      },
      outcomes{made_descriptor(), returned(0), returned(1), returned(0), returned(0), returned(0), returned(2),
               failed(EPROTONOSUPPORT)});
}

// ---- accept, accept4 ----

TEST(HookSocketsTest, AnAcceptOnAFiberParksUntilAnotherFiberOnTheSameWorkerConnects) {
  expect_on_both(
      [] {
        std::uint16_t port = 0;
        const int listener = tcp_listener(&port);
        outcome connected;
        companion client([&] {
          await_parked();
          const int c = ::socket(AF_INET, SOCK_STREAM, 0);
          connected = capture([&] { return connect_loopback(c, port); });
          scribble_errno();
          char byte = 0;
          if (::recv(c, &byte, 1, 0) == 1) connected.data.assign(1, byte);
          ::close(c);
        });
        int a = -1;
        const outcome accepted = descriptor(capture([&] { return a = ::accept(listener, nullptr, nullptr); }));
        const long flags = nonblocking(a);
        const outcome sent = capture([&] { return ::send(a, "!", 1, 0); });
        scribble_errno();
        client.join();
        close_all({a, listener});
        return outcomes{accepted, returned(flags), sent, connected};
      },
      outcomes{made_descriptor(), returned(0), returned(1), returned(0, "!")});
}

TEST(HookSocketsTest, Accept4WithSockNonblockAndSockCloexecGivesASocketWhoseRecvFailsWithEagain) {
  expect_on_both(
      [] {
        std::uint16_t port = 0;
        const int listener = tcp_listener(&port);
        const int c = ::socket(AF_INET, SOCK_STREAM, 0);
        EXPECT_EQ(connect_loopback(c, port), 0);
        int a = -1;
        const outcome accepted = descriptor(
            capture([&] { return a = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC); }));
        const long flags = nonblocking(a);
        const long cloexec = (::fcntl(a, F_GETFD) & FD_CLOEXEC) != 0;
        std::atomic<bool> done{false};
        companion rescuer([&] {
          await_parked_or(done);
          if (!done.load()) (void)::send(c, "parked", 6, 0);  // the recv parked: end it, and fail
        });
        char buf[16];
        const outcome got = capture_into(buf, [&] { return ::recv(a, buf, sizeof buf, 0); });
        done = true;
        rescuer.join();
        close_all({a, c, listener});
        return outcomes{accepted, returned(flags), returned(cloexec), got};
      },
      outcomes{made_descriptor(), returned(1), returned(1), failed(EAGAIN)});
}

TEST(HookSocketsTest, Accept4WithoutFlagsParksAndGivesASocketWhoseRecvParksUntilTheClientSends) {
  expect_on_both(
      [] {
        std::uint16_t port = 0;
        const int listener = tcp_listener(&port);
        std::atomic<bool> receiving{false};
        std::atomic<bool> done{false};
        companion client([&] {
          await_parked();  // in accept4
          const int c = ::socket(AF_INET, SOCK_STREAM, 0);
          EXPECT_EQ(connect_loopback(c, port), 0);
          await(receiving);
          await_parked_or(done);  // in recv
          (void)::send(c, "data", 4, 0);
          scribble_errno();
          ::close(c);
        });
        int a = -1;
        const outcome accepted = descriptor(capture([&] { return a = ::accept4(listener, nullptr, nullptr, 0); }));
        const long flags = nonblocking(a);
        receiving = true;
        char buf[16];
        const outcome got = capture_into(buf, [&] { return ::recv(a, buf, sizeof buf, 0); });
        done = true;
        client.join();
        close_all({a, listener});
        return outcomes{accepted, returned(flags), got};
      },
      outcomes{made_descriptor(), returned(0), returned(4, "data")});
}

TEST(HookSocketsTest, AnAcceptOnAListenerTheUserMadeNonBlockingFailsWithEagain) {
  expect_on_both(
      [] {
        std::uint16_t port = 0;
        const int listener = tcp_listener(&port);
        EXPECT_EQ(::fcntl(listener, F_SETFL, ::fcntl(listener, F_GETFL) | O_NONBLOCK), 0);
        std::atomic<bool> done{false};
        companion rescuer([&] {
          await_parked_or(done);
          if (!done.load()) {  // the accept parked: end it with a connection, and fail
            const int c = ::socket(AF_INET, SOCK_STREAM, 0);
            (void)connect_loopback(c, port);
            ::close(c);
          }
        });
        int a = -1;
        const outcome accepted = capture([&] { return a = ::accept(listener, nullptr, nullptr); });
        done = true;
        rescuer.join();
        const long flags = nonblocking(listener);
        close_all({a, listener});
        return outcomes{accepted, returned(flags)};
      },
      outcomes{failed(EAGAIN), returned(1)});
}

// ---- connect ----

TEST(HookSocketsTest, AConnectToATcpPortNobodyListensOnFailsWithEconnrefused) {
  expect_on_both(
      [] {
        const int holder = ::socket(AF_INET, SOCK_STREAM, 0);  // bound, never listening: refuses
        const std::uint16_t port = bind_loopback(holder);
        const int c = ::socket(AF_INET, SOCK_STREAM, 0);
        const outcome refused = capture([&] { return connect_loopback(c, port); });
        const long flags = nonblocking(c);
        close_all({c, holder});
        return outcomes{refused, returned(flags)};
      },
      outcomes{failed(ECONNREFUSED), returned(0)});
}

TEST(HookSocketsTest, AConnectToAUnixAddressNobodyListensOnFailsWithEconnrefused) {
  expect_on_both(
      [] {
        const auto [addr, len] = abstract_address("refused");
        const int holder = ::socket(AF_UNIX, SOCK_STREAM, 0);
        EXPECT_EQ(::bind(holder, reinterpret_cast<const sockaddr*>(&addr), len), 0);
        const int c = ::socket(AF_UNIX, SOCK_STREAM, 0);
        const outcome refused = capture([&] { return ::connect(c, reinterpret_cast<const sockaddr*>(&addr), len); });
        close_all({c, holder});
        return outcomes{refused};
      },
      outcomes{failed(ECONNREFUSED)});
}

TEST(HookSocketsTest, AConnectOnASocketTheUserMadeNonBlockingFailsWithEinprogressAndCompletesLikeTheKernels) {
  expect_on_both(
      [] {
        std::uint16_t port = 0;
        const int listener = tcp_listener(&port);
        const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        const outcome first = capture([&] { return connect_loopback(c, port); });
        pollfd p{c, POLLOUT, 0};
        const outcome writable = capture([&] { return ::poll(&p, 1, -1); });
        // The first connect after the handshake reports its success, as
        // the kernel does; any later one says the socket is connected.
        const outcome completed = capture([&] { return connect_loopback(c, port); });
        const outcome again = capture([&] { return connect_loopback(c, port); });
        close_all({c, listener});
        return outcomes{first, writable, completed, again};
      },
      outcomes{failed(EINPROGRESS), returned(1), returned(0), failed(EISCONN)});
}

// A blocking connect to a unix listener whose backlog is full waits until
// the listener accepts (the kernel's non-blocking connect says EAGAIN).
TEST(HookSocketsTest, AConnectToAUnixListenerWithAFullBacklogParksUntilAnotherFiberAccepts) {
  expect_on_both(
      [] {
        const auto [addr, len] = abstract_address("backlog");
        const sockaddr* to = reinterpret_cast<const sockaddr*>(&addr);
        const int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
        EXPECT_EQ(::bind(listener, to, len), 0);
        EXPECT_EQ(::listen(listener, 0), 0);
        std::vector<int> queued;
        for (int i = 0; i < 64; ++i) {  // fill the backlog
          const int q = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
          if (::connect(q, to, len) != 0) {
            EXPECT_EQ(errno, EAGAIN);
            ::close(q);
            break;
          }
          queued.push_back(q);
        }
        std::atomic<bool> done{false};
        rescue on_hang([&] { ::close(::accept(listener, nullptr, nullptr)); });
        companion server([&] {
          await_parked_or(done);
          ::close(::accept(listener, nullptr, nullptr));
        });
        const int c = ::socket(AF_UNIX, SOCK_STREAM, 0);
        const outcome connected = capture([&] { return ::connect(c, to, len); });
        done = true;
        on_hang.done();
        server.join();
        for (int q : queued) ::close(q);
        close_all({c, listener});
        return outcomes{connected, returned(on_hang.used() ? 1 : 0)};
      },
      outcomes{returned(0), returned(0) /* no rescue needed */});
}

// tcp_backlog_full(listener): the listener's accept queue holds more than
// its backlog allows, so that the kernel drops new SYNs (tcp_info of a
// listener: tcpi_unacked is the queue, tcpi_sacked the backlog).
bool tcp_backlog_full(int listener) {
  tcp_info info{};
  socklen_t len = sizeof info;
  return ::getsockopt(listener, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 && info.tcpi_unacked > info.tcpi_sacked;
}

TEST(HookSocketsTest, AConnectWithSoSndtimeoToAListenerThatDropsItsSynFailsWithEinprogress) {
  expect_on_both(
      [] {
        std::uint16_t port = 0;
        const int listener = tcp_listener(&port, 0);
        const int filler = ::socket(AF_INET, SOCK_STREAM, 0);
        EXPECT_EQ(connect_loopback(filler, port), 0);
        while (!tcp_backlog_full(listener)) let_others_run();
        const int c = ::socket(AF_INET, SOCK_STREAM, 0);
        const timeval tv = as_timeval(short_timeout);
        EXPECT_EQ(::setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
        const outcome timed_out = capture([&] { return connect_loopback(c, port); });
        close_all({c, filler, listener});
        return outcomes{timed_out};
      },
      outcomes{failed(EINPROGRESS)});
}

// ---- recv, recvfrom, recvmsg ----

TEST(HookSocketsTest, ARecvOnAFiberParksUntilAnotherFiberOnTheSameWorkerSendsAndReturnsWhatCame) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        long sent = 0;
        companion peer([&] {
          await_parked();
          sent = ::send(sv[1], "hello", 5, 0);
          scribble_errno();
        });
        char buf[100];
        const outcome got = capture_into(buf, [&] { return ::recv(sv[0], buf, sizeof buf, 0); });
        peer.join();
        close_all({sv[0], sv[1]});
        return outcomes{got, returned(sent)};
      },
      outcomes{returned(5, "hello"), returned(5)});
}

TEST(HookSocketsTest, ARecvOnAFiberReturnsZeroWhenThePeerClosesWhileItIsParked) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        companion peer([&] {
          await_parked();
          ::close(sv[1]);
          scribble_errno();
        });
        char buf[16];
        const outcome got = capture_into(buf, [&] { return ::recv(sv[0], buf, sizeof buf, 0); });
        peer.join();
        ::close(sv[0]);
        return outcomes{got};
      },
      outcomes{returned(0)});
}

TEST(HookSocketsTest, MsgDontwaitOnABlockingSocketFailsWithEagainInsteadOfParking) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        std::atomic<bool> done{false};
        companion rescuer([&] {
          await_parked_or(done);
          if (!done.load()) (void)::send(sv[1], "parked", 6, 0);
        });
        char buf[16];
        const outcome got = capture_into(buf, [&] { return ::recv(sv[0], buf, sizeof buf, MSG_DONTWAIT); });
        done = true;
        rescuer.join();
        close_all({sv[0], sv[1]});
        return outcomes{got};
      },
      outcomes{failed(EAGAIN)});
}

// The receiving calls that MSG_WAITALL applies to, each asked for `n`
// bytes into `buf`.
struct waitall_call {
  const char* name;
  std::function<ssize_t(int fd, char* buf, std::size_t n)> call;
};

const waitall_call waitall_calls[] = {
    {"Recv", [](int fd, char* buf, std::size_t n) { return ::recv(fd, buf, n, MSG_WAITALL); }},
    {"Recvfrom",
     [](int fd, char* buf, std::size_t n) { return ::recvfrom(fd, buf, n, MSG_WAITALL, nullptr, nullptr); }},
    {"Recvmsg",
     [](int fd, char* buf, std::size_t n) {
       iovec iov[2] = {{buf, n / 2}, {buf + n / 2, n - n / 2}};
       msghdr m{};
       m.msg_iov = iov;
       m.msg_iovlen = 2;
       return ::recvmsg(fd, &m, MSG_WAITALL);
     }},
};

void PrintTo(const waitall_call& c, std::ostream* os) { *os << c.name; }

class HookSocketsWaitallTest : public testing::TestWithParam<waitall_call> {};

TEST_P(HookSocketsWaitallTest, MsgWaitallWaitsUntilAllThePiecesAnotherFiberSendsHaveCome) {
  const waitall_call& c = GetParam();
  expect_on_both(
      [&] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        const std::string message = pattern(40, 'a');
        std::atomic<bool> done{false};
        companion peer([&] {
          for (std::size_t at = 0; at < message.size(); at += 10) {
            await_consumed(sv[0], done);  // each piece once the receiver has parked again
            (void)::send(sv[1], message.data() + at, 10, 0);
            scribble_errno();
          }
        });
        char buf[40];
        const outcome got = capture_into(buf, [&] { return c.call(sv[0], buf, sizeof buf); });
        done = true;
        peer.join();
        close_all({sv[0], sv[1]});
        return outcomes{got};
      },
      outcomes{returned(40, pattern(40, 'a'))});
}

TEST_P(HookSocketsWaitallTest, MsgWaitallReturnsWhatCameBeforeThePeerShutDownItsSide) {
  const waitall_call& c = GetParam();
  expect_on_both(
      [&] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        std::atomic<bool> done{false};
        companion peer([&] {
          await_parked_or(done);
          (void)::send(sv[1], "fifteen bytes!!", 15, 0);
          await_consumed(sv[0], done);
          ::shutdown(sv[1], SHUT_WR);
          scribble_errno();
        });
        char buf[40];
        const outcome got = capture_into(buf, [&] { return c.call(sv[0], buf, sizeof buf); });
        done = true;
        peer.join();
        close_all({sv[0], sv[1]});
        return outcomes{got};
      },
      outcomes{returned(15, "fifteen bytes!!")});
}

INSTANTIATE_TEST_SUITE_P(Calls, HookSocketsWaitallTest, testing::ValuesIn(waitall_calls),
                         [](const testing::TestParamInfo<waitall_call>& info) { return std::string(info.param.name); });

TEST(HookSocketsTest, ARecvfromOnAFiberParksUntilADatagramComesAndReturnsItAndItsSender) {
  expect_on_both(
      [] {
        const int rx = ::socket(AF_INET, SOCK_DGRAM, 0);
        const std::uint16_t rx_port = bind_loopback(rx);
        std::uint16_t tx_port = 0;
        companion sender([&] {
          const int tx = ::socket(AF_INET, SOCK_DGRAM, 0);
          tx_port = bind_loopback(tx);
          const sockaddr_in to = loopback(rx_port);
          await_parked();
          for (const char* d : {"datagram", "truncated"}) {
            (void)::sendto(tx, d, std::strlen(d), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
          }
          scribble_errno();
          ::close(tx);
        });
        char buf[100];
        sockaddr_in from{};
        socklen_t len = sizeof from;
        sockaddr* const from_addr = reinterpret_cast<sockaddr*>(&from);
        const outcome first = capture_into(buf, [&] { return ::recvfrom(rx, buf, sizeof buf, 0, from_addr, &len); });
        sender.join();
        const long from_sender = len == sizeof from && ntohs(from.sin_port) == tx_port;
        // A datagram longer than the buffer: cut, and MSG_TRUNC tells its length.
        outcome cut = capture([&] { return ::recvfrom(rx, buf, 4, MSG_TRUNC, nullptr, nullptr); });
        cut.data.assign(buf, 4);
        ::close(rx);
        return outcomes{first, returned(from_sender), cut};
      },
      outcomes{returned(8, "datagram"), returned(1), returned(9, "trun")});
}

TEST(HookSocketsTest, ARecvmsgOnAFiberReceivesADescriptorSentWhileItWasParkedAndTheDescriptorWorks) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        std::atomic<bool> done{false};
        companion peer([&] {
          int p[2];
          EXPECT_EQ(::pipe(p), 0);
          await_parked();  // in recvmsg
          char byte = 'x';
          iovec iov{&byte, 1};
          alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
          msghdr m{};
          m.msg_iov = &iov;
          m.msg_iovlen = 1;
          m.msg_control = control;
          m.msg_controllen = sizeof control;
          cmsghdr* cm = CMSG_FIRSTHDR(&m);
          cm->cmsg_level = SOL_SOCKET;
          cm->cmsg_type = SCM_RIGHTS;
          cm->cmsg_len = CMSG_LEN(sizeof(int));
          std::memcpy(CMSG_DATA(cm), &p[0], sizeof(int));
          (void)::sendmsg(sv[1], &m, 0);
          ::close(p[0]);
          await_parked_or(done);  // in the read of the descriptor it received
          (void)::write(p[1], "through the pipe", 16);
          scribble_errno();
          ::close(p[1]);
        });
        char byte = 0;
        iovec iov{&byte, 1};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
        msghdr m{};
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = control;
        m.msg_controllen = sizeof control;
        outcome got = capture([&] { return ::recvmsg(sv[0], &m, 0); });
        if (got.result == 1) got.data.assign(1, byte);
        int passed = -1;
        const cmsghdr* cm = CMSG_FIRSTHDR(&m);
        if (cm != nullptr && cm->cmsg_type == SCM_RIGHTS) std::memcpy(&passed, CMSG_DATA(cm), sizeof(int));
        char buf[32];
        // A descriptor the hook did not see made: probed on first use.
        const outcome through = capture_into(buf, [&] { return ::read(passed, buf, sizeof buf); });
        done = true;
        peer.join();
        close_all({passed, sv[0], sv[1]});
        return outcomes{got, returned(passed >= 0), through};
      },
      outcomes{returned(1, "x"), returned(1), returned(16, "through the pipe")});
}

// ---- send, sendto, sendmsg, write, writev: a blocking write on a stream writes everything ----

// The sending calls, each asked to send all of `data`.
struct send_call {
  const char* name;
  std::function<ssize_t(int fd, const std::string& data)> call;
};

// Three pieces of `data`, for the vectored calls.
std::vector<iovec> in_three(const std::string& data) {
  char* p = const_cast<char*>(data.data());
  const std::size_t third = data.size() / 3;
  return {{p, third}, {p + third, third}, {p + 2 * third, data.size() - 2 * third}};
}

const send_call send_calls[] = {
    {"Write", [](int fd, const std::string& d) { return ::write(fd, d.data(), d.size()); }},
    {"Send", [](int fd, const std::string& d) { return ::send(fd, d.data(), d.size(), MSG_NOSIGNAL); }},
    {"Sendto", [](int fd, const std::string& d) { return ::sendto(fd, d.data(), d.size(), 0, nullptr, 0); }},
    {"Sendmsg",
     [](int fd, const std::string& d) {
       std::vector<iovec> iov = in_three(d);
       msghdr m{};
       m.msg_iov = iov.data();
       m.msg_iovlen = iov.size();
       return ::sendmsg(fd, &m, 0);
     }},
    {"Writev",
     [](int fd, const std::string& d) {
       const std::vector<iovec> iov = in_three(d);
       return ::writev(fd, iov.data(), static_cast<int>(iov.size()));
     }},
};

void PrintTo(const send_call& c, std::ostream* os) { *os << c.name; }

enum class transport { unix_stream, tcp };

// small_buffers(writer, reader): TCP's buffers grow to megabytes on
// loopback; small ones make a large write partial even in the sanitizer
// builds' smaller transfers.
void small_buffers(int writer, int reader) {
  const int size = 16 * 1024;
  EXPECT_EQ(::setsockopt(writer, SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
  EXPECT_EQ(::setsockopt(reader, SOL_SOCKET, SO_RCVBUF, &size, sizeof size), 0);
}

// connected_pair(t): two connected stream sockets.
std::pair<int, int> connected_pair(transport t) {
  if (t == transport::unix_stream) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    return {sv[0], sv[1]};
  }
  std::uint16_t port = 0;
  const int listener = tcp_listener(&port);
  const int c = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_EQ(connect_loopback(c, port), 0);
  const int a = ::accept(listener, nullptr, nullptr);
  ::close(listener);
  small_buffers(c, a);
  return {c, a};
}

class HookSocketsSendAllTest : public testing::TestWithParam<std::tuple<send_call, transport>> {};

TEST_P(HookSocketsSendAllTest, ALargeSendOnAFiberReturnsOnceASlowReaderOnTheSameWorkerHasTakenAllOfIt) {
  const send_call& c = std::get<0>(GetParam());
  const transport t = std::get<1>(GetParam());
  expect_on_both(
      [&] {
        const auto [writer, reader] = connected_pair(t);
        const std::string data = pattern(large_transfer, 3);
        std::string got;
        companion slow([&] { got = read_slowly(reader, data.size()); });
        const outcome sent = capture([&] { return c.call(writer, data); });
        ::shutdown(writer, SHUT_WR);  // a short write ends the reader too
        slow.join();
        close_all({writer, reader});
        return outcomes{sent, returned(got == data)};
      },
      outcomes{returned(static_cast<long>(large_transfer)), returned(1)});
}

INSTANTIATE_TEST_SUITE_P(
    Calls, HookSocketsSendAllTest,
    testing::Combine(testing::ValuesIn(send_calls), testing::Values(transport::unix_stream, transport::tcp)),
    [](const testing::TestParamInfo<std::tuple<send_call, transport>>& info) {
      return std::string(std::get<0>(info.param).name) +
             (std::get<1>(info.param) == transport::tcp ? "OverTcp" : "OverUnix");
    });

// The peer goes away with bytes unread: the kernel resets the connection
// (sk_err), and a send blocked at that moment reports ECONNRESET (a send
// begun after it says EPIPE). The next recv sees the end of the stream.
TEST(HookSocketsTest, ASendParkedOnAFullBufferFailsWithEconnresetWhenThePeerClosesWithoutReading) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        (void)fill_send_buffer(sv[0]);
        companion peer([&] {
          await_parked();
          ::close(sv[1]);
          scribble_errno();
        });
        const std::string data(1000, 'x');
        const outcome sent = capture([&] { return ::send(sv[0], data.data(), data.size(), MSG_NOSIGNAL); });
        peer.join();
        char buf[16];
        const outcome after = capture_into(buf, [&] { return ::recv(sv[0], buf, sizeof buf, 0); });
        ::close(sv[0]);
        return outcomes{sent, after};
      },
      outcomes{failed(ECONNRESET), returned(0)});
}

TEST(HookSocketsTest, ASendToAPeerThatHasGoneFailsWithEpipe) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        ::close(sv[1]);
        const outcome sent = capture([&] { return ::send(sv[0], "x", 1, MSG_NOSIGNAL); });
        ::close(sv[0]);
        return outcomes{sent};
      },
      outcomes{failed(EPIPE)});
}

// A socket accepted on a plain thread from a listener the hook never saw
// made (an inherited one, as with systemd's socket activation) is still a
// byte stream: a fiber's blocking write on it writes everything.
TEST(HookSocketsTest, ASocketAcceptedOnAPlainThreadFromAListenerMadeBehindTheHooksBackWritesEverythingOnAFiber) {
  expect_on_both(
      [] {
        const int listener = static_cast<int>(::syscall(SYS_socket, AF_INET, SOCK_STREAM, 0));
        const std::uint16_t port = bind_loopback(listener);
        EXPECT_EQ(::listen(listener, 16), 0);
        const int c = ::socket(AF_INET, SOCK_STREAM, 0);
        EXPECT_EQ(connect_loopback(c, port), 0);
        int a = -1;
        std::thread([&] { a = ::accept(listener, nullptr, nullptr); }).join();  // a connection is queued
        small_buffers(a, c);
        const std::string data = pattern(large_transfer, 5);
        std::string got;
        companion slow([&] { got = read_slowly(c, data.size()); });
        const outcome sent = capture([&] { return ::write(a, data.data(), data.size()); });
        ::shutdown(a, SHUT_WR);  // a short write ends the reader too
        slow.join();
        close_all({a, c, listener});
        return outcomes{sent, returned(got == data)};
      },
      outcomes{returned(static_cast<long>(large_transfer)), returned(1)});
}

// ---- SO_RCVTIMEO, SO_SNDTIMEO ----

TEST(HookSocketsTest, ReadsOnASocketWithSoRcvtimeoFailWithEagainOnceTheTimeoutHasPassed) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        const timeval tv = as_timeval(short_timeout);
        EXPECT_EQ(::setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
        char buf[16];
        outcomes r;
        const std::function<ssize_t()> reads[] = {
            [&] { return ::recv(sv[0], buf, sizeof buf, 0); },
            [&] { return ::read(sv[0], buf, sizeof buf); },
            [&] { return ::recvfrom(sv[0], buf, sizeof buf, MSG_WAITALL, nullptr, nullptr); },
            [&] {
              iovec iov{buf, sizeof buf};
              return ::readv(sv[0], &iov, 1);
            },
        };
        for (const auto& call : reads) {
          const auto start = std::chrono::steady_clock::now();
          r.push_back(capture(call));
          // The hook's deadline is on the steady clock; the kernel's is in
          // jiffies and may end up to one early, so only a fiber is held to it.
          if (on_fiber()) {
            EXPECT_GE(elapsed_since(start), short_timeout);
          }
        }
        close_all({sv[0], sv[1]});
        return r;
      },
      outcomes{failed(EAGAIN), failed(EAGAIN), failed(EAGAIN), failed(EAGAIN)});
}

TEST(HookSocketsTest, ASendWithSoSndtimeoOnABufferThatStaysFullFailsWithEagain) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        (void)fill_send_buffer(sv[0]);
        const timeval tv = as_timeval(short_timeout);
        EXPECT_EQ(::setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
        const outcome sent = capture([&] { return ::send(sv[0], "x", 1, 0); });
        close_all({sv[0], sv[1]});
        return outcomes{sent};
      },
      outcomes{failed(EAGAIN)});
}

TEST(HookSocketsTest, ALargeSendWithSoSndtimeoToAPeerThatNeverReadsReturnsWhatItSentBeforeTheTimeout) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        const timeval tv = as_timeval(short_timeout);
        EXPECT_EQ(::setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
        const std::string data = pattern(large_transfer);
        const outcome sent = capture([&] { return ::send(sv[0], data.data(), data.size(), 0); });
        close_all({sv[0], sv[1]});
        // Partial: some, not all (how much is the buffer's business).
        const bool partial = sent.result > 0 && sent.result < static_cast<long>(data.size());
        return outcomes{outcome{partial ? 1 : sent.result, sent.error, {}}};
      },
      outcomes{returned(1)});
}

// ---- A plain thread's calls on a socket a fiber made ----

// A socket made on a fiber is non-blocking underneath; a plain thread's
// recv on it that has to wait waits in the hook's poll(2) and must still
// leave errno as it found it, as the kernel's blocking recv does.
TEST(HookSocketsTest, APlainThreadsRecvThatWaitsOnASocketMadeOnAFiberLeavesErrnoAlone) {
  int sv[2] = {-1, -1};
  on_a_fiber([&] { return ::socketpair(AF_UNIX, SOCK_STREAM, 0, sv); });
  const outcomes thread_result = on_a_thread([&] {
    companion peer([&] {
      await_parked();  // the thread waits (in the hook's poll)
      (void)::send(sv[1], "hello", 5, 0);
    });
    char buf[16];
    const outcome got = capture_into(buf, [&] { return ::recv(sv[0], buf, sizeof buf, 0); });
    peer.join();
    return outcomes{got, returned(nonblocking(sv[0]))};
  });
  EXPECT_EQ(thread_result, (outcomes{returned(5, "hello"), returned(0)}));
  close_all({sv[0], sv[1]});
}

// ---- Descriptors made behind the hook's back ----

TEST(HookSocketsTest, ASocketpairMadeBehindTheHooksBackIsProbedOnFirstUseAndARecvOnItParks) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, sv), 0);
        companion peer([&] {
          await_parked();
          (void)::send(sv[1], "probed", 6, 0);
          scribble_errno();
        });
        char buf[16];
        const outcome got = capture_into(buf, [&] { return ::recv(sv[0], buf, sizeof buf, 0); });
        peer.join();
        const long flags = nonblocking(sv[0]);
        close_all({sv[0], sv[1]});
        return outcomes{got, returned(flags)};
      },
      outcomes{returned(6, "probed"), returned(0)});
}

TEST(HookSocketsTest, ASocketpairMadeNonBlockingBehindTheHooksBackFailsWithEagain) {
  expect_on_both(
      [] {
        int sv[2];
        EXPECT_EQ(::syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        std::atomic<bool> done{false};
        companion rescuer([&] {
          await_parked_or(done);
          if (!done.load()) (void)::send(sv[1], "parked", 6, 0);
        });
        char buf[16];
        const outcome got = capture_into(buf, [&] { return ::recv(sv[0], buf, sizeof buf, 0); });
        done = true;
        rescuer.join();
        const long flags = nonblocking(sv[0]);
        close_all({sv[0], sv[1]});
        return outcomes{got, returned(flags)};
      },
      outcomes{failed(EAGAIN), returned(1)});
}

}  // namespace
