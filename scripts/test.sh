#!/usr/bin/env bash
# The project's test command (README "Run the tests"; .ci/run runs exactly this).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
scripts/check-layering.sh
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc
