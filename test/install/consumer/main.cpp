#include <spindle.h>

#include <cstdio>

int main() {
  int sum = 0;
  spindle::run([&sum] {
    spindle::fiber f([&sum](int n) {
      for (int i = 1; i <= n; ++i) {
        sum += i;
        spindle::this_fiber::yield();
      }
    }, 10);
    f.join();
  });
  std::printf("consumer: sum=%d\n", sum);
  return sum == 55 ? 0 : 1;
}
