#include "sync/detail/parking_lot.h"

#include <cstdint>

namespace spindle::detail {
namespace {

// Enough buckets that waiters of unrelated primitives rarely share one
// (a wake walks its bucket's list for its key): 64 KiB in all.
constexpr std::size_t bucket_count = 1024;

parking_bucket buckets[bucket_count];

}  // namespace

parking_bucket& parking_bucket_for(const void* key) noexcept {
  // Fibonacci hashing of the address; the low bits are alignment.
  const auto a = reinterpret_cast<std::uintptr_t>(key);
  const std::uint64_t h = (std::uint64_t{a} >> 3) * 0x9E3779B97F4A7C15ull;
  return buckets[h >> (64 - 10)];
}

std::size_t unpark_address(const void* key, std::size_t n) noexcept {
  static_assert(bucket_count == std::size_t{1} << 10);
  parking_bucket& b = parking_bucket_for(key);
  std::size_t woken = 0;
  b.lock.lock();
  for (wait_node* node = b.list.front(); node != nullptr && woken < n;) {
    wait_node* next = node->next;
    if (node->key == key) {
      b.list.remove(node);
      // A failed unpark: it timed out meanwhile, finds itself dequeued and
      // reports the timeout; the wake goes to the next one.
      if (unpark(node->waiter)) ++woken;
    }
    node = next;
  }
  b.lock.unlock();
  return woken;
}

std::size_t parked_count(const void* key) noexcept {
  parking_bucket& b = parking_bucket_for(key);
  std::size_t n = 0;
  b.lock.lock();
  for (const wait_node* node = b.list.front(); node != nullptr; node = node->next) {
    if (node->key == key) ++n;
  }
  b.lock.unlock();
  return n;
}

}  // namespace spindle::detail
