#include <cstdio>
int main() { std::puts("loadgen: not written yet"); return 1; }
