// Clang's thread-safety attributes, for Spindle's own code: a field says
// which lock guards it, a function what it must hold or take, and
// `clang++ -Wthread-safety` checks every access at compile time
// (scripts/test.sh runs that check). Other compilers see nothing. The
// names follow abseil's thread_annotations.h.
//
//   spinlock lock_;
//   wait_list waiters_ SPINDLE_GUARDED_BY(lock_);
//   void wake_one() SPINDLE_REQUIRES(lock_);
//
// Spindle's lock order: a sync/ primitive's own spinlock (and a parking
// bucket's) is taken before sched/'s locks (a worker's inbox, the timer
// heaps, the blocking pool's queue), never the reverse: a waker holds its
// primitive's lock while it hands a fiber to a worker, and no scheduler
// lock is held across a call back into sync/. fiber/ takes no lock.
#pragma once

#if defined(__clang__)
#define SPINDLE_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define SPINDLE_THREAD_ANNOTATION(x)
#endif

// On a type: it is a lock ("mutex" in the diagnostics).
#define SPINDLE_CAPABILITY(name) SPINDLE_THREAD_ANNOTATION(capability(name))
// On an RAII type that holds a lock for its lifetime.
#define SPINDLE_SCOPED_CAPABILITY SPINDLE_THREAD_ANNOTATION(scoped_lockable)
// On a field: read or written only with `lock` held.
#define SPINDLE_GUARDED_BY(lock) SPINDLE_THREAD_ANNOTATION(guarded_by(lock))
// On a pointer field: what it points to is guarded by `lock`.
#define SPINDLE_PT_GUARDED_BY(lock) SPINDLE_THREAD_ANNOTATION(pt_guarded_by(lock))
// On a function: the caller holds these locks / does not hold them.
#define SPINDLE_REQUIRES(...) SPINDLE_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define SPINDLE_REQUIRES_SHARED(...) \
  SPINDLE_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define SPINDLE_EXCLUDES(...) SPINDLE_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// On a function: it takes / releases these locks (none named: *this).
#define SPINDLE_ACQUIRE(...) SPINDLE_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define SPINDLE_ACQUIRE_SHARED(...) \
  SPINDLE_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define SPINDLE_RELEASE(...) SPINDLE_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define SPINDLE_RELEASE_SHARED(...) \
  SPINDLE_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define SPINDLE_RELEASE_GENERIC(...) \
  SPINDLE_THREAD_ANNOTATION(release_generic_capability(__VA_ARGS__))
#define SPINDLE_TRY_ACQUIRE(...) SPINDLE_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define SPINDLE_TRY_ACQUIRE_SHARED(...) \
  SPINDLE_THREAD_ANNOTATION(try_acquire_shared_capability(__VA_ARGS__))
// On a function that returns a reference to a lock.
#define SPINDLE_RETURN_CAPABILITY(x) SPINDLE_THREAD_ANNOTATION(lock_returned(x))
// On a function the analysis cannot follow (a lock handed across a fiber
// switch, say); say why beside it.
#define SPINDLE_NO_THREAD_SAFETY_ANALYSIS SPINDLE_THREAD_ANNOTATION(no_thread_safety_analysis)
