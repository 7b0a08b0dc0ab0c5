// The real functions behind the hooks: the next definition of each name
// after the hook's own in the dynamic linker's search order, found with
// dlsym(RTLD_NEXT, ...) on first use. That is libc's, or a sanitizer's
// interceptor sitting in front of libc's (ASan and TSan load first), so
// the chain the program would have had without the hook stays intact.
#pragma once

#include <atomic>
#include <cstddef>

namespace spindle::hook_detail {

// resolve_next() is dlsym(RTLD_NEXT, name), or a function that fails with
// ENOSYS when there is none (a static program), written to stderr once.
void* resolve_next(const char* name) noexcept;

// real_fn<F> holds the next definition of one name, resolved on first
// use. Constant-initialized: safe in a hook called before main().
template <class F>
class real_fn {
 public:
  explicit constexpr real_fn(const char* name) noexcept : name_(name) {}
  F* get() noexcept {
    F* f = fn_.load(std::memory_order_acquire);
    return f != nullptr ? f : resolve();
  }
  // The call: a tail call once resolved, so that a hook that passes a
  // call straight through needs no stack frame of its own.
  // (Not noexcept: a noexcept caller of a function that is not would
  // need a landing pad, and no tail call.)
  template <class... Args>
  auto operator()(Args... args) {
    if (F* f = fn_.load(std::memory_order_acquire)) [[likely]] return f(args...);
    return resolve_and_call(args...);
  }

 private:
  [[gnu::noinline]] F* resolve() noexcept {
    F* f = reinterpret_cast<F*>(resolve_next(name_));
    fn_.store(f, std::memory_order_release);
    return f;
  }
  template <class... Args>
  [[gnu::noinline]] auto resolve_and_call(Args... args) {
    return resolve()(args...);
  }

  const char* const name_;
  std::atomic<F*> fn_{nullptr};
};

// errno through calls the compiler cannot see into: __errno_location() is
// declared const, so within one function the compiler may keep the
// address it returned across a park, after which the fiber may run on
// another thread with another errno.
int get_errno() noexcept;
void set_errno(int e) noexcept;

}  // namespace spindle::hook_detail
