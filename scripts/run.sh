#!/usr/bin/env bash
# Builds quilt and runs the server on the bundled demo model (extra arguments go to `quilt serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
quilt_install_deps
quilt_build build -DQUILT_TESTS=OFF
exec ./build/quilt serve "$@"
