// Links spindle::hook from an installed Spindle: a fiber's blocking recv()
// on a socket parks it, so that the rest of the program, on the same
// single worker, goes on and sends it what it waits for. Without the hook
// the recv() would hold the worker, and this program would hang.
// test/install/preload builds it with SPINDLE_PRELOADED: linked with
// libspindle.so alone, and run with LD_PRELOAD=libspindle_hook.so.
#include <spindle.h>
#ifndef SPINDLE_PRELOADED
#include <hook/hook.h>
#endif
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

int main() {
#ifndef SPINDLE_PRELOADED
  if (!spindle::hook::linked()) {
    std::printf("hooked_consumer: the hook is not linked\n");
    return 1;
  }
#endif
  char got = 0;
  spindle::run(spindle::options{.workers = 1, .max_spare_workers = 0}, [&got] {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return;
    std::atomic<bool> started{false};
    spindle::fiber reader([&] {
      started = true;  // then, on this one worker, nothing else runs until recv() parks
      (void)::recv(sv[0], &got, 1, 0);
    });
    while (!started) spindle::this_fiber::yield();
    (void)::send(sv[1], "x", 1, 0);
    reader.join();
    ::close(sv[0]);
    ::close(sv[1]);
  });
  std::printf("hooked_consumer: got '%c'\n", got);
  return got == 'x' ? 0 : 1;
}
