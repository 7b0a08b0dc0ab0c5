// Not a test program: the translation unit through which clang's
// thread-safety analysis checks sync/'s headers. It includes every public
// and internal sync/ header and instantiates the class templates, whose
// member bodies the analysis sees only once instantiated. Run from the
// repository root, with sync/'s sources:
//
//   clang++ -std=c++20 -fsyntax-only -Wthread-safety -Werror=thread-safety \
//     -I. sync/*.cpp sync/detail/*.cpp test/sync/thread_safety_check.cpp
//
// Clean means no diagnostics. Note that clang does not check the body of a
// function annotated as taking or releasing a capability (a lock() or
// unlock()), so sync/ keeps such functions thin (shared_mutex.h).
#include "sync/barrier.h"
#include "sync/channel.h"
#include "sync/condition_variable.h"
#include "sync/detail/channel_base.h"
#include "sync/detail/cv_core.h"
#include "fiber/lock_holder.h"
#include "sync/detail/lock_word.h"
#include "sync/detail/parking_lot.h"
#include "sync/detail/semaphore_core.h"
#include "sync/detail/wait_queue.h"
#include "sync/detail/waiter_census.h"
#include "sync/future.h"
#include "sync/latch.h"
#include "sync/mutex.h"
#include "sync/once.h"
#include "sync/select.h"
#include "sync/semaphore.h"
#include "sync/shared_mutex.h"
#include "sync/wait_group.h"

template class spindle::barrier<>;
template class spindle::channel<int>;
template class spindle::recv_case<int>;
template class spindle::send_case<int>;
template class spindle::counting_semaphore<>;
template class spindle::counting_semaphore<spindle::detail::semaphore_core::max_count + 1LL>;
template class spindle::detail::future_state<int>;
template class spindle::detail::lock_holder<spindle::mutex>;
