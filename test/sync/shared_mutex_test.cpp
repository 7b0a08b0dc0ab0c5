#include "sync/shared_mutex.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"
#include "test_util.h"

namespace {

using namespace std::chrono_literals;
using spindle::fiber;

class SharedMutexTest : public spindle::test::workers_fixture {};

SPINDLE_INSTANTIATE_WORKERS(SharedMutexTest, 1u, 2u, 4u);

TEST_P(SharedMutexTest, ReadersShareWritersExcludeEveryone) {
  spindle::run(opts(), [] {
    spindle::shared_mutex mu;
    std::atomic<int> readers{0};
    std::atomic<int> writers{0};
    std::atomic<bool> broken{false};
    std::atomic<int> most_readers{0};
    long value = 0;  // guarded by mu
    const int rounds = static_cast<int>(spindle::test::scaled(5000));
    std::vector<fiber> fs;
    for (int i = 0; i < 8; ++i) {
      fs.emplace_back([&, i] {
        for (int k = 0; k < rounds; ++k) {
          if ((i + k) % 4 == 0) {
            std::unique_lock lock(mu);
            if (writers.fetch_add(1) != 0 || readers.load() != 0) broken = true;
            ++value;
            spindle::this_fiber::yield();
            writers.fetch_sub(1);
          } else {
            std::shared_lock lock(mu);
            const int r = readers.fetch_add(1) + 1;
            int m = most_readers.load();
            while (r > m && !most_readers.compare_exchange_weak(m, r)) {
            }
            if (writers.load() != 0) broken = true;
            spindle::this_fiber::yield();
            readers.fetch_sub(1);
          }
        }
      });
    }
    for (auto& f : fs) f.join();
    EXPECT_FALSE(broken.load());
    EXPECT_EQ(value, 8L * rounds / 4);
  });
}

TEST(SharedMutexOrderTest, AWaitingWriterHoldsBackNewReaders) {
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [] {
    spindle::shared_mutex mu;
    mu.lock_shared();
    std::atomic<bool> writer_waiting{false};
    std::atomic<bool> writer_done{false};
    fiber writer([&] {
      writer_waiting = true;
      std::unique_lock lock(mu);
      writer_done = true;
    });
    spindle::test::await_parked(mu);  // the writer runs and queues
    ASSERT_TRUE(writer_waiting.load());
    EXPECT_FALSE(mu.try_lock_shared());   // a new reader would starve it
    mu.unlock_shared();
    writer.join();
    EXPECT_TRUE(writer_done.load());
    EXPECT_TRUE(mu.try_lock_shared());
    mu.unlock_shared();
  });
}

TEST_P(SharedMutexTest, TimedLocksTimeOut) {
  spindle::run(opts(), [] {
    spindle::shared_timed_mutex mu;
    mu.lock();
    std::atomic<int> timeouts{0};
    fiber f([&] {
      if (!mu.try_lock_for(2ms)) timeouts.fetch_add(1);
      if (!mu.try_lock_shared_for(2ms)) timeouts.fetch_add(1);
    });
    f.join();
    mu.unlock();
    EXPECT_EQ(timeouts.load(), 2);
    EXPECT_TRUE(mu.try_lock_shared_for(1h));
    mu.unlock_shared();
  });
}

// Destroying a shared_mutex that fibers wait on is a caller bug, as for
// std's; it used to leave them parked for ever, and spindle::run() with
// them.
TEST(SharedMutexDeathTest, DestroyingASharedMutexWithParkedWaitersAbortsNamingIt) {
  EXPECT_DEATH(
      spindle::run(spindle::options{.workers = 2},
                   [] {
                     auto* mu = new spindle::shared_mutex;
                     mu->lock_shared();
                     fiber writer(spindle::fiber_options{.worker = 0, .pinned = true},
                                  [mu] { mu->lock(); });
                     spindle::test::await_worker_free(0);  // the writer waits
                     fiber reader(spindle::fiber_options{.worker = 0, .pinned = true},
                                  [mu] { mu->lock_shared(); });
                     spindle::test::await_worker_free(0);  // the reader waits behind it
                     delete mu;
                     writer.join();
                     reader.join();
                   }),
      "spindle: shared_mutex 0x[0-9a-f]+ destroyed while fibers wait on it \\(1 readers, 1 "
      "writers\\); unlock it and let them leave first");
}

}  // namespace
