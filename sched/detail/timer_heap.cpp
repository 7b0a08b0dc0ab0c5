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
  heap_.push_back(n);
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
  timer_node* gone = heap_[i];
  gone->index = timer_node::npos;
  timer_node* last = heap_.back();
  heap_.pop_back();
  if (last == gone) return;
  place(i, last);
  // The moved node may belong above or below its new place.
  if (i > 0 && last->when < heap_[(i - 1) / 2]->when) {
    sift_up(i);
  } else {
    sift_down(i);
  }
}

void timer_heap::sift_up(std::uint32_t i) noexcept {
  timer_node* n = heap_[i];
  while (i > 0) {
    const std::uint32_t parent = (i - 1) / 2;
    if (!(n->when < heap_[parent]->when)) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, n);
}

void timer_heap::sift_down(std::uint32_t i) noexcept {
  const auto size = static_cast<std::uint32_t>(heap_.size());
  timer_node* n = heap_[i];
  for (;;) {
    std::uint32_t child = 2 * i + 1;
    if (child >= size) break;
    if (child + 1 < size && heap_[child + 1]->when < heap_[child]->when) ++child;
    if (!(heap_[child]->when < n->when)) break;
    place(i, heap_[child]);
    i = child;
  }
  place(i, n);
}

}  // namespace spindle::detail
