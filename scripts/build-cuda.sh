#!/usr/bin/env bash
# Builds the `cuda` variant of damocles-rs's binaries (C2 on an NVIDIA GPU) into
# target/cuda/. Installs the CUDA 11.8 toolkit and g++-11 first (scripts/install-cuda-toolkit.sh).
# The binaries link only libcuda.so.1, which the GPU machine's driver provides; no GPU is
# needed to build. Usage: scripts/build-cuda.sh [--check] [cargo args...]
#   --check   type-check damocles-sealing (the one crate with GPU code; the command lines and
#             the benchmarks only pass the feature on) and compile its CUDA kernels, without
#             linking release binaries (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-cuda-toolkit.sh
# shellcheck source=scripts/cuda-env.sh
. scripts/cuda-env.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/cuda}"
if [ "${1:-}" = "--check" ]; then
  shift
  cargo check -p damocles-sealing --features cuda --lib "$@"
else
  cargo build --release -p damocles-cli -p damocles-bench --features damocles-cli/cuda,damocles-bench/cuda --bins "$@"
  ls -la "$CARGO_TARGET_DIR"/release/damocles-seal-bench
fi
