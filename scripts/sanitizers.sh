#!/usr/bin/env bash
# CI's sanitizer and fuzzing stages (issue 11), each in a build directory of its own (clang, -O1,
# no CUDA, no benchmarks; nothing shared with build-test):
#   asan  build-asan: ASan+UBSan (with libFuzzer's coverage instrumentation, so the fuzz targets
#         come from the same build): the whole host test suite, the quilt binary the platform tests
#         start included.
#   fuzz  every libFuzzer target for FUZZ_SECONDS (default 30) from its committed corpus
#         (scripts/fuzz.sh on build-asan).
#   tsan  build-tsan: TSan: the engine, gateway and platform tests (the concurrent parts).
# A finding fails the stage. Prints each stage's wall time; bench/results/*-ci-sanitizers.md
# records them on the CI machine's size.
# usage: scripts/sanitizers.sh [asan|fuzz|tsan ...]   (default: all three, in that order)
#   env: BUILD_JOBS (default: nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${BUILD_JOBS:-$(nproc)}
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(asan fuzz tsan)

# -O1 -g1: sanitizer reports with file:line at a fraction of -O0's run time and -g's build time.
configure() {
  local dir=$1 sanitize=$2
  shift 2
  [ -f "$dir/CMakeCache.txt" ] && return 0
  CC=clang CXX=clang++ cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
    -DQUILT_SANITIZE="$sanitize" -DQUILT_CUDA=OFF -DQUILT_BENCH=OFF "$@" > "$dir.configure.log" ||
    { cat "$dir.configure.log" >&2; return 1; }
}

# Leaks are findings too (LeakSanitizer runs at every test process's exit).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:check_initialization_order=1:strict_init_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan.supp}

timed() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  echo "quilt: $name took $((SECONDS - start)) s" >&2
}

asan() {
  configure build-asan address -DQUILT_FUZZ=ON
  timed "asan build" cmake --build build-asan -j "$jobs"
  timed "asan tests" ctest --test-dir build-asan --output-on-failure -j "$jobs"
}

fuzz() {
  configure build-asan address -DQUILT_FUZZ=ON
  # fuzz.sh keeps the leak check off: the targets' fixtures are intentional process-lifetime statics.
  timed "fuzz (${FUZZ_SECONDS:-30} s per target)" env -u ASAN_OPTIONS BUILD_DIR="$PWD/build-asan" \
    BUILD_JOBS="$jobs" FUZZ_JOBS="$jobs" scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
}

tsan() {
  configure build-tsan thread
  timed "tsan build" cmake --build build-tsan -j "$jobs" --target engine_tests gateway_tests platform_tests
  # Only those three test binaries are built: the others' tests show up as *_NOT_BUILT.
  timed "tsan tests" ctest --test-dir build-tsan --output-on-failure -j "$jobs" -E '_NOT_BUILT$'
}

for s in "${stages[@]}"; do
  case $s in
    asan | fuzz | tsan) timed "$s stage" "$s" ;;
    *) echo "usage: scripts/sanitizers.sh [asan|fuzz|tsan ...]" >&2; exit 2 ;;
  esac
done
