// spindle.h alone gives the whole public API.
#include <spindle.h>

#include <gtest/gtest.h>

namespace {

TEST(UmbrellaHeaderTest, GivesFibersSleepsAndFiberLocalsInOneInclude) {
  int value = 0;
  spindle::run([&] {
    static spindle::fiber_local<int> local;
    spindle::thread t([&] {
      spindle::this_thread::sleep_for(std::chrono::milliseconds(1));
      *local = 7;
      value = *local;
    });
    t.join();
  });
  EXPECT_EQ(value, 7);
}

}  // namespace
