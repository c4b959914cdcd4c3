#!/usr/bin/env bash
# The project's test command (README "Run the tests"; .ci/run runs exactly this).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
step() { echo "== $* ($(date -u +%T))"; }
command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest
# Debian's packages the tests use (Chromium, chromedriver and promtool:
# scripts/install-test-tools.sh), then the CUDA toolkit (for the clippy step, which checks
# the cuda variant), one apt after the other, download and unpack while the workspace
# compiles (network and disk, hardly the 2 cores).
mkdir -p target
{
  scripts/install-test-tools.sh
  if [ "${SKIP_CUDA_CHECK:-0}" != 1 ]; then scripts/install-cuda-toolkit.sh; fi
} >target/apt-install.log 2>&1 &
installs=$!
step format; cargo fmt --all --check
step layering; scripts/check-layering.sh
step cycles; scripts/check-cycles.sh
# The sealing tests seal real 2KiB sectors: generate the parameters once per machine, before
# tests run in parallel (two processes generating the same file would break each other).
# Built as the tests build it (binaries and examples included), so nothing is built twice.
step build; cargo nextest run --workspace --no-run --cargo-quiet
# The parameters generate (once per machine) in the background while clippy runs: part of
# the generation (the circuit's synthesis) keeps one core busy, which leaves the other to
# clippy. Should a step fail meanwhile, the generator finishes on its own (stopped midway it
# would leave a partial file behind).
target/debug/damocles-worker params generate --sector-size 2KiB >target/params.log 2>&1 &
params=$!
# Clippy checks the cuda variant (the CUDA toolkit installed meanwhile): one check of the
# workspace lints every target and compiles the GPU kernels, so the GPU build is known to
# compile without a second check of the proof crates (about 7 minutes saved). Our code has
# no cfg of its own on the feature, so the lints see the code the CPU build runs.
step clippy
wait "$installs" || { cat target/apt-install.log; exit 1; }
if [ "${SKIP_CUDA_CHECK:-0}" != 1 ]; then
  # shellcheck source=scripts/cuda-env.sh
  . scripts/cuda-env.sh
  cargo clippy --workspace --all-targets --features damocles-sealing/cuda -- -D warnings
else
  cargo clippy --workspace --all-targets -- -D warnings
fi
# The alert rules and the Grafana dashboard of deploy/ (promtool; seconds).
step deploy; scripts/check-deploy.sh
step parameters; wait "$params" || { cat target/params.log; exit 1; }
tail -n 3 target/params.log
# The shared-registry tests run against PostgreSQL (installed, not running, on CI machines).
step postgres; DAMOCLES_TEST_DATABASE_URL="$(scripts/start-postgres.sh)"
export DAMOCLES_TEST_DATABASE_URL
step tests; cargo nextest run --workspace --no-fail-fast
step doctests; cargo test --workspace --doc
# The API docs build without a warning, and the embedding examples run (embed and
# loopback_harness seal real sectors; scheduler drives the core traits over the fakes).
step docs; RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace -q
# Built with the tests above (`cargo test` builds examples).
step examples
for example in scheduler embed loopback_harness; do target/debug/examples/$example; done
# The benchmarks run small with the tests (damocles-bench/tests/bench_smoke.rs).
step done
