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
