// spindle::fiber_local<T>: a variable with one instance per fiber.
#pragma once

#include <cstddef>
#include <vector>

#include "fiber/detail/control_block.h"

namespace spindle {

// fiber_local<T> is to fibers what `thread_local` is to threads: each fiber
// that touches it gets its own T, value-initialized on first access and
// destroyed when that fiber finishes (after its function has returned, on
// the fiber itself, so destructors may still sleep, lock or join). On a
// plain thread the instance belongs to the thread and is destroyed when the
// thread exits.
//
// Use it instead of `thread_local` in code that runs on fibers: a fiber can
// move between worker threads (see sched/scheduler.h), and a thread_local
// then silently changes under it.
//
//   spindle::fiber_local<std::string> request_id;
//   ...
//   *request_id = "req-42";         // this fiber's copy
//   log(request_id->c_str());
//
// A fiber_local object may be destroyed while fibers still hold values of
// it; those are destroyed with their fibers. get() is for the calling
// fiber only: there is no access to another fiber's instance.
template <class T>
class fiber_local {
 public:
  fiber_local() noexcept : index_(detail::next_fls_index()) {}
  fiber_local(const fiber_local&) = delete;
  fiber_local& operator=(const fiber_local&) = delete;

  // get() is the calling fiber's (or plain thread's) instance, created on
  // first use. Throws what T's constructor throws, or std::bad_alloc.
  T& get() {
    std::vector<detail::fls_slot>& slots = detail::current_fls_slots();
    if (slots.size() <= index_) slots.resize(index_ + 1);
    detail::fls_slot& slot = slots[index_];
    if (slot.value == nullptr) {
      slot.value = new T();
      slot.destroy = [](void* p) { delete static_cast<T*>(p); };
    }
    return *static_cast<T*>(slot.value);
  }

  T& operator*() { return get(); }
  T* operator->() { return &get(); }

 private:
  std::size_t index_;
};

}  // namespace spindle
