// The fixture of the key-value server's tests (samples/kv/server.h): a
// kv::server runs in-process on a Spindle runtime of two workers, on a
// std::thread of its own, on a free port of 127.0.0.1; the tests drive it
// from the test's thread with hiredis's synchronous API (which blocks: it
// must not run on a fiber) and with raw sockets.
//
// No test sleeps to synchronise: a test that needs the server to be in
// some state (a client parked in BLPOP, a client dropped) polls the
// server's counters (kv::stats) until they say so, within a minute.
//
//   TEST_P(KvServerTest, GetAnswersWhatSetStored) {
//     start();
//     redis_client c = client();
//     EXPECT_EQ(c.run({"SET", "k", "v"}), "OK");
//     EXPECT_EQ(c.run({"GET", "k"}), "\"v\"");
//   }
#pragma once

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "samples/kv/server.h"
#include "sched/scheduler.h"

namespace kv::test {

using namespace std::chrono_literals;

// How long a test waits for anything before it fails instead of hanging.
constexpr auto patience = 60s;

// format() writes a hiredis reply as the tests compare it: OK (a status),
// "v" (a string), (nil), (integer) 3, (error) ERR ..., [a, b] (an array).
inline std::string format(const redisReply* r) {
  if (r == nullptr) return "(no reply)";
  switch (r->type) {
    case REDIS_REPLY_STATUS: return std::string(r->str, r->len);
    case REDIS_REPLY_ERROR: return "(error) " + std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER: return "(integer) " + std::to_string(r->integer);
    case REDIS_REPLY_NIL: return "(nil)";
    case REDIS_REPLY_STRING: return "\"" + std::string(r->str, r->len) + "\"";
    case REDIS_REPLY_ARRAY: {
      std::string s = "[";
      for (std::size_t i = 0; i < r->elements; ++i) s += (i > 0 ? ", " : "") + format(r->element[i]);
      return s + "]";
    }
    default: return "(unknown reply type)";
  }
}

// A hiredis connection, for the test's thread.
class redis_client {
 public:
  explicit redis_client(int port) : c_(redisConnect("127.0.0.1", port)) {
    if (c_ == nullptr || c_->err != 0) {
      ADD_FAILURE() << "cannot connect: " << (c_ != nullptr ? c_->errstr : "out of memory");
      return;
    }
    const timeval t{std::chrono::seconds(patience).count(), 0};
    redisSetTimeout(c_.get(), t);
  }

  // run() sends one command and returns its reply, formatted.
  std::string run(const std::vector<std::string>& args) {
    append(args);
    return reply();
  }
  // append() queues a command (pipelining); reply() reads the next reply.
  void append(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    redisAppendCommandArgv(c_.get(), static_cast<int>(args.size()), argv.data(), lens.data());
  }
  std::string reply() {
    void* r = nullptr;
    if (redisGetReply(c_.get(), &r) != REDIS_OK) return "(connection error: " + std::string(c_->errstr) + ")";
    std::string s = format(static_cast<redisReply*>(r));
    freeReplyObject(r);
    return s;
  }

 private:
  struct free_context {
    void operator()(redisContext* c) const { redisFree(c); }
  };
  std::unique_ptr<redisContext, free_context> c_;
};

// A plain blocking TCP connection to the server, for bytes hiredis would
// not send; its reads give up after `patience`.
class raw_client {
 public:
  explicit raw_client(int port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const timeval t{std::chrono::seconds(patience).count(), 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &t, sizeof t);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
  }
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;
  ~raw_client() { close(); }

  // send() writes all of `data`; false if the server closed first.
  bool send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  // read_to_end() is everything the server sends until it closes the
  // connection, then "<closed>" (or "<timeout>" after patience).
  std::string read_to_end() {
    std::string got;
    char buf[65536];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0 || (n < 0 && errno == ECONNRESET)) return got + "<closed>";
      if (n < 0) return got + "<timeout>";
      got.append(buf, static_cast<std::size_t>(n));
    }
  }
  // read_exactly() is the next `n` bytes.
  std::string read_exactly(std::size_t n) {
    std::string got(n, '\0');
    std::size_t have = 0;
    while (have < n) {
      const ssize_t r = ::recv(fd_, got.data() + have, n - have, 0);
      if (r <= 0) break;
      have += static_cast<std::size_t>(r);
    }
    got.resize(have);
    return got;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// The server's options in most tests: a free port of 127.0.0.1.
inline kv::options test_options() {
  kv::options o;
  o.listen = "127.0.0.1:0";
  return o;
}

// The suite runs each test with each way of sharing the key space
// (kv::sharding): SPINDLE_KV_INSTANTIATE(KvServerTest).
class KvServerTest : public testing::TestWithParam<kv::sharding> {
 protected:
  // start() runs a server with options `o` and the test's sharding, until
  // TearDown stops it.
  void start(kv::options o = test_options()) {
    o.sharding = GetParam();
    std::promise<void> ready;
    std::future<void> started = ready.get_future();
    // The promise lives on the server's thread: set_value() may still be
    // returning there when the test's thread has seen it.
    thread_ = std::thread([this, o, ready = std::move(ready)]() mutable {
      spindle::run(spindle::options{.workers = 2}, [&] {
        kv::server s(o);
        server_ = &s;
        port_ = s.local_address().port();
        ready.set_value();
        s.serve();
      });
    });
    started.wait();
  }
  // stop() stops the server and waits for its runtime to end.
  void stop() {
    server_->stop();
    thread_.join();
    server_ = nullptr;
  }
  void TearDown() override {
    if (server_ != nullptr) stop();
  }

  redis_client client() { return redis_client(port_); }
  kv::stats stats() { return server_->stats(); }

  // eventually() polls `done` until it holds, a millisecond apart; false
  // after patience, so that a state never reached fails the test.
  template <class Pred>
  static bool eventually(Pred done) {
    const auto give_up = std::chrono::steady_clock::now() + patience;
    while (!done()) {
      if (std::chrono::steady_clock::now() > give_up) return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }

  kv::server* server_ = nullptr;
  int port_ = 0;
  std::thread thread_;
};

inline std::string sharding_name(const testing::TestParamInfo<kv::sharding>& info) {
  return info.param == kv::sharding::mutex ? "Mutex" : "Owner";
}

#define SPINDLE_KV_INSTANTIATE(suite)                                                      \
  INSTANTIATE_TEST_SUITE_P(Sharding, suite,                                                \
                           testing::Values(kv::sharding::mutex, kv::sharding::owner), \
                           kv::test::sharding_name)

}  // namespace kv::test
