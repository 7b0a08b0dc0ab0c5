// Fiber stacks; the layout, the guard policy and the pooling are explained
// in stack.h.
#include "fiber/detail/stack.h"

#include "fiber/detail/sanitizer.h"
#include "fiber/lock_holder.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <pthread.h>
#include <system_error>
#include <vector>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define SPINDLE_HAVE_VALGRIND 1
#else
#define SPINDLE_HAVE_VALGRIND 0
#endif

namespace spindle::detail {
namespace {

// Linux 6.13's MADV_GUARD_INSTALL; older headers lack the name.
constexpr int madv_guard_install = 102;

// A released stack stays warm (its pages kept) while the process-wide pool
// of its size holds fewer than this many warm stacks: enough to absorb
// bursts of thousands of short fibers without a syscall and a page fault
// per fiber (measured: with 256, batches of 1000 spawns cost 3 us a fiber
// instead of a few hundred ns), while a typical warm stack holds one or two
// pages (4096 of them: 16-32 MiB). Past it, the pages go back to the kernel.
constexpr std::size_t max_warm_per_size = 4096;

// Each thread keeps a few stacks of the last size it released, so that a
// spawn+join loop never touches the shared pool's lock.
constexpr std::size_t thread_cache_size = 16;

constexpr std::uint64_t canary_word = 0x5350494e444c4521ull;  // "SPINDLE!"

std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

std::size_t read_max_map_count() noexcept {
  std::size_t value = 65530;  // the kernel's default
  if (std::FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
    unsigned long v = 0;
    if (std::fscanf(f, "%lu", &v) == 1 && v > 0) value = v;
    std::fclose(f);
  }
  return value;
}

guard_kind probe_guard() noexcept {
  const std::size_t page = page_size();
  void* p = ::mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return guard_kind::mprotect_guard;
  const bool ok = ::madvise(p, page, madv_guard_install) == 0;
  ::munmap(p, 2 * page);
  return ok ? guard_kind::madvise_guard : guard_kind::mprotect_guard;
}

struct size_pool {
  std::size_t mapping_size;
  std::vector<stack> warm;  // pages kept; LIFO so the hottest is reused first
  std::vector<stack> cold;  // pages returned to the kernel
};

struct global_pool {
  std::mutex mu;
  std::vector<size_pool> pools;  // few distinct sizes: a linear scan is fine
  guard_kind preferred = probe_guard();
  // Half of the VMAs, two per mprotect-guarded stack.
  std::size_t mprotect_budget = read_max_map_count() / 4;
  std::atomic<std::size_t> mprotect_in_use{0};
  std::atomic<std::size_t> mapped{0};
  // Stacks handed out minus stacks released, folded in from each thread's
  // cache (thread_cache::in_use_delta) when the cache flushes.
  std::atomic<long> in_use{0};
  std::atomic<std::size_t> abandoned{0};

  size_pool& pool_for(std::size_t mapping_size) {
    for (auto& p : pools) {
      if (p.mapping_size == mapping_size) return p;
    }
    pools.push_back(size_pool{mapping_size, {}, {}});
    return pools.back();
  }
};

global_pool& pool() {
  static global_pool* p = new global_pool;  // never destroyed: used at exit
  return *p;
}

void write_canary(const stack& s) noexcept {
  auto* words = reinterpret_cast<std::uint64_t*>(s.limit());
  for (std::size_t i = 0; i < canary_size / sizeof(std::uint64_t); ++i) {
    words[i] = canary_word;
  }
}

void register_with_valgrind(stack& s) noexcept {
#if SPINDLE_HAVE_VALGRIND
  s.valgrind_id = VALGRIND_STACK_REGISTER(s.limit(), s.top());
#else
  (void)s;
#endif
}

// Every stack mapped and not unmapped, for inspectors (mapped_stacks()) and
// gdb (docs/operability.md): stacks are never unmapped in normal operation,
// so the list only grows.
os_mutex g_stacks_mu;
}  // namespace
// Not in the anonymous namespace, so that gdb finds it by name.
std::vector<stack>* g_stack_list SPINDLE_GUARDED_BY(g_stacks_mu) = nullptr;
namespace {

void record_mapping(const stack& s) noexcept {
  lock_holder lock(g_stacks_mu);
  try {
    if (g_stack_list == nullptr) g_stack_list = new std::vector<stack>;  // never freed: used at exit
    g_stack_list->push_back(s);
  } catch (...) {
    // Out of memory for the list: the stack works, inspectors miss it.
  }
}

void forget_mapping(const stack& s) noexcept {
  lock_holder lock(g_stacks_mu);
  if (g_stack_list == nullptr) return;
  for (auto it = g_stack_list->begin(); it != g_stack_list->end(); ++it) {
    if (it->base == s.base) {
      *it = g_stack_list->back();
      g_stack_list->pop_back();
      return;
    }
  }
}

// Maps a fresh stack of `mapping_size` bytes (guard included).
stack map_stack(std::size_t mapping_size) {
  global_pool& g = pool();
  const std::size_t page = page_size();
  void* p = ::mmap(nullptr, mapping_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    throw std::system_error(errno, std::generic_category(),
                            "spindle: cannot map a fiber stack");
  }
  stack s;
  s.base = static_cast<char*>(p);
  s.mapping_size = mapping_size;
  // Without this, transparent huge pages can commit 2 MiB at a stack's
  // first touch.
  ::madvise(p, mapping_size, MADV_NOHUGEPAGE);

  guard_kind kind = g.preferred;
  if (kind == guard_kind::madvise_guard) {
    if (::madvise(p, page, madv_guard_install) == 0) {
      s.guard = guard_kind::madvise_guard;
      s.guard_size = page;
    } else {
      kind = guard_kind::mprotect_guard;
    }
  }
  if (kind == guard_kind::mprotect_guard) {
    // Reserve a place in the budget first; give it back if mprotect fails.
    if (g.mprotect_in_use.fetch_add(1, std::memory_order_relaxed) < g.mprotect_budget &&
        ::mprotect(p, page, PROT_NONE) == 0) {
      s.guard = guard_kind::mprotect_guard;
      s.guard_size = page;
    } else {
      g.mprotect_in_use.fetch_sub(1, std::memory_order_relaxed);
      kind = guard_kind::canary;
    }
  }
  if (kind == guard_kind::canary) {
    s.guard = guard_kind::canary;
    s.guard_size = 0;
    write_canary(s);
  }
  register_with_valgrind(s);
  g.mapped.fetch_add(1, std::memory_order_relaxed);
  record_mapping(s);
  return s;
}

// Returns a stack's memory to the kernel; only for tests that reset the
// policy (normal operation never unmaps, see stack.h).
void unmap_stack(const stack& s) noexcept {
#if SPINDLE_HAVE_VALGRIND
  if (s.valgrind_id != 0) VALGRIND_STACK_DEREGISTER(s.valgrind_id);
#endif
  if (s.guard == guard_kind::mprotect_guard) {
    pool().mprotect_in_use.fetch_sub(1, std::memory_order_relaxed);
  }
  pool().mapped.fetch_sub(1, std::memory_order_relaxed);
  forget_mapping(s);
  ::munmap(s.base, s.mapping_size);
}

struct thread_cache {
  std::size_t mapping_size = 0;
  std::size_t count = 0;
  // This thread's allocations minus releases, not yet in global_pool::in_use
  // (a shared counter would cost two atomic read-modify-writes per fiber).
  // Written only by this thread (a plain load and store), read by
  // get_stack_stats() through the registry below.
  std::atomic<long> in_use_delta{0};
  bool registered = false;
  thread_cache* next_registered = nullptr;
  stack items[thread_cache_size];

  void add(long d) noexcept {
    if (!registered) [[unlikely]] register_self();
    in_use_delta.store(in_use_delta.load(std::memory_order_relaxed) + d,
                       std::memory_order_relaxed);
  }
  void register_self() noexcept;
  void flush() noexcept;
  ~thread_cache();
};

// Every live thread's cache, so that statistics see stacks that one thread
// allocated and another released.
os_mutex g_registry_mu;
thread_cache* g_registry SPINDLE_GUARDED_BY(g_registry_mu) = nullptr;

void thread_cache::register_self() noexcept {
  lock_holder lock(g_registry_mu);
  next_registered = g_registry;
  g_registry = this;
  registered = true;
}

thread_cache::~thread_cache() {
  flush();
  if (!registered) return;
  lock_holder lock(g_registry_mu);
  for (thread_cache** p = &g_registry; *p != nullptr; p = &(*p)->next_registered) {
    if (*p == this) {
      *p = next_registered;
      break;
    }
  }
}

void release_to_global(const stack& s) noexcept {
  global_pool& g = pool();
  std::lock_guard lock(g.mu);
  size_pool* p = nullptr;
  try {
    p = &g.pool_for(s.mapping_size);
    if (p->warm.size() < max_warm_per_size) {
      p->warm.push_back(s);
      return;
    }
    ::madvise(s.limit(), s.size(), MADV_DONTNEED);
    p->cold.push_back(s);
  } catch (...) {
    // Out of memory for the pool's bookkeeping: leak the address range
    // rather than fail a release (which happens on a switch path).
  }
}

void thread_cache::flush() noexcept {
  for (std::size_t i = 0; i < count; ++i) release_to_global(items[i]);
  count = 0;
  // Fold this thread's count into the global one (under the registry lock,
  // so that get_stack_stats() never sees it in both places or neither).
  lock_holder lock(g_registry_mu);
  pool().in_use.fetch_add(in_use_delta.load(std::memory_order_relaxed), std::memory_order_relaxed);
  in_use_delta.store(0, std::memory_order_relaxed);
}

// fork(): the child has only the forking thread. Hold the pool's locks
// across the fork, so that no other thread is inside them at that moment
// and the child finds them free (the lock order: registry, then pool).
// Held from the prepare handler to the parent and child handlers: the
// analysis follows a lock within one function only.
void lock_for_fork() noexcept SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
  g_registry_mu.lock();
  pool().mu.lock();
}
void unlock_after_fork() noexcept SPINDLE_NO_THREAD_SAFETY_ANALYSIS {
  pool().mu.unlock();
  g_registry_mu.unlock();
}
[[maybe_unused]] const bool fork_handlers_installed = [] {
  ::pthread_atfork(lock_for_fork, unlock_after_fork, unlock_after_fork);
  return true;
}();

// initial-exec: a plain %fs-relative access, no __tls_get_addr per spawn.
thread_local thread_cache t_cache __attribute__((tls_model("initial-exec")));

thread_cache& local_cache() noexcept { return t_cache; }

}  // namespace

stack allocate_stack(std::size_t size) {
  const std::size_t page = page_size();
  if (size < min_stack_size) size = min_stack_size;
  if (size > (std::size_t{1} << 40)) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "spindle: fiber stack size too large");
  }
  size = (size + page - 1) & ~(page - 1);  // page sizes are powers of two
  const std::size_t mapping_size = size + page;  // room for the guard page

  // Fast path: this thread's cache.
  thread_cache& cache = local_cache();
  if (cache.count > 0 && cache.mapping_size == mapping_size) {
    cache.add(1);
    return cache.items[--cache.count];
  }

  // Slower path: the shared pool, warm stacks first.
  global_pool& g = pool();
  cache.add(1);
  {
    std::lock_guard lock(g.mu);
    size_pool& p = g.pool_for(mapping_size);
    if (!p.warm.empty()) {
      stack s = p.warm.back();
      p.warm.pop_back();
      return s;
    }
    if (!p.cold.empty()) {
      stack s = p.cold.back();
      p.cold.pop_back();
      if (s.guard == guard_kind::canary) write_canary(s);  // DONTNEED zeroed it
      return s;
    }
  }

  // Slow path: a new mapping. A canary-only stack is mapped without the
  // extra page but keeps the same mapping size so it pools with the rest.
  try {
    return map_stack(mapping_size);
  } catch (...) {
    cache.add(-1);
    throw;
  }
}

void release_stack(const stack& s) noexcept {
  if (!s) return;
  asan_unpoison(s.limit(), s.size());
  thread_cache& cache = local_cache();
  cache.add(-1);
  if (cache.mapping_size != s.mapping_size) {
    for (std::size_t i = 0; i < cache.count; ++i) release_to_global(cache.items[i]);
    cache.count = 0;
    cache.mapping_size = s.mapping_size;
  }
  if (cache.count < thread_cache_size) {
    cache.items[cache.count++] = s;
    return;
  }
  release_to_global(s);
}

bool canary_intact(const stack& s) noexcept {
  if (s.guard != guard_kind::canary) return true;
  const auto* words = reinterpret_cast<const std::uint64_t*>(s.limit());
  for (std::size_t i = 0; i < canary_size / sizeof(std::uint64_t); ++i) {
    if (words[i] != canary_word) return false;
  }
  return true;
}

guard_kind preferred_guard() noexcept { return pool().preferred; }
std::size_t mprotect_guard_budget() noexcept { return pool().mprotect_budget; }
std::size_t mprotect_guards_in_use() noexcept {
  return pool().mprotect_in_use.load(std::memory_order_relaxed);
}

std::vector<stack> mapped_stacks() {
  lock_holder lock(g_stacks_mu);
  if (g_stack_list == nullptr) return {};
  return *g_stack_list;
}

bool visit_stacks(bool (*fn)(const stack& s, void* arg), void* arg) {
  lock_holder lock(g_stacks_mu);
  if (g_stack_list == nullptr) return true;
  for (const stack& s : *g_stack_list) {
    if (!fn(s, arg)) return false;
  }
  return true;
}

stack_stats get_stack_stats() noexcept {
  long in_use = 0;
  {
    lock_holder lock(g_registry_mu);
    in_use = pool().in_use.load(std::memory_order_relaxed);
    for (thread_cache* c = g_registry; c != nullptr; c = c->next_registered) {
      in_use += c->in_use_delta.load(std::memory_order_relaxed);
    }
  }
  return {pool().mapped.load(std::memory_order_relaxed),
          static_cast<std::size_t>(in_use < 0 ? 0 : in_use),
          pool().abandoned.load(std::memory_order_relaxed)};
}

void count_abandoned_stack() noexcept {
  pool().abandoned.fetch_add(1, std::memory_order_relaxed);
}

namespace {
void drop_pooled_stacks() {
  local_cache().flush();
  global_pool& g = pool();
  std::lock_guard lock(g.mu);
  for (auto& p : g.pools) {
    for (const stack& s : p.warm) unmap_stack(s);
    for (const stack& s : p.cold) unmap_stack(s);
    p.warm.clear();
    p.cold.clear();
  }
}
}  // namespace

void set_guard_policy_for_testing(guard_kind preferred, std::size_t mprotect_budget) {
  drop_pooled_stacks();
  global_pool& g = pool();
  std::lock_guard lock(g.mu);
  g.preferred = preferred;
  g.mprotect_budget = mprotect_budget;
}

void reset_guard_policy_for_testing() {
  drop_pooled_stacks();
  global_pool& g = pool();
  std::lock_guard lock(g.mu);
  g.preferred = probe_guard();
  g.mprotect_budget = read_max_map_count() / 4;
}

}  // namespace spindle::detail
