#!/usr/bin/env bash
# Builds quilt and runs one completion on the bundled demo model, with and without an adapter.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
quilt_install_deps
quilt_build build -DQUILT_TESTS=OFF
./build/quilt generate --max-tokens 24 "The quick brown fox"
./build/quilt generate --max-tokens 24 --adapter examples/adapters/sql-writer "SELECT name FROM"
