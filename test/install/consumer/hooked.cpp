// Links spindle::hook from an installed Spindle: a fiber's blocking recv()
// on a socket parks it, so that the fiber that sends, on the same single
// worker, gets to run.
#include <hook/hook.h>
#include <spindle.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>

int main() {
  if (!spindle::hook::linked()) {
    std::printf("hooked_consumer: the hook is not linked\n");
    return 1;
  }
  char got = 0;
  spindle::run(spindle::options{.workers = 1}, [&got] {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return;
    spindle::fiber reader([&] { (void)::recv(sv[0], &got, 1, 0); });
    spindle::fiber writer([&] { (void)::send(sv[1], "x", 1, 0); });
    reader.join();
    writer.join();
    ::close(sv[0]);
    ::close(sv[1]);
  });
  std::printf("hooked_consumer: got '%c'\n", got);
  return got == 'x' ? 0 : 1;
}
