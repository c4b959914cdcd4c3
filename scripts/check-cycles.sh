#!/usr/bin/env bash
# Direction inside each crate (ARCHITECTURE.md): no two top-level modules use each other,
# directly or through others. scripts/module_cycles.rs says how uses are found; it is
# compiled here with rustc alone (no dependencies, about a second).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
rustc --edition 2021 -O -o target/module_cycles scripts/module_cycles.rs
target/module_cycles damocles-*/src
