#!/usr/bin/env bash
# Installs what is missing, builds Spindle and runs its main job: the chat
# server (samples/chat), on port 6667 unless flags say otherwise. Any IRC
# client can connect: irssi -c localhost -p 6667. Flags go to the server:
#   scripts/run.sh --port=7000 --bind=127.0.0.1 --max_clients=5000
#   scripts/run.sh --help   (all of them)
# Ctrl-C (SIGINT) or SIGTERM stops it gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j "$(nproc)" --target chat_server
exec build/release/samples/chat/chat_server "$@"
