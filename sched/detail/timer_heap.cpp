#include "sched/detail/timer_heap.h"

namespace spindle::detail {

bool timer_heap::add(timer_node* n) noexcept {
  lock();
  const bool first = insert(n);
  unlock();
  return first;
}

bool timer_heap::insert(timer_node* n) noexcept {
  n->fired = false;
  // Out of memory here ends the process (noexcept), as it does in libev.
  heap_.push_back(entry{n->when.time_since_epoch().count(), n});
  const auto i = static_cast<std::uint32_t>(heap_.size() - 1);
  n->index = i;
  sift_up(i);
  const bool first = n->index == 0;
  if (first) publish_earliest();
  return first;
}

void timer_heap::remove(timer_node* n) noexcept {
  lock();
  if (n->index != timer_node::npos) {
    const bool was_first = n->index == 0;
    erase_at(n->index);
    if (was_first) publish_earliest();
  }
  unlock();
}

void timer_heap::erase_at(std::uint32_t i) noexcept {
  heap_[i].n->index = timer_node::npos;
  const entry last = heap_.back();
  heap_.pop_back();
  if (i == heap_.size()) return;  // it was the last
  place(i, last);
  // The moved entry may belong above or below its new place.
  if (i > 0 && last.when < heap_[(i - 1) / arity].when) {
    sift_up(i);
  } else {
    sift_down(i);
  }
}

void timer_heap::sift_up(std::uint32_t i) noexcept {
  const entry e = heap_[i];
  while (i > 0) {
    const std::uint32_t parent = (i - 1) / arity;
    if (!(e.when < heap_[parent].when)) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, e);
}

void timer_heap::sift_down(std::uint32_t i) noexcept {
  const auto size = static_cast<std::uint32_t>(heap_.size());
  const entry e = heap_[i];
  for (;;) {
    const std::uint32_t first = arity * i + 1;
    if (first >= size) break;
    std::uint32_t least = first;
    const std::uint32_t end = first + arity < size ? first + arity : size;
    for (std::uint32_t c = first + 1; c < end; ++c) {
      if (heap_[c].when < heap_[least].when) least = c;
    }
    if (!(heap_[least].when < e.when)) break;
    place(i, heap_[least]);
    i = least;
  }
  place(i, e);
}

}  // namespace spindle::detail
