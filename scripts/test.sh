#!/usr/bin/env bash
# Builds everything (CUDA sources too, when nvcc is present) and runs every test. Device tests run
# on the GPU when there is one; otherwise in the CUDA simulator build (kernels/sim), on the CPU.
# Then the sanitizer and fuzzing stages (scripts/sanitizers.sh: ASan+UBSan on every host test, 30 s
# of each fuzz target, TSan on the engine, gateway and platform tests); QUILT_SANITIZERS=0 skips
# them for a quick local run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
quilt_install_deps
quilt_install_python_tools
quilt_build build-test
if quilt_has_gpu; then
  ctest --test-dir build-test --output-on-failure -j "$(nproc)"
else
  ctest --test-dir build-test --output-on-failure -j "$(nproc)" -LE device
fi
if quilt_has_cuda_toolkit; then
  # The same device tests and the GPU check's benchmarks, through the simulator.
  scripts/gpu-check.sh --sim --platform build-sim-check/report
else
  echo "quilt: no CUDA toolkit (/usr/local/cuda): device code neither built nor simulated" >&2
fi
if [ "${QUILT_SANITIZERS:-1}" != 0 ]; then
  scripts/sanitizers.sh
fi
echo "quilt: scripts/test.sh took $SECONDS s" >&2
