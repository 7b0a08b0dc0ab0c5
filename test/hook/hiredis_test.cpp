// hiredis's blocking API (redisConnect, redisCommand) on fibers, with
// spindle::hook, against a real redis-server (test_servers.h). hiredis
// knows nothing of fibers: its connect(), poll(), read() and write() are
// libc's, and the hook parks the calling fiber in them, so that one
// worker holds hundreds of blocked clients at once.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdarg>
#include <memory>
#include <string>
#include <vector>

#include "fiber/this_fiber.h"
#include "hook/hook.h"
#include "sched/scheduler.h"
#include "sync/latch.h"
#include "test_servers.h"
#include "test_util.h"

namespace {

using namespace std::chrono_literals;
using testing::HasSubstr;

struct context_deleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using context_ptr = std::unique_ptr<redisContext, context_deleter>;

struct reply_deleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

// command() is redisCommand() with the reply owned.
reply_ptr command(redisContext* c, const char* format, ...) {
  va_list ap;
  va_start(ap, format);
  void* r = redisvCommand(c, format, ap);
  va_end(ap);
  return reply_ptr(static_cast<redisReply*>(r));
}

// shown() is a reply as text, for comparing and for messages:
// "status:OK", "string:v", "integer:3", "nil", "error:...", "[a,b]",
// "no reply (<the context's error>)".
std::string shown(const redisContext* c, const redisReply* r) {
  if (r == nullptr) return std::string("no reply (") + c->errstr + ")";
  switch (r->type) {
    case REDIS_REPLY_STATUS:
      return "status:" + std::string(r->str, r->len);
    case REDIS_REPLY_STRING:
      return "string:" + std::string(r->str, r->len);
    case REDIS_REPLY_ERROR:
      return "error:" + std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER:
      return "integer:" + std::to_string(r->integer);
    case REDIS_REPLY_NIL:
      return "nil";
    case REDIS_REPLY_ARRAY: {
      std::string s = "[";
      for (std::size_t k = 0; k < r->elements; ++k) s += (k > 0 ? "," : "") + shown(c, r->element[k]);
      return s + "]";
    }
    default:
      return "type " + std::to_string(r->type);
  }
}

// A BLPOP's own timeout, in seconds: only a broken hook reaches it (see
// below), and then the test fails after it instead of hanging.
constexpr int blpop_timeout_s = 10;
// How often the ticker must tick while every client is parked in its
// BLPOP before the values are pushed.
constexpr long ticks_while_parked = 10;

TEST(HiredisTest, TheHookIsLinkedIntoThisProgram) { EXPECT_TRUE(spindle::hook::linked()); }

// 500 fibers on one worker, each with a connection of its own, run
// SET/GET/INCR on keys of their own and then block in BLPOP on a list of
// their own; only once all 500 are parked in it, and the worker has run
// a ticker fiber meanwhile, does another fiber push to the 500 lists.
// Every BLPOP must return its pushed value: impossible unless the 500
// blocking calls were parked at once while the worker ran other fibers.
// Without the hook the first BLPOP would block the worker until its own
// timeout and return nil (the pusher never having run).
TEST(HiredisTest, FiveHundredFibersBlockedInBlpopOnOneWorkerEachGetWhatAnotherFiberPushesLater) {
  const int clients = static_cast<int>(spindle::test::max_concurrent_fibers(500));
  ASSERT_GE(spindle::test::raise_descriptor_limit(), static_cast<rlim_t>(clients + 64));
  spindle::test::redis_server redis;

  std::vector<std::string> failures(clients);  // "" for a client that saw every reply it should
  std::vector<std::string> push_replies(clients);
  long ticks_connected = 0, ticks_parked = 0, ticks_done = 0;
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [&] {
    context_ptr pusher(redisConnect("127.0.0.1", redis.port()));
    ASSERT_TRUE(pusher != nullptr && pusher->err == 0) << (pusher ? pusher->errstr : "out of memory");

    std::atomic<long> ticks{0};
    std::atomic<bool> stop_ticking{false};
    spindle::thread ticker([&] {
      while (!stop_ticking.load()) {
        spindle::this_fiber::sleep_for(1ms);
        ticks.fetch_add(1);
      }
    });

    spindle::latch all_connected(clients);
    std::atomic<int> in_blpop{0};
    std::atomic<int> gave_up{0};  // clients that will not BLPOP, having failed
    std::atomic<int> blpop_returned{0};
    std::vector<spindle::thread> fibers;
    for (int i = 0; i < clients; ++i) {
      fibers.emplace_back([&, i] {
        std::string& failure = failures[i];
        context_ptr c(redisConnect("127.0.0.1", redis.port()));
        // Every client is connected before any sends: 500 connections open at once.
        all_connected.arrive_and_wait();
        if (c == nullptr || c->err != 0) {
          failure = std::string("connect: ") + (c ? c->errstr : "out of memory");
          gave_up.fetch_add(1);
          return;
        }
        auto expect = [&](reply_ptr r, const std::string& wanted, const std::string& what) {
          const std::string got = shown(c.get(), r.get());
          if (got != wanted && failure.empty()) failure = what + ": got " + got + ", wanted " + wanted;
          return got == wanted;
        };
        const std::string id = std::to_string(i);
        bool ok = expect(command(c.get(), "SET key:%d value-%d", i, i), "status:OK", "SET") &&
                  expect(command(c.get(), "GET key:%d", i), "string:value-" + id, "GET");
        for (int n = 1; ok && n <= 3; ++n) {
          ok = expect(command(c.get(), "INCR counter:%d", i), "integer:" + std::to_string(n), "INCR");
        }
        if (!ok || blpop_returned.load() > 0) {
          // The second only without the hook: another BLPOP ran out its
          // time before the push. Fail now rather than wait out this one.
          if (failure.empty()) failure = "did not BLPOP: another client's BLPOP returned before the push";
          gave_up.fetch_add(1);
          return;
        }
        in_blpop.fetch_add(1);
        reply_ptr popped = command(c.get(), "BLPOP list:%d %d", i, blpop_timeout_s);
        blpop_returned.fetch_add(1);
        expect(std::move(popped), "[string:list:" + id + ",string:pushed-" + id + "]", "BLPOP");
      });
    }

    all_connected.wait();
    ticks_connected = ticks.load();
    // Every client is parked in its BLPOP: counted in, and parked in a
    // hooked call, which now can only be the read of the BLPOP's reply
    // (the ticker sleeps on Spindle's timers, not in a hooked call, and
    // this fiber is here). A BLPOP that returned (without the hook, at
    // its timeout) ends the wait too; it fails the test below.
    spindle::test::yield_until([&] {
      const int blocking = in_blpop.load();
      return (blocking + gave_up.load() == clients &&
              spindle::hook::parked_calls() >= static_cast<std::size_t>(blocking)) ||
             blpop_returned.load() > 0;
    });
    ticks_parked = ticks.load();
    spindle::test::yield_until(
        [&] { return ticks.load() >= ticks_parked + ticks_while_parked || blpop_returned.load() > 0; });

    // The pushes, pipelined on the pusher's connection.
    for (int i = 0; i < clients; ++i) redisAppendCommand(pusher.get(), "LPUSH list:%d pushed-%d", i, i);
    for (int i = 0; i < clients; ++i) {
      void* r = nullptr;
      if (redisGetReply(pusher.get(), &r) != REDIS_OK) {
        push_replies[i] = shown(pusher.get(), nullptr);
        break;
      }
      push_replies[i] = shown(pusher.get(), reply_ptr(static_cast<redisReply*>(r)).get());
    }

    for (spindle::thread& f : fibers) f.join();
    ticks_done = ticks.load();
    stop_ticking.store(true);
    ticker.join();
  });

  for (int i = 0; i < clients; ++i) {
    EXPECT_EQ(failures[i], "") << "client " << i;
    EXPECT_EQ(push_replies[i], "integer:1") << "LPUSH list:" << i;
  }
  // The ticker ran while the 500 were in flight (by construction at
  // least ticks_while_parked times, once the test got that far).
  EXPECT_GE(ticks_done - ticks_parked, ticks_while_parked);
  EXPECT_GT(ticks_done - ticks_connected, 0);
}

TEST(HiredisTest, ConnectingToAPortThatRefusesGivesHiredisErrorNotAHang) {
  spindle::test::refused_port closed;
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [&] {
    context_ptr c(redisConnect("127.0.0.1", closed.port()));
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->err, REDIS_ERR_IO);
    EXPECT_THAT(c->errstr, HasSubstr("refused"));
  });
}

// redisSetTimeout() sets SO_RCVTIMEO and SO_SNDTIMEO, which the hook
// keeps for the parked read: a server that accepts the connection (the
// kernel's backlog does) and never answers fails the command with
// hiredis's I/O error, at the timeout.
TEST(HiredisTest, ACommandToAServerThatNeverAnswersFailsWithHiredisErrorAtTheContextsTimeout) {
  // A listener nobody accepts on.
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  constexpr auto timeout = 200ms;
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [&] {
    context_ptr c(redisConnect("127.0.0.1", ntohs(addr.sin_port)));
    ASSERT_TRUE(c != nullptr && c->err == 0) << (c ? c->errstr : "out of memory");
    ASSERT_EQ(redisSetTimeout(c.get(), timeval{0, std::chrono::microseconds(timeout).count()}), REDIS_OK);
    const auto start = std::chrono::steady_clock::now();
    reply_ptr r = command(c.get(), "PING");
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(r, nullptr);
    EXPECT_EQ(c->err, REDIS_ERR_IO);
    EXPECT_THAT(c->errstr, HasSubstr("temporarily unavailable"));
    EXPECT_GE(elapsed, timeout);
  });
  ::close(listener);
}

}  // namespace
