#!/usr/bin/env bash
# The layering of DESIGN.md: damocles-core does no I/O, so its normal dependency tree must
# not contain a transport, a database, an async runtime or the proof system.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(cargo tree -p damocles-core -e normal --prefix none)
forbidden='^(hyper|hyper-util|redb|tokio|filecoin-proofs|filecoin-proofs-api|storage-proofs-core|bellperson) '
if echo "$tree" | grep -E "$forbidden"; then
  echo "layering broken: damocles-core depends on the crates above" >&2
  exit 1
fi
echo "layering ok: damocles-core depends on $(echo "$tree" | sort -u | wc -l) crates, none of hyper, redb, tokio, filecoin-proofs"

# An embedder who wants only a worker compiles neither sqlx nor the mock chain: sqlx is
# behind damocles-rpc's `postgres` feature, the mock chain behind damocles-sealing's
# `mock-chain` feature, and both crates build without them (about 35 s of `cargo check`).
for crate in damocles-sealing damocles-rpc; do
  if cargo tree -p "$crate" -e normal --no-default-features --prefix none | grep -E '^sqlx '; then
    echo "layering broken: $crate compiles sqlx without its postgres feature" >&2
    exit 1
  fi
done
cargo check -q -p damocles-sealing -p damocles-rpc --lib --no-default-features
echo "features ok: damocles-sealing and damocles-rpc build without sqlx and the mock chain"
