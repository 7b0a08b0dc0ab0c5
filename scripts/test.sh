#!/usr/bin/env bash
# Installs what is missing, builds Spindle and runs the whole test suite:
#   1. an optimized build (RelWithDebInfo), its tests, and a consumer
#      project built against an installed tree;
#   2. an ASan+UBSan build and its tests;
#   3. a TSan build and its tests (Spindle annotates its fiber switches
#      for TSan; tests that hold many fibers at once hold fewer there).
# First, clang's thread-safety analysis of the locking annotations
# (compile-only, seconds: scripts/check-thread-safety.sh).
# Usage: scripts/test.sh            (from anywhere; builds under build/)
set -euo pipefail
cd "$(dirname "$0")/.."
# clang for the analysis below; the rest for the tests of real libraries, servers and clients
# (the hook's, and the samples': curl, redis-cli, hiredis).
scripts/install-deps.sh clang pkg-config libdw-dev libhiredis-dev redis-server redis-tools libpq-dev postgresql libcurl4-openssl-dev curl python3 gdb

echo "=== clang thread-safety analysis ==="
scripts/check-thread-safety.sh

jobs=$(nproc)
suite() {  # name, cmake options...
  local name=$1
  shift
  echo "=== ${name}: configure and build ==="
  cmake -S . -B "build/${name}" -G Ninja -DSPINDLE_BUILD_BENCH=OFF "$@" >/dev/null
  cmake --build "build/${name}" -j "${jobs}"
  echo "=== ${name}: test ==="
  ctest --test-dir "build/${name}" --output-on-failure -j 1
}

suite release -DCMAKE_BUILD_TYPE=RelWithDebInfo
# halt_on_error keeps a sanitizer report from scrolling by in a passing run.
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
suite asan -DCMAKE_BUILD_TYPE=Debug -DSPINDLE_SANITIZE=address
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
suite tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPINDLE_SANITIZE=thread
echo "=== all test suites passed ==="
