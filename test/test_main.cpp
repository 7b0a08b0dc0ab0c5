// The test runner: GoogleTest's main plus a check after every test that
// no fiber stack is still handed out (every fiber has finished and given
// its stack back), as marl checks its allocator after each test.
#include <gtest/gtest.h>

#include "fiber/detail/stack.h"

namespace {

class stack_leak_check : public testing::EmptyTestEventListener {
  void OnTestEnd(const testing::TestInfo& info) override {
    if (info.result()->Failed()) return;  // a failed test may leave fibers parked
    const auto stats = spindle::detail::get_stack_stats();
    // Fibers a deadlocked run() left parked keep their stacks for ever.
    EXPECT_EQ(stats.in_use, stats.abandoned) << "fiber stacks still in use after " << info.name();
  }
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  // Death tests fork a process that may have worker threads: re-execute
  // the binary instead of forking a multithreaded one.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  testing::UnitTest::GetInstance()->listeners().Append(new stack_leak_check);
  return RUN_ALL_TESTS();
}
