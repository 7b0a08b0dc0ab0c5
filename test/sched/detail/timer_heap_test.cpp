// The per-worker timer heap (sched/detail/timer_heap.h) on its own: nodes
// fire in deadline order, exactly once, and a removed or cancelled node
// never fires late, whatever the mix of operations.
#include "sched/detail/timer_heap.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

namespace {

using spindle::detail::timer_heap;
using spindle::detail::timer_node;
using tp = std::chrono::steady_clock::time_point;

tp at(std::int64_t ns) { return tp(std::chrono::nanoseconds(ns)); }

TEST(TimerHeap, NodesFireInDeadlineOrderAndRemovedOnesNever) {
  std::mt19937 rng(12345);
  for (int round = 0; round < 50; ++round) {
    const int count = 1 + static_cast<int>(rng() % 2000);
    std::vector<std::unique_ptr<timer_node>> nodes;
    timer_heap heap;
    std::vector<bool> in(static_cast<std::size_t>(count), false);
    for (int i = 0; i < count; ++i) {
      auto n = std::make_unique<timer_node>();
      n->when = at(static_cast<std::int64_t>(rng() % 1000));  // many equal deadlines
      const bool first = heap.add(n.get());
      // add() says whether it became the earliest, which earliest() shows.
      if (first) {
        EXPECT_EQ(heap.earliest(), n->when.time_since_epoch().count());
      }
      EXPECT_LE(heap.earliest(), n->when.time_since_epoch().count());
      in[static_cast<std::size_t>(i)] = true;
      nodes.push_back(std::move(n));
      // Now and then take a random node out again (twice is harmless).
      if (rng() % 3 == 0) {
        const std::size_t victim = rng() % nodes.size();
        heap.remove(nodes[victim].get());
        heap.remove(nodes[victim].get());
        in[victim] = false;
      }
    }
    // Cancel some: each fires at once, out of order, and is gone after.
    for (std::size_t i = 0; i < nodes.size(); i += 7) {
      int fired = 0;
      heap.cancel(nodes[i].get(), [&](timer_node* n) {
        EXPECT_EQ(n, nodes[i].get());
        ++fired;
      });
      EXPECT_EQ(fired, in[i] ? 1 : 0);
      EXPECT_EQ(nodes[i]->index, timer_node::npos);
      in[i] = false;
    }
    // Run them in steps of time: each step fires exactly the nodes due,
    // in nondecreasing order, and leaves the earliest of the rest.
    std::vector<int> fired_count(nodes.size(), 0);
    std::int64_t last = -1;
    for (std::int64_t now = 0;; now = std::min<std::int64_t>(1000, now + 1 + static_cast<std::int64_t>(rng() % 50))) {
      heap.run_due(now, [&](timer_node* n) {
        const std::int64_t when = n->when.time_since_epoch().count();
        EXPECT_LE(when, now);
        EXPECT_GE(when, last);
        last = when;
        const auto it = std::find_if(nodes.begin(), nodes.end(), [n](const auto& p) { return p.get() == n; });
        ASSERT_NE(it, nodes.end());
        ++fired_count[static_cast<std::size_t>(it - nodes.begin())];
      });
      EXPECT_GT(heap.earliest(), now);
      if (now == 1000) break;  // every deadline is below it
    }
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      EXPECT_EQ(fired_count[i], in[i] ? 1 : 0) << "node " << i;
      EXPECT_EQ(nodes[i]->index, timer_node::npos);
    }
    EXPECT_EQ(heap.earliest(), timer_heap::none);
  }
}

}  // namespace
