// std's names and Spindle's side by side: a file that says `using namespace
// std;` at namespace scope includes <spindle.h> and uses Spindle's
// threading names qualified. It compiles, and the qualified names are
// Spindle's (ported code that keeps a `using namespace std` must not pick
// std's by accident through an overload or an argument's namespace).
#include <spindle.h>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <type_traits>

using namespace std;

namespace {

TEST(UsingNamespaceStdTest, SpindlesQualifiedNamesAreSpindles) {
  int sum = 0;
  spindle::run([&] {
    spindle::mutex m;
    spindle::timed_mutex tm;
    spindle::recursive_mutex rm;
    spindle::shared_mutex sm;
    spindle::condition_variable cv;
    spindle::condition_variable_any cva;
    spindle::counting_semaphore<4> sem(1);
    spindle::latch done(1);
    spindle::barrier<> bar(1);
    spindle::once_flag once;
    spindle::call_once(once, [&] { ++sum; });
    {
      lock_guard lock(m);         // std's lock helpers with Spindle's mutexes
      unique_lock tlock(tm);
      scoped_lock both(rm, sm);
    }
    spindle::promise<int> p;
    spindle::future<int> f = p.get_future();
    spindle::thread t([&] {
      spindle::this_thread::sleep_for(chrono::milliseconds(1));
      p.set_value(2);
      done.count_down();
    });
    sum += f.get();
    done.wait();
    t.join();
    bar.arrive_and_wait();
    sem.acquire();
    auto a = spindle::async(launch::async, [] { return 3; });
    static_assert(is_same_v<decltype(a), spindle::future<int>>);
    sum += a.get();
    auto d = spindle::async(launch::deferred, [] { return 4; });
    sum += d.get();
    spindle::packaged_task<int()> task([] { return 5; });
    spindle::future<int> tf = task.get_future();
    task();
    sum += tf.get();
    static_assert(is_same_v<spindle::thread::id, spindle::fiber::id>);
    EXPECT_NE(spindle::this_thread::get_id(), spindle::thread::id());
    (void)cv;
    (void)cva;
  });
  EXPECT_EQ(sum, 1 + 2 + 3 + 4 + 5);
}

}  // namespace
