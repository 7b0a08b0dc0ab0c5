# Sourced by bench/run_*.sh: installs what is missing (the peers' packages
# named in $peer_packages too) and builds the optimized benchmark tree in
# build/bench. Leaves the working directory at the repository root.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh ${peer_packages:-}
cmake -S . -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DSPINDLE_BUILD_TESTS=OFF -DSPINDLE_BUILD_SAMPLES=OFF >/dev/null
cmake --build build/bench -j "$(nproc)" >/dev/null

# build_samples TARGET...: the sample programs a script measures, built in
# the same optimized tree (which bench_common.sh configured without them).
build_samples() {
  cmake -S . -B build/bench -DSPINDLE_BUILD_SAMPLES=ON >/dev/null
  cmake --build build/bench --target "$@" >/dev/null
}
