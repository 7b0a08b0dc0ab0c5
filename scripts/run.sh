#!/usr/bin/env bash
# Installs what is missing, builds Spindle and runs its main job: for now
# the ping_pong sample.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j "$(nproc)" --target ping_pong
exec build/release/samples/ping_pong "$@"
