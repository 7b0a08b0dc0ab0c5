#include "fiber/detail/stack.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "fiber/detail/control_block.h"
#include "fiber/detail/sanitizer.h"
#include "fiber/fiber.h"
#include "fiber/this_fiber.h"
#include "sched/scheduler.h"

namespace {

using namespace spindle::detail;

std::size_t count_mappings() {
  std::ifstream maps("/proc/self/maps");
  std::size_t lines = 0;
  std::string line;
  while (std::getline(maps, line)) ++lines;
  return lines;
}

// Restores the automatic guard policy when a test ends.
class StackTest : public testing::Test {
 protected:
  void TearDown() override { reset_guard_policy_for_testing(); }
};

TEST_F(StackTest, AStackIsPageAlignedAndWritableFromLimitToTop) {
  stack s = allocate_stack(100'000);
  EXPECT_GE(s.size(), 100'000u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(s.limit()) % 4096, 0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(s.top()) % 4096, 0u);
  const std::size_t skip = s.guard == guard_kind::canary ? canary_size : 0;
  std::memset(s.limit() + skip, 0xab, s.size() - skip);
  EXPECT_TRUE(canary_intact(s));
  release_stack(s);
}

TEST_F(StackTest, SmallRequestsAreRoundedUpToTheMinimum) {
  stack s = allocate_stack(1);
  EXPECT_GE(s.size(), min_stack_size);
  release_stack(s);
}

TEST_F(StackTest, AReleasedStackIsTheNextOneHandedOut) {
  stack a = allocate_stack(default_stack_size);
  char* base = a.base;
  release_stack(a);
  stack b = allocate_stack(default_stack_size);
  EXPECT_EQ(b.base, base);
  release_stack(b);
}

TEST_F(StackTest, StacksOfDifferentSizesAreNotMixedUp) {
  stack small = allocate_stack(32 * 1024);
  release_stack(small);
  stack big = allocate_stack(512 * 1024);
  EXPECT_GE(big.size(), 512u * 1024);
  release_stack(big);
}

TEST_F(StackTest, InUseCountFollowsAllocationsAndReleases) {
  const auto before = get_stack_stats().in_use;
  std::vector<stack> stacks;
  for (int i = 0; i < 40; ++i) stacks.push_back(allocate_stack(default_stack_size));
  EXPECT_EQ(get_stack_stats().in_use, before + 40);
  for (auto& s : stacks) release_stack(s);
  EXPECT_EQ(get_stack_stats().in_use, before);
}

TEST_F(StackTest, TheGuardPageFaultsWhenTouched) {
  for (guard_kind kind : {guard_kind::madvise_guard, guard_kind::mprotect_guard}) {
    if (kind == guard_kind::madvise_guard && preferred_guard() != guard_kind::madvise_guard) {
      continue;  // the kernel has no MADV_GUARD_INSTALL
    }
    set_guard_policy_for_testing(kind, 1000);
    stack s = allocate_stack(default_stack_size);
    ASSERT_EQ(s.guard, kind);
    EXPECT_DEATH(
        {
          volatile char* p = s.limit() - 1;
          *p = 1;
        },
        "");
    release_stack(s);
  }
}

TEST_F(StackTest, MadviseGuardsDoNotAddAMappingPerStack) {
  if (preferred_guard() != guard_kind::madvise_guard) {
    GTEST_SKIP() << "MADV_GUARD_INSTALL is not available on this kernel";
  }
#if SPINDLE_TSAN
  GTEST_SKIP() << "TSan maps shadow memory next to each mapping, so the mapping count "
                  "measures TSan, not the stacks";
#endif
  const std::size_t before = count_mappings();
  std::vector<stack> stacks;
  for (int i = 0; i < 2000; ++i) stacks.push_back(allocate_stack(64 * 1024));
  // mprotect guards would add two mappings per stack (4000 here).
  EXPECT_LT(count_mappings(), before + 100);
  for (auto& s : stacks) release_stack(s);
}

TEST_F(StackTest, PastTheMprotectBudgetStacksFallBackToCanaries) {
  set_guard_policy_for_testing(guard_kind::mprotect_guard, 2);
  stack a = allocate_stack(default_stack_size);
  stack b = allocate_stack(default_stack_size);
  stack c = allocate_stack(default_stack_size);
  EXPECT_EQ(a.guard, guard_kind::mprotect_guard);
  EXPECT_EQ(b.guard, guard_kind::mprotect_guard);
  EXPECT_EQ(c.guard, guard_kind::canary);
  EXPECT_EQ(mprotect_guards_in_use(), 2u);
  EXPECT_TRUE(canary_intact(c));
  const char saved = c.limit()[3];
  c.limit()[3] = static_cast<char>(~saved);
  EXPECT_FALSE(canary_intact(c));
  c.limit()[3] = saved;
  EXPECT_TRUE(canary_intact(c));
  release_stack(a);
  release_stack(b);
  release_stack(c);
}

TEST_F(StackTest, TheDefaultBudgetIsAQuarterOfTheMapCountLimit) {
  std::ifstream f("/proc/sys/vm/max_map_count");
  std::size_t limit = 0;
  if (!(f >> limit)) GTEST_SKIP() << "no /proc/sys/vm/max_map_count";
  EXPECT_EQ(mprotect_guard_budget(), limit / 4);
}

// Recursion the compiler can neither flatten nor drop.
volatile int g_never = 0;
int recurse(int depth) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  if (g_never == 1) return frame[0];
  return recurse(depth + 1) + frame[0];
}

void overflow_in_named_fiber() {
  spindle::run([] {
    spindle::fiber f({.name = "deep", .stack_size = 64 * 1024}, [] { (void)recurse(0); });
    f.join();
  });
}

TEST_F(StackTest, AStackOverflowIsReportedWithTheFibersNameIdAndStackSize) {
  EXPECT_DEATH(overflow_in_named_fiber(),
               "stack overflow in fiber 'deep' \\(id [0-9]+, stack size 65536 bytes\\)");
}

TEST_F(StackTest, AStackOverflowIntoAnMprotectGuardIsReportedToo) {
  set_guard_policy_for_testing(guard_kind::mprotect_guard, 1000);
  EXPECT_DEATH(overflow_in_named_fiber(),
               "stack overflow in fiber 'deep' \\(id [0-9]+, stack size 65536 bytes\\)");
}

TEST_F(StackTest, AnOverwrittenCanaryIsReportedAtTheNextSwitch) {
  set_guard_policy_for_testing(guard_kind::canary, 0);
  EXPECT_DEATH(spindle::run([] {
                 spindle::fiber f({.name = "scribbler"}, [] {
                   // Simulate an overflow that skipped the canary check.
                   tls_current_fiber->stack_.limit()[0] = 0;
                   spindle::this_fiber::yield();
                 });
                 f.join();
               }),
               "stack overflow in fiber 'scribbler'.*canary");
}

TEST_F(StackTest, FibersRunNormallyOnCanaryStacks) {
  set_guard_policy_for_testing(guard_kind::canary, 0);
  std::atomic<int> sum{0};
  spindle::run([&sum] {
    std::vector<spindle::fiber> fibers;
    for (int i = 1; i <= 100; ++i) {
      fibers.emplace_back([&sum, i] {
        spindle::this_fiber::yield();
        sum.fetch_add(i);
      });
    }
    for (auto& f : fibers) f.join();
  });
  EXPECT_EQ(sum.load(), 5050);
}

}  // namespace
