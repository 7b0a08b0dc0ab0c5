// thread_echo: thread-per-connection TCP echo server with blocking sockets,
// the classic design that bench/run_echo_bench.sh compares Spindle with.
//
// The main thread accepts; every connection gets its own detached thread
// that loops recv() into a 4 KiB stack buffer and send()s it all back until
// EOF. The threads are created with pthread attributes (std::thread cannot
// set a stack size) and a 64 KiB stack instead of glibc's default 8 MiB,
// which only changes virtual size: RSS holds the pages actually touched.
// Listens on 127.0.0.1. Usage: thread_echo PORT; prints "listening PORT".
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace {

constexpr size_t kStackSize = 64 * 1024;

// Sends all of buf; false on error.
bool send_all(int fd, const char* buf, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    len -= size_t(n);
  }
  return true;
}

void* serve(void* arg) {
  int fd = int(reinterpret_cast<intptr_t>(arg));
  char buf[4096];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || !send_all(fd, buf, size_t(n))) break;
  }
  close(fd);
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  int port = std::atoi(argv[1]);
  signal(SIGPIPE, SIG_IGN);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (lfd < 0 || bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
      listen(lfd, SOMAXCONN) < 0) {
    std::perror("thread_echo: listen");
    return 1;
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kStackSize);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  std::printf("listening %d\n", port);
  std::fflush(stdout);
  for (;;) {
    int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EINTR && errno != ECONNABORTED) std::perror("accept4");
      if (errno == EMFILE || errno == ENFILE) usleep(10000);
      continue;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_t thread;
    int err = pthread_create(&thread, &attr, serve, reinterpret_cast<void*>(intptr_t(fd)));
    if (err != 0) {
      std::fprintf(stderr, "thread_echo: pthread_create: error %d\n", err);
      close(fd);
    }
  }
}
