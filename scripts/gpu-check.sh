#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU: builds the engine and kernels with CUDA (no
# RocksDB/Boost: QUILT_PLATFORM=OFF), runs every kernels and engine test (the device tests among
# them must pass, none may skip), runs the LoRA op benchmark and the engine benchmark (a 7B-shape
# model end to end: decode tokens/s per adapter workload against the HBM roofline, adapter load
# time), and prints one summary table, also written as markdown and CSV with the date, the machine
# and the commit.
#
#   scripts/gpu-check.sh [--build-dir DIR] [OUT]         on the GPU (build dir build-gpu)
#   scripts/gpu-check.sh --sim [--build-dir DIR] [OUT]   the same sequence on the CPU through the
#                                                         CUDA simulator, small shapes (build dir
#                                                         build-sim-check)
#   --platform   also the whole server (needs RocksDB and Boost): its device tests (quilt serve on
#                cuda) join; CI passes it, a GPU machine without RocksDB leaves it out
#
# OUT defaults to bench/results/gpu-check-<UTC date>[-sim]/. Every step runs even when an earlier
# one failed (a step whose inputs are missing fails fast); the exit status is 1 if any step failed.
# The whole run is held to 9.5 minutes on a GPU and 11.5 in simulation (each step gets what is
# left; --platform: 13 and 20).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SIM=0
PLATFORM=OFF
BUILD=""
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --sim) SIM=1 ;;
    --platform) PLATFORM=ON ;;
    --build-dir) BUILD=$2; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "gpu-check: unknown option $1" >&2; exit 2 ;;
    *) OUT=$1 ;;
  esac
  shift
done

DATE=$(date -u +%Y-%m-%d)
if [ "$SIM" = 1 ]; then
  BUILD=${BUILD:-build-sim-check}
  OUT=${OUT:-bench/results/gpu-check-$DATE-sim}
  BUDGET_S=690
  [ "$PLATFORM" = ON ] && BUDGET_S=1200  # the server's build on 2 cores
  CMAKE_MODE=(-DQUILT_CUDA_SIM=ON)
  BENCH_ARGS=(--sim)
  MODE="simulator"
else
  BUILD=${BUILD:-build-gpu}
  OUT=${OUT:-bench/results/gpu-check-$DATE}
  BUDGET_S=570
  [ "$PLATFORM" = ON ] && BUDGET_S=800
  CMAKE_MODE=(-DQUILT_CUDA=ON)
  if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
    CMAKE_MODE+=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
  fi
  BENCH_ARGS=()
  MODE="gpu"
fi
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
JOBS=$(nproc)
START=$(date +%s)
STEPS="$OUT/logs/steps.tsv"
: >"$STEPS"

# Machine and commit, recorded before anything can fail.
if [ "$SIM" = 1 ]; then
  CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
  MACHINE="CUDA simulator on ${CPU:-a CPU} ($JOBS cores)"
else
  MACHINE=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null |
            head -1 | sed 's/, / (driver /; s/$/)/')
  MACHINE=${MACHINE:-"no GPU found by nvidia-smi"}
fi
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT+local changes"

# step NAME TIMEOUT_S COMMAND...: runs COMMAND with its output in logs/NAME.log, bounded by
# TIMEOUT_S and by what is left of the budget; records status and seconds. NOTE (a global) may be
# set by the caller afterwards to add the step's key numbers.
step() {
  local name=$1 cap=$2
  shift 2
  local left=$((BUDGET_S - ($(date +%s) - START)))
  local limit=$((cap < left ? cap : left))
  local t0 status
  t0=$(date +%s)
  if [ "$limit" -lt 5 ]; then
    status="FAIL"
    echo "out of time budget" >"$OUT/logs/$name.log"
  else
    echo "== $name (up to ${limit}s)" >&2
    if timeout --kill-after=10 "$limit" "$@" >"$OUT/logs/$name.log" 2>&1; then
      status="ok"
    else
      local rc=$?
      status="FAIL"
      [ "$rc" = 124 ] && echo "gpu-check: timed out after ${limit}s" >>"$OUT/logs/$name.log"
    fi
  fi
  LAST_STATUS=$status
  LAST_SECONDS=$(($(date +%s) - t0))
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$LAST_SECONDS" "" >>"$STEPS"
}

# note TEXT [STATUS]: sets the last step's notes (and, if given, overrides its status).
note() {
  python3 - "$STEPS" "$1" "${2:-}" <<'EOF'
import sys
path, text, status = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
rows[-1][3] = text.replace("\t", " ")
if status:
    rows[-1][1] = status
open(path, "w").write("".join("\t".join(r) + "\n" for r in rows))
EOF
}

# ---- GPU present (GPU mode only) ----
if [ "$SIM" = 0 ]; then
  step gpu 30 nvidia-smi
  note "$MACHINE"
fi

# ---- configure and build only what the check runs ----
step configure 120 cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DQUILT_PLATFORM=$PLATFORM \
  -DQUILT_TESTS=ON -DQUILT_BENCH=ON "${CMAKE_MODE[@]}"
# Every kernels and engine test binary the configuration has (<folder>_device_tests exist only
# where there are device tests; kernels_device_tests must).
TEST_BINS=()
for bin in kernels_device_tests engine_device_tests platform_device_tests kernels_tests engine_tests; do
  if [ -d "$BUILD/tests/CMakeFiles/$bin.dir" ] || [ "$bin" = kernels_device_tests ]; then
    TEST_BINS+=("$bin")
  fi
done
declare -A BUILT  # target -> ok | FAIL: a stale binary from an earlier build is never run
for target in "${TEST_BINS[@]}" lora_bench engine_bench quilt; do
  step "build $target" 400 cmake --build "$BUILD" -j "$JOBS" --target "$target"
  BUILT[$target]=$LAST_STATUS
done

# skip NAME WHY: records a step that could not run as failed.
skip() {
  printf '%s\t%s\t%s\t%s\n' "$1" FAIL 0 "not run: $2" >>"$STEPS"
}

# ---- tests, counted from GoogleTest's XML ----
# A binary runs as $JOBS GoogleTest shards in parallel. Device tests (*_device_tests: the
# *_cuda_test.cc files) may not skip, on a GPU or in the simulator; host tests may (say, without
# the ../shared/ fixtures), and their skips are counted.
run_shards() {
  local bin=$1 logs=$2 shards=$3 pids=() rc=0
  for ((i = 0; i < shards; i++)); do
    GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$i "$bin" --gtest_output="xml:$logs.$i.xml" \
      >"$logs.$i.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  return $rc
}
export -f run_shards

run_tests() {
  local bin=$1 cap=$2
  if [ "${BUILT[$bin]}" != ok ]; then
    skip "test $bin" "its build failed"
    return
  fi
  rm -f "$OUT/logs/$bin".*.xml
  step "test $bin" "$cap" bash -c 'run_shards "$@"' _ "$BUILD/tests/$bin" "$OUT/logs/$bin" "$JOBS"
  local summary
  summary=$(python3 - "$OUT/logs" "$bin" <<'EOF'
import glob, sys, xml.etree.ElementTree as ET
logs, name = sys.argv[1], sys.argv[2]
device = name.endswith("_device_tests")
total = failed = skipped = 0
failures = []
reports = glob.glob(f"{logs}/{name}.*.xml")
for path in reports:
    try:
        root = ET.parse(path).getroot()
    except Exception:
        continue
    for case in root.iter("testcase"):
        total += 1
        if case.find("failure") is not None:
            failed += 1
            failures.append(case.get("classname", "") + "." + case.get("name", ""))
        elif case.get("result") == "skipped" or case.find("skipped") is not None:
            skipped += 1
if total == 0:
    print("FAIL\tno test report (not built, crashed, or no tests)")
    sys.exit()
ok = failed == 0 and not (device and skipped)
text = f"{total - failed - skipped}/{total} passed, {failed} failed, {skipped} skipped"
if failures:
    text += " (" + ", ".join(failures[:3]) + (", ..." if len(failures) > 3 else "") + ")"
print(("ok" if ok else "FAIL") + "\t" + text)
EOF
)
  local status=${summary%%$'\t'*}
  [ "$LAST_STATUS" = FAIL ] && status=FAIL
  note "${summary#*$'\t'}" "$status"
}
for bin in "${TEST_BINS[@]}"; do
  run_tests "$bin" 420
done
# The quilt binary on the device (CTest's app.* device tests: quilt generate --device cuda).
if [ "${BUILT[quilt]}" = ok ]; then
  step "test quilt generate --device cuda" 300 ctest --test-dir "$BUILD" -L device -R '^app\.' \
    --output-on-failure --no-tests=error
  note "$(grep -Eo '[0-9]+% tests passed.*' "$OUT/logs/test quilt generate --device cuda.log" 2>/dev/null |
          head -1)"
else
  skip "test quilt generate --device cuda" "the quilt build failed"
fi

# ---- benchmark: the LoRA op against cuBLAS baselines and a device copy ----
rm -f "$OUT/lora_bench.csv" "$OUT/lora_bench.md"
if [ "${BUILT[lora_bench]}" = ok ]; then
  step "bench lora" 240 "$BUILD/bench/lora_bench" "${BENCH_ARGS[@]}" --out "$OUT"
else
  skip "bench lora" "its build failed"
fi
if [ -f "$OUT/lora_bench.csv" ]; then
  note "$(python3 - "$OUT/lora_bench.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
max_tokens = max(int(r["tokens"]) for r in rows)
key = [r for r in rows if r["workload"] == "Distinct" and r["rank"] == "16"
       and int(r["tokens"]) == max_tokens]
faster = sum(float(r["sgmv_us"]) < float(r["best_baseline_us"]) for r in rows)
checks = sum(r["check"] == "ok" for r in rows)
parts = []
if key:
    k = key[0]
    parts.append(f"rank 16, {max_tokens} tokens, Distinct: SGMV {k['sgmv_us']} us = "
                 f"{k['sgmv_pct_copy']}% of copy ({k['copy_gbps']} GB/s), BGMV {k['bgmv_us']} us, "
                 f"loop {k['loop_us']} us, bmm {k['bmm_us']} us")
parts.append(f"SGMV faster than both baselines at {faster}/{len(rows)} points")
parts.append(f"checks ok {checks}/{len(rows)}")
print("; ".join(parts))
EOF
)"
fi

# ---- benchmark: the engine end to end (7B shape on a GPU, tiny shapes in simulation) ----
rm -f "$OUT/engine_bench.csv" "$OUT/engine_bench.md"
if [ "${BUILT[engine_bench]}" = ok ]; then
  step "bench engine" 200 "$BUILD/bench/engine_bench" "${BENCH_ARGS[@]}" --out "$OUT"
else
  skip "bench engine" "its build failed"
fi
if [ -f "$OUT/engine_bench.csv" ]; then
  note "$(python3 - "$OUT/engine_bench.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def row(workload, batch=None):
    for r in rows:
        if r["workload"] == workload and (batch is None or int(r["batch"]) == batch):
            return r
    return None
key = int(rows[0]["key_batch"])
parts = []
base, dist, zipf, base1 = row("base", key), row("distinct", key), row("zipf", key), row("base", 1)
if base and dist:
    parts.append(f"distinct/base at batch {key}: {dist['pct_of_base']}% (target >= 90; "
                 f"{dist['decode_tok_s']} vs {base['decode_tok_s']} tokens/s)")
if base1:
    parts.append(f"base batch 1: {base1['pct_roofline']}% of roofline (target >= 75; "
                 f"{base1['decode_tok_s']} tokens/s, copy {base1['copy_gbps']} GB/s)")
if zipf and dist:
    pct = 100 * float(zipf["decode_tok_s"]) / float(dist["decode_tok_s"])
    parts.append(f"{zipf['adapters_registered']} Zipf adapters / {dist['adapters_in_batch']} at "
                 f"batch {key}: {pct:.1f}% (target >= 95)")
h2d, path = row("adapter_load_h2d"), row("adapter_load_engine")
if h2d and path:
    parts.append(f"adapter load {h2d['ms_per_step']} ms host->device (target <= 3), "
                 f"{path['ms_per_step']} ms engine path")
parts.append(f"graph replays {rows[0]['graph_replays']}")
print("; ".join(parts))
EOF
)"
fi

# ---- summary: stdout, summary.md, summary.csv ----
TOTAL=$(($(date +%s) - START))
python3 - "$STEPS" "$OUT" "$DATE" "$MACHINE" "$COMMIT" "$MODE" "$TOTAL" <<'EOF'
import csv, sys
steps, out, date, machine, commit, mode, total = sys.argv[1:8]
rows = [l.rstrip("\n").split("\t") for l in open(steps) if l.strip()]
failed = [r[0] for r in rows if r[1] != "ok"]
head = (f"# gpu-check ({mode})\n\nDate: {date} (UTC). Machine: {machine}. Commit: {commit}. "
        f"Total: {total} s. Result: {'FAIL (' + ', '.join(failed) + ')' if failed else 'ok'}.\n\n")
table = "| step | status | time (s) | key numbers |\n|---|---|---:|---|\n"
table += "".join(f"| {n} | {s} | {t} | {k} |\n" for n, s, t, k in rows)
md = head + table
if mode == "simulator":
    md += ("\nThe simulator proves correctness only: its times are CPU times, not GPU speed.\n")
open(f"{out}/summary.md", "w").write(md)
with open(f"{out}/summary.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["date", "machine", "commit", "mode", "step", "status", "seconds", "notes"])
    for r in rows:
        w.writerow([date, machine, commit, mode] + r)
print(md)
EOF
echo "gpu-check: results in $OUT" >&2
! grep -q $'\tFAIL\t' "$STEPS"
