// Looking at fibers from outside; the protocol is explained in inspect.h.
#include "fiber/detail/inspect.h"

#include <atomic>
#include <thread>

namespace spindle::detail {

// Readers between reading a stack header and holding a reference (see
// inspect.h). Not in an anonymous namespace: control_block::destroy()
// reads it.
std::atomic<int> g_inspectors{0};

namespace {

// Takes a reference unless the count already reached zero.
bool try_add_ref(std::atomic<int>& refs) noexcept {
  int n = refs.load(std::memory_order_relaxed);
  while (n > 0) {
    if (refs.compare_exchange_weak(n, n + 1, std::memory_order_acquire,
                                   std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

// A word of a stack that its fiber may be writing at this moment: the
// caller validates the copy afterwards (snapshot_parked()). Hidden from
// the sanitizers, which would rightly call it a race, or (ASan) see the
// poisoned red zones of the fiber's frames.
__attribute__((no_sanitize("address", "thread"), noinline)) std::uint64_t racy_word(
    const std::uint64_t* p) noexcept {
  return *static_cast<const volatile std::uint64_t*>(p);
}

__attribute__((no_sanitize("address", "thread"), noinline)) const void* racy_pointer(
    const void* const* p) noexcept {
  return *static_cast<const void* const volatile*>(p);
}

}  // namespace

void publish_live(control_block* cb) noexcept {
  header_of(cb->stack_)->live.store(cb, std::memory_order_release);
}

void for_each_fiber(void (*fn)(control_block* cb, void* arg), void* arg) {
  const std::vector<stack> stacks = mapped_stacks();
  for (const stack& s : stacks) {
    stack_header* h = header_of(s);
    g_inspectors.fetch_add(1, std::memory_order_seq_cst);
    control_block* cb = h->live.load(std::memory_order_acquire);
    const bool held = cb != nullptr && try_add_ref(cb->refs_for_inspection());
    g_inspectors.fetch_sub(1, std::memory_order_release);
    if (!held) continue;
    fn(cb, arg);
    cb->release();
  }
}

bool all_fibers(bool (*pred)(const control_block* cb, void* arg), void* arg,
                bool* interrupted) {
  struct closure {
    bool (*pred)(const control_block*, void*);
    void* arg;
    // A fiber whose last reference we dropped under the list's lock: its
    // destruction gives its stack back to the pool, whose lock comes before
    // the list's (the pool unmaps stacks holding its own).
    control_block* last = nullptr;
  } c{pred, arg};
  struct destroy_after {
    closure& c;
    ~destroy_after() {
      if (c.last != nullptr) c.last->destroy_dropped();
    }
  };
  const destroy_after later{c};
  const bool all = visit_stacks(
      [](const stack& s, void* p) {
        auto* c = static_cast<closure*>(p);
        if (c->last != nullptr) return false;  // see below: rare, ends the walk early
        stack_header* h = header_of(s);
        g_inspectors.fetch_add(1, std::memory_order_seq_cst);
        control_block* cb = h->live.load(std::memory_order_acquire);
        const bool held = cb != nullptr && try_add_ref(cb->refs_for_inspection());
        g_inspectors.fetch_sub(1, std::memory_order_release);
        if (!held) return true;
        const bool ok = c->pred(cb, c->arg);
        if (cb->drop_ref()) {
          // It finished while we looked: destroyed once the lock is let go.
          // The walk stops here, and says "not all": the caller looks
          // again later (a fiber just finished, so the program is not
          // stuck yet).
          c->last = cb;
          return false;
        }
        return ok;
      },
      &c);
  *interrupted = c.last != nullptr;
  return all;
}

bool stack_snapshot::read(std::uintptr_t addr, std::uint64_t* out) const noexcept {
  if (addr < begin() || addr + sizeof(std::uint64_t) > end() || (addr - rsp) % 8 != 0) {
    return false;
  }
  *out = words[(addr - rsp) / sizeof(std::uint64_t)];
  return true;
}

bool snapshot_parked(const control_block* cb, stack_snapshot* out, std::size_t max_bytes) {
  if (cb->state_.load(std::memory_order_acquire) != fiber_state::parked) return false;
  const std::uint32_t seq = cb->wait_seq_.load(std::memory_order_acquire);
  const auto ctx = reinterpret_cast<std::uintptr_t>(racy_pointer(&cb->ctx_));
  const auto lo = reinterpret_cast<std::uintptr_t>(cb->stack_.limit());
  const auto hi = reinterpret_cast<std::uintptr_t>(cb);  // the stack ends below the record
  // Boost.Context's saved frame (jump_x86_64_sysv_elf_gas.S): MXCSR and the
  // x87 control word, r12, r13, r14, r15, rbx, rbp, then the return address.
  constexpr std::uintptr_t frame = 0x40;
  if (ctx < lo || ctx + frame > hi || ctx % 8 != 0) return false;
  const auto* w = reinterpret_cast<const std::uint64_t*>(ctx);
  out->r12 = racy_word(w + 1);
  out->r13 = racy_word(w + 2);
  out->r14 = racy_word(w + 3);
  out->r15 = racy_word(w + 4);
  out->rbx = racy_word(w + 5);
  out->rbp = racy_word(w + 6);
  out->rip = racy_word(w + 7);
  out->rsp = ctx + frame;
  std::size_t n = (hi - out->rsp) / sizeof(std::uint64_t);
  if (n * sizeof(std::uint64_t) > max_bytes) n = max_bytes / sizeof(std::uint64_t);
  out->words.resize(n);
  const auto* src = reinterpret_cast<const std::uint64_t*>(out->rsp);
  for (std::size_t i = 0; i < n; ++i) out->words[i] = racy_word(src + i);
  std::atomic_thread_fence(std::memory_order_acquire);
  return cb->state_.load(std::memory_order_relaxed) == fiber_state::parked &&
         cb->wait_seq_.load(std::memory_order_relaxed) == seq &&
         reinterpret_cast<std::uintptr_t>(racy_pointer(&cb->ctx_)) == ctx;
}

const void* racy_load_pointer(const void* const* p) noexcept { return racy_pointer(p); }

bool hold_fiber_at(const void* candidate, control_block** out) {
  const auto at = reinterpret_cast<std::uintptr_t>(candidate);
  for (const stack& s : mapped_stacks()) {
    if (at < reinterpret_cast<std::uintptr_t>(s.limit()) ||
        at >= reinterpret_cast<std::uintptr_t>(s.top())) {
      continue;
    }
    stack_header* h = header_of(s);
    g_inspectors.fetch_add(1, std::memory_order_seq_cst);
    control_block* cb = h->live.load(std::memory_order_acquire);
    const bool held = cb == candidate && try_add_ref(cb->refs_for_inspection());
    g_inspectors.fetch_sub(1, std::memory_order_release);
    if (held) *out = cb;
    return held;
  }
  return false;
}

const void* racy_worker(const control_block* cb) noexcept {
  return racy_pointer(reinterpret_cast<const void* const*>(&cb->worker_));
}

void wait_for_inspectors() noexcept {
  while (g_inspectors.load(std::memory_order_acquire) != 0) std::this_thread::yield();
}

}  // namespace spindle::detail
