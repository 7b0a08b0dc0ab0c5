#include "fiber/detail/control_block.h"

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <new>


namespace spindle::detail {

constinit thread_local control_block* tls_current_fiber __attribute__((tls_model("initial-exec"))) =
    nullptr;

namespace {
std::atomic<std::uint64_t> g_next_id{1};
std::atomic<std::size_t> g_next_fls_index{0};

// POSIX's PTHREAD_DESTRUCTOR_ITERATIONS: destructors that keep creating
// fiber-local values are not run forever.
constexpr int fls_destructor_rounds = 4;

void destroy_slots(std::vector<fls_slot>& slots) noexcept {
  for (int round = 0; round < fls_destructor_rounds; ++round) {
    bool any = false;
    // By index, re-reading the size: a destructor may create another
    // fiber-local value, which can grow (reallocate) the vector.
    for (std::size_t i = 0; i < slots.size(); ++i) {
      if (slots[i].value == nullptr) continue;
      void* value = slots[i].value;
      void (*destroy)(void*) = slots[i].destroy;
      slots[i].value = nullptr;
      any = true;
      destroy(value);
    }
    if (!any) break;
  }
  slots.clear();
  slots.shrink_to_fit();
}

// Fiber-local values of a plain thread, destroyed when it exits.
struct thread_fls {
  std::vector<fls_slot> slots;
  ~thread_fls() { destroy_slots(slots); }
};
}  // namespace

control_block::~control_block() { delete stop_; }

extern std::atomic<int> g_inspectors;  // inspect.cpp
void wait_for_inspectors() noexcept;

void control_block::destroy() noexcept {
  // An inspector may have read this block's address from its stack's
  // header and not yet tried for a reference (fiber/detail/inspect.h).
  if (g_inspectors.load(std::memory_order_seq_cst) != 0) [[unlikely]] wait_for_inspectors();
  const stack s = stack_;
  this->~control_block();  // virtual: the fiber_record's destructor
  release_stack(s);
}

const char* wait_reason_name(wait_reason r) noexcept {
  switch (r) {
    case wait_reason::none: return "unknown";
    case wait_reason::mutex: return "mutex";
    case wait_reason::shared_mutex: return "shared_mutex";
    case wait_reason::condition_variable: return "condition_variable";
    case wait_reason::semaphore: return "semaphore";
    case wait_reason::latch: return "latch";
    case wait_reason::barrier: return "barrier";
    case wait_reason::once: return "call_once";
    case wait_reason::future: return "future";
    case wait_reason::wait_group: return "wait_group";
    case wait_reason::channel_send: return "channel send";
    case wait_reason::channel_recv: return "channel recv";
    case wait_reason::select: return "select";
    case wait_reason::join: return "join";
    case wait_reason::sleep: return "sleep";
    case wait_reason::fd_read: return "read";
    case wait_reason::fd_write: return "write";
    case wait_reason::blocking_call: return "blocking call";
    case wait_reason::blocking_queue: return "blocking pool queue";
    case wait_reason::signal: return "signal";
    case wait_reason::fd_close: return "close";
    case wait_reason::count_: break;
  }
  return "unknown";
}

void* record_address(const stack& s, std::size_t size, std::size_t align) noexcept {
  if (align < 64) align = 64;  // own cache line(s) for the control block
  auto top = reinterpret_cast<std::uintptr_t>(s.top()) - stack_header_size;
  return reinterpret_cast<void*>((top - size) & ~(static_cast<std::uintptr_t>(align) - 1));
}

void control_block::destroy_fiber_locals() noexcept {
  if (!fls_.empty()) destroy_slots(fls_);
}

// Ids are handed to threads in blocks, so that spawning does not take an
// atomic read-modify-write on a counter shared by all workers.
constexpr std::uint64_t id_block = 1024;

struct id_range {
  std::uint64_t next = 0;
  std::uint64_t end = 0;
};
constinit thread_local id_range t_ids __attribute__((tls_model("initial-exec")));

std::uint64_t next_fiber_id() noexcept {
  id_range& r = t_ids;
  if (r.next == r.end) [[unlikely]] {
    r.next = g_next_id.fetch_add(id_block, std::memory_order_relaxed);
    r.end = r.next + id_block;
  }
  return r.next++;
}

constinit thread_local std::uint64_t tls_thread_id __attribute__((tls_model("initial-exec"))) = 0;

__attribute__((noinline)) std::uint64_t current_id() noexcept {
  const control_block* cb = tls_current_fiber;
  asm volatile("" : "+r"(cb));  // keep the TLS read here, per call
  if (cb != nullptr) return cb->id_;
  const std::uint64_t id = tls_thread_id;
  return id != 0 ? id : assign_thread_id();
}

std::uint64_t assign_thread_id() noexcept {
  tls_thread_id = next_fiber_id();
  return tls_thread_id;
}

std::size_t next_fls_index() noexcept {
  return g_next_fls_index.fetch_add(1, std::memory_order_relaxed);
}

std::vector<fls_slot>& current_fls_slots() {
  if (control_block* cb = tls_current_fiber) return cb->fls_;
  thread_local thread_fls fls;
  return fls.slots;
}

namespace {
// A tiny formatter for the signal-safe diagnostic.
struct line_buffer {
  char data[512];
  std::size_t len = 0;
  void put(const char* s) noexcept {
    while (*s != '\0' && len < sizeof(data) - 1) data[len++] = *s++;
  }
  void put(const char* s, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n && len < sizeof(data) - 1; ++i) data[len++] = s[i];
  }
  void put_unsigned(unsigned long long v) noexcept {
    char digits[24];
    int n = 0;
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n > 0 && len < sizeof(data) - 1) data[len++] = digits[--n];
  }
};
}  // namespace

void write_fiber_diagnostic(const char* what, const control_block* cb,
                            const char* detail) noexcept {
  line_buffer b;
  b.put("spindle: ");
  b.put(what);
  b.put(" in fiber '");
  if (cb != nullptr && !cb->name_.empty()) {
    b.put(cb->name_.data(), cb->name_.size());
  } else {
    b.put("(unnamed)");
  }
  b.put("' (id ");
  b.put_unsigned(cb != nullptr ? cb->id_ : 0);
  b.put(", stack size ");
  b.put_unsigned(cb != nullptr ? cb->stack_.size() : 0);
  b.put(" bytes)");
  if (detail != nullptr && *detail != '\0') {
    b.put(": ");
    b.put(detail);
  }
  b.put("\n");
  b.data[b.len] = '\0';
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, b.data, b.len);
}

}  // namespace spindle::detail
