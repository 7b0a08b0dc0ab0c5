#!/usr/bin/env bash
# Compile-only check of Spindle's locking with clang's thread-safety
# analysis: the fields marked SPINDLE_GUARDED_BY (fiber/thread_annotations.h)
# are touched only with their lock held, functions marked SPINDLE_REQUIRES
# are called with it, and locks are released on every path. Every library
# source file and the umbrella header, no code generated: seconds.
# Usage: scripts/check-thread-safety.sh   (needs clang++; scripts/test.sh runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
clang=${CLANGXX:-clang++}
flags=(-std=c++20 -fsyntax-only -I. -Wthread-safety -Wthread-safety-beta -Werror=thread-safety
       -Werror=thread-safety-beta -Wno-unknown-warning-option)
sources=$(find fiber sched sync io hook -name '*.cpp' | sort)
umbrella=$(mktemp --suffix=.cpp)
trap 'rm -f "$umbrella"' EXIT
echo '#include "spindle.h"' >"$umbrella"
# shellcheck disable=SC2086
printf '%s\n' $sources "$umbrella" |
  xargs -P "$(nproc)" -I{} "$clang" "${flags[@]}" {}
echo "thread-safety analysis: clean ($(wc -w <<<"$sources") files and the umbrella header)"
