#!/usr/bin/env bash
# Builds the libFuzzer targets (QUILT_FUZZ: clang, ASan+UBSan) in build-fuzz and runs each for
# SECONDS (default 30), two at a time, from its seed corpus in fuzz/corpus/<target>/. New inputs go
# to build-fuzz/corpus/<target>_fuzz/ (not the committed seeds); a crash leaves its input in
# build-fuzz/artifacts/<target>/ and fails the script. Prints execs and coverage per target.
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   env: FUZZ_JOBS (parallel targets, default 2), BUILD_JOBS (default 2), BUILD_DIR (build-fuzz),
#        QUILT_FUZZ_REAL_TOKENIZERS (a real-tokenizers fixture dir for tokenizer_fuzz)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-30}
shift || true
build=${BUILD_DIR:-$here/build-fuzz}
jobs=${FUZZ_JOBS:-2}
all=(safetensors_fuzz adapter_config_fuzz tokenizer_fuzz jinja_fuzz multipart_fuzz http_request_fuzz
     completion_request_fuzz)
targets=("${@:-${all[@]}}")
if [ $# -eq 0 ]; then targets=("${all[@]}"); fi

if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQUILT_FUZZ=ON \
    -DQUILT_TESTS=OFF -DQUILT_BENCH=OFF -DQUILT_CUDA=OFF > "$build.configure.log"
fi
cmake --build "$build" -j"${BUILD_JOBS:-2}" --target "${targets[@]}"

if [ -z "${QUILT_FUZZ_REAL_TOKENIZERS:-}" ] && [ -d "$here/../shared/fixtures/real-tokenizers" ]; then
  export QUILT_FUZZ_REAL_TOKENIZERS="$here/../shared/fixtures/real-tokenizers"
fi
# Leak checks off: the targets' fixtures are intentional process-lifetime statics.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {
  local t=$1 log="$build/logs/$1.log" seeds="$here/fuzz/corpus/${1%_fuzz}"
  mkdir -p "$build/corpus/$t" "$build/artifacts/$t/" "$build/logs"
  local status=0
  "$build/fuzz/$t" "$build/corpus/$t" "$seeds" -max_total_time="$seconds" \
    -max_len=65536 -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t/" > "$log" 2>&1 || status=$?
  local execs cov
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{print $2}' | tail -1 || true)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  printf '%-26s %s  execs %-10s %s  (%s)\n' "$t" "$([ $status -eq 0 ] && echo ok || echo FAIL)" \
    "${execs:-?}" "${cov:-?}" "$log"
  return $status
}

failed=0
pids=()
names=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
  names+=("$t")
  if [ ${#pids[@]} -ge "$jobs" ]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
    names=("${names[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
exit $failed
