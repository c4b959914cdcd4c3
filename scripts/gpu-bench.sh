#!/usr/bin/env bash
# Runs on the GPU machine: generates the 2KiB parameters there (the 1.1 GB file cannot be
# carried), then seals sectors with C2 on the GPU and on the CPU, side by side.
# Expects the cuda build at target/cuda/release/damocles-seal-bench. Results go to $OUT.
set -uo pipefail
out=${OUT:-/tmp/gpu-bench-out}
mkdir -p "$out"
{
  date -u +%FT%TZ
  nproc; free -g | head -2
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  lscpu | grep -E 'Model name|^CPU\(s\)'
} 2>&1 | tee "$out/machine.txt"
export FIL_PROOFS_PARAMETER_CACHE=${FIL_PROOFS_PARAMETER_CACHE:-/tmp/filecoin-proof-parameters}
export RUST_LOG=${RUST_LOG:-warn,bellperson=info}
bin=target/cuda/release/damocles-seal-bench
chmod +x "$bin"
timeout "${BENCH_TIMEOUT:-480}" "$bin" --sectors "${SECTORS:-3}" --json "$out/bench-2kib.json" 2>&1 \
  | grep -v -E 'INFO.*(multiexp|fft)' | tee "$out/bench-2kib.log"
echo "exit: ${PIPESTATUS[0]}" | tee -a "$out/bench-2kib.log"
