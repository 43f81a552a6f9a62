#!/usr/bin/env bash
# Builds everything (CUDA sources too, when nvcc is present) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
quilt_install_deps
quilt_build build-test
ctest --test-dir build-test --output-on-failure -j "$(nproc)"
