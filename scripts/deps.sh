#!/usr/bin/env bash
# Installs the Debian 12 packages Quilt builds with, only those missing. Sourced by the other scripts.
set -euo pipefail

QUILT_APT_PACKAGES=(build-essential cmake pkg-config git libopenblas-dev nlohmann-json3-dev
                    libpcre2-dev libutf8proc-dev libgtest-dev googletest libboost-dev librocksdb-dev libssl-dev
                    curl
                    # logs (common/log.*) and metrics (common/metrics.*)
                    libspdlog-dev prometheus-cpp-dev
                    # the quilt CLI's flag parser (header-only)
                    libcli11-dev
                    # the web console's browser test (headless Chromium via chromedriver) and its JS unit test
                    chromium chromium-driver nodejs
                    # scripts/sanitizers.sh and fuzz.sh: clang with its sanitizer and libFuzzer runtimes
                    clang libclang-rt-14-dev)

quilt_install_deps() {
  local missing=()
  for p in "${QUILT_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "quilt: installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get install -y --no-install-recommends "${missing[@]}" ||
    { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${missing[@]}"; }
}

# The Python packages some tests drive the server with (the official openai client, schemathesis),
# from PyPI when pip can reach it. Never fatal: those tests skip (exit 77) with a message without them.
QUILT_PIP_PACKAGES=(openai "schemathesis>=4")
quilt_install_python_tools() {
  command -v python3 >/dev/null 2>&1 || return 0
  python3 -c 'import openai, schemathesis' 2>/dev/null && return 0
  echo "quilt: installing ${QUILT_PIP_PACKAGES[*]} from PyPI (tests skip without them)" >&2
  python3 -m pip install --quiet --disable-pip-version-check "${QUILT_PIP_PACKAGES[@]}" >&2 ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages \
      "${QUILT_PIP_PACKAGES[@]}" >&2 ||
    echo "quilt: pip could not install them; the openai-client and schemathesis tests will skip" >&2
}

# Configures and builds into $1 with the remaining arguments passed to cmake.
quilt_build() {
  local dir=$1
  shift
  cmake -S "$(dirname "${BASH_SOURCE[0]}")/.." -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@"
  cmake --build "$dir" -j "$(nproc)"
}

# True when an NVIDIA GPU is usable here.
quilt_has_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }

# True when the CUDA toolkit's headers (all the simulator needs) are installed.
quilt_has_cuda_toolkit() { [ -f "${CUDA_HOME:-/usr/local/cuda}/include/cuda_runtime.h" ]; }
