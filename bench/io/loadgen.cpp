// loadgen: closed-loop TCP echo load generator for bench/run_echo_bench.sh.
// Plain C++ on epoll (no Spindle), so it measures every echo server alike.
//
// Opens --conns connections (TCP_NODELAY) and keeps exactly one request of
// --size bytes in flight on each: send it, wait until all of it has been
// echoed back, check the bytes, send the next. After --warmup seconds it
// counts the round trips completed in the next --seconds seconds and records
// their latencies in a log-linear histogram (32 linear buckets per power of
// two, so percentiles are within ~3%), then prints one line:
//   conns=N rps=123456 p50_us=12.3 p99_us=45.6 errors=0
// --threads T splits the connections over T threads, each with its own epoll.
//
// --idle: open the connections, print "idle conns=N ready", then hold them
// without traffic for --seconds seconds or until SIGTERM/SIGINT (for RSS
// measurements of the server).
//
// Connections are opened in batches of 100 (below a listen backlog of 128)
// and each one completes an 8-byte round trip before the next batch opens, so
// the server has accepted (and set up) every connection before measuring.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
  std::string host = "127.0.0.1";
  int port = 0, conns = 100, seconds = 10, warmup = 2, size = 64, threads = 1;
  bool idle = false;
};

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "loadgen: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

// Log-linear histogram of nanoseconds: values below 32 exactly, above that
// 32 buckets per power of two.
struct Histogram {
  std::vector<uint64_t> counts = std::vector<uint64_t>(64 * 32, 0);
  uint64_t total = 0;
  static size_t index(uint64_t v) {
    if (v < 32) return v;
    int e = 63 - __builtin_clzll(v);  // >= 5
    return size_t(e - 4) * 32 + ((v >> (e - 5)) & 31);
  }
  static double midpoint(size_t i) {
    if (i < 32) return double(i);
    int e = int(i / 32) + 4;
    double width = double(uint64_t(1) << (e - 5));
    return double(32 + i % 32) * width + width / 2;
  }
  void add(uint64_t v) { ++counts[index(v)], ++total; }
  void merge(const Histogram& o) {
    for (size_t i = 0; i < counts.size(); ++i) counts[i] += o.counts[i];
    total += o.total;
  }
  double percentile(double p) const {
    uint64_t rank = uint64_t(p * double(total)), seen = 0;
    for (size_t i = 0; i < counts.size(); ++i)
      if ((seen += counts[i]) > rank) return midpoint(i);
    return 0;
  }
};

struct Conn {
  int fd = -1;
  uint64_t counter = 0, started = 0;
  size_t sent = 0, received = 0;
  bool want_write = false;
  std::vector<unsigned char> req, resp;
};

enum Phase { kWarmup, kMeasure, kStop };
std::atomic<int> phase{kWarmup};

// Request `counter`: the counter in the first 8 bytes, then a pattern
// derived from it, so that a stale or misplaced echo does not compare equal.
void fill(Conn& c, uint64_t counter) {
  c.counter = counter;
  for (size_t i = 0; i < c.req.size(); ++i) c.req[i] = (unsigned char)(counter * 131 + i);
  std::memcpy(c.req.data(), &counter, std::min(sizeof counter, c.req.size()));
  c.sent = c.received = 0;
}

// One blocking round trip of 8 bytes (the connection's number) on a freshly
// opened, still blocking connection. Small, so that sending it all before
// reading cannot deadlock whatever --size is.
bool handshake(int fd, uint64_t id) {
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (send(fd, &id, sizeof id, MSG_NOSIGNAL) != sizeof id) return false;
  unsigned char back[sizeof id];
  for (size_t got = 0; got < sizeof back;) {
    ssize_t n = recv(fd, back + got, sizeof back - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += size_t(n);
  }
  return std::memcmp(back, &id, sizeof id) == 0;
}

int connect_one(const sockaddr_in& addr) {
  for (int attempt = 0;; ++attempt) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return fd;
    int err = errno;
    close(fd);
    bool transient = err == ECONNREFUSED || err == EAGAIN || err == EADDRNOTAVAIL ||
                     err == ETIMEDOUT || err == EINTR;
    if (!transient || attempt == 10) {
      errno = err;
      die("connect");
    }
    usleep(useconds_t(20000 * (attempt + 1)));
  }
}

std::vector<Conn> open_all(const Options& o) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(o.port));
  if (inet_pton(AF_INET, o.host.c_str(), &addr.sin_addr) != 1) {
    std::fprintf(stderr, "loadgen: bad --host %s\n", o.host.c_str());
    std::exit(2);
  }
  std::vector<Conn> conns(size_t(o.conns));
  for (size_t first = 0; first < conns.size(); first += 100) {
    size_t last = std::min(conns.size(), first + 100);
    for (size_t i = first; i < last; ++i) {
      conns[i].fd = connect_one(addr);
      conns[i].req.resize(size_t(o.size));
      conns[i].resp.resize(size_t(o.size));
    }
    for (size_t i = first; i < last; ++i) {
      if (!handshake(conns[i].fd, i)) die("first round trip failed or echoed wrong bytes");
      if (fcntl(conns[i].fd, F_SETFL, O_NONBLOCK) < 0) die("fcntl");
    }
  }
  return conns;
}

// Starts the next round trip (sends as much as the socket takes) or
// continues a partial send. Returns false on a connection error.
bool pump_send(Conn& c, int ep) {
  while (c.sent < c.req.size()) {
    ssize_t n = send(c.fd, c.req.data() + c.sent, c.req.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) return false;
    c.sent += size_t(n);
  }
  bool want = c.sent < c.req.size();
  if (want != c.want_write) {
    epoll_event ev{};
    ev.events = want ? EPOLLIN | EPOLLOUT : EPOLLIN;
    ev.data.ptr = &c;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev) < 0) die("epoll_ctl");
    c.want_write = want;
  }
  return true;
}

struct Worker {
  std::vector<Conn*> conns;
  Histogram hist;
  uint64_t errors = 0;

  void fail(Conn& c, int ep) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    c.fd = -1;
    ++errors;
  }

  void run() {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    size_t alive = conns.size();
    for (Conn* c : conns) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = c;
      if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
      fill(*c, 1);
      c->started = now_ns();
      if (!pump_send(*c, ep)) fail(*c, ep), --alive;
    }
    std::vector<epoll_event> events(256);
    while (alive > 0 && phase.load(std::memory_order_relaxed) != kStop) {
      int n = epoll_wait(ep, events.data(), int(events.size()), 100);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) die("epoll_wait");
      for (int i = 0; i < n; ++i) {
        Conn& c = *static_cast<Conn*>(events[i].data.ptr);
        if (c.fd < 0) continue;
        bool ok = true;
        if (events[i].events & EPOLLOUT) ok = pump_send(c, ep);
        if (ok && (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) ok = on_readable(c, ep);
        if (!ok) fail(c, ep), --alive;
      }
    }
    close(ep);
  }

  bool on_readable(Conn& c, int ep) {
    ssize_t n;
    do n = recv(c.fd, c.resp.data() + c.received, c.resp.size() - c.received, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN) return true;
    // Bytes beyond what was sent so far would be an echo of nothing.
    if (n <= 0 || c.received + size_t(n) > c.sent) return false;
    c.received += size_t(n);
    if (c.received < c.resp.size()) return true;
    if (c.resp != c.req) return false;
    uint64_t t = now_ns();
    if (phase.load(std::memory_order_relaxed) == kMeasure) hist.add(t - c.started);
    fill(c, c.counter + 1);
    c.started = t;
    return pump_send(c, ep);
  }
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) std::fprintf(stderr, "loadgen: %s needs a value\n", a.c_str()), std::exit(2);
      return argv[++i];
    };
    if (a == "--host") o.host = value();
    else if (a == "--port") o.port = std::atoi(value());
    else if (a == "--conns") o.conns = std::atoi(value());
    else if (a == "--seconds") o.seconds = std::atoi(value());
    else if (a == "--warmup") o.warmup = std::atoi(value());
    else if (a == "--size") o.size = std::atoi(value());
    else if (a == "--threads") o.threads = std::atoi(value());
    else if (a == "--idle") o.idle = true;
    else {
      std::fprintf(stderr,
                   "usage: loadgen --port P [--host 127.0.0.1] [--conns 100] [--seconds 10]\n"
                   "               [--warmup 2] [--size 64] [--threads 1] [--idle]\n");
      std::exit(2);
    }
  }
  if (o.port <= 0 || o.conns <= 0 || o.size < 8 || o.threads <= 0 || o.seconds < 0 || o.warmup < 0) {
    std::fprintf(stderr, "loadgen: need --port, and --conns/--threads > 0, --size >= 8\n");
    std::exit(2);
  }
  o.threads = std::min(o.threads, o.conns);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  // Block these before starting threads so that --idle can wait for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  if (o.idle) pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::vector<Conn> conns = open_all(o);
  if (o.idle) {
    std::printf("idle conns=%d ready\n", o.conns);
    std::fflush(stdout);
    timespec limit{o.seconds, 0};
    while (sigtimedwait(&stop_signals, nullptr, &limit) < 0 && errno == EINTR) {
    }
    return 0;
  }

  std::vector<Worker> workers(size_t(o.threads));
  for (size_t i = 0; i < conns.size(); ++i) workers[i % workers.size()].conns.push_back(&conns[i]);
  std::vector<std::thread> threads;
  for (Worker& w : workers) threads.emplace_back([&w] { w.run(); });
  std::this_thread::sleep_for(std::chrono::seconds(o.warmup));
  uint64_t t0 = now_ns();
  phase = kMeasure;
  std::this_thread::sleep_for(std::chrono::seconds(o.seconds));
  phase = kStop;
  uint64_t t1 = now_ns();
  for (std::thread& t : threads) t.join();

  Histogram all;
  uint64_t errors = 0;
  for (Worker& w : workers) all.merge(w.hist), errors += w.errors;
  double elapsed = double(t1 - t0) / 1e9;
  std::printf("conns=%d rps=%.0f p50_us=%.1f p99_us=%.1f errors=%llu\n", o.conns,
              elapsed > 0 ? double(all.total) / elapsed : 0.0, all.percentile(0.50) / 1e3,
              all.percentile(0.99) / 1e3, (unsigned long long)errors);
  return errors == 0 ? 0 : 1;
}
