// Spindle's whole public API in one include:
//
//   #include <spindle.h>
//
// Each module's headers can also be included on their own.
#pragma once

#include "fiber/fiber.h"
#include "fiber/fiber_local.h"
#include "fiber/fiber_options.h"
#include "fiber/jthread.h"
#include "fiber/this_fiber.h"
#include "io/address.h"
#include "io/conn.h"
#include "io/error.h"
#include "io/file.h"
#include "io/fs.h"
#include "io/listener.h"
#include "io/signal.h"
#include "io/udp.h"
#include "io/dns.h"
#include "sched/blocking.h"
#include "sched/debug.h"
#include "sched/scheduler.h"
#include "sync/barrier.h"
#include "sync/channel.h"
#include "sync/condition_variable.h"
#include "sync/future.h"
#include "sync/latch.h"
#include "sync/mutex.h"
#include "sync/once.h"
#include "sync/select.h"
#include "sync/semaphore.h"
#include "sync/shared_mutex.h"
#include "sync/wait_group.h"
