#!/usr/bin/env bash
# Builds the original damocles worker (v0.13, ipfs-force-community/damocles) from
# snapshots of its public sources, outside this repository, to run it as a real client
# of our mock manager (issue 31). Not part of CI.
#
# Usage: scripts/build-original-worker.sh <damocles> <jsonrpc> <rust-fil-proofs> [<out>]
#   <damocles>         a checkout of ipfs-force-community/damocles (HEAD 4235a89 = v0.13.1)
#   <jsonrpc>          a checkout of ipfs-force-community/jsonrpc, branch
#                      feat/0x5459/v18-do-not-check-http-status
#   <rust-fil-proofs>  a checkout of ipfs-force-community/rust-fil-proofs, branch force/v18.1.0
#   <out>              where the worker is copied and built (default /tmp/original-worker)
#
# Its git dependencies are pointed at those checkouts by path (its [patch.crates-io]
# entries rewritten, the jsonrpc ones too); it builds with its own toolchain pin (1.72.0,
# `rustup` installs it): newer compilers refuse its lock file's crates (time 0.3.20 from
# Rust 1.80, bellperson 0.26's fs2 locks from 1.89, where std's File::try_lock shadows
# them). It builds RocksDB's C++ (librocksdb-sys, whose bindgen needs libclang: Debian's
# `libclang-dev`, checked below) and the proofs: expect well over half
# an hour on 2 cores. The binary: <out>/target/debug/damocles-worker (a debug build: half the build time, and 2KiB sectors seal fast enough).
set -euo pipefail
ls /usr/lib/llvm-*/lib/libclang*.so* /usr/lib/x86_64-linux-gnu/libnuma.so /usr/lib/x86_64-linux-gnu/libhwloc.so >/dev/null 2>&1 || {
  echo "it needs libclang (librocksdb-sys's bindgen), libnuma, libhwloc and OpenCL to link: apt-get install libclang-dev clang libnuma-dev libhwloc-dev ocl-icd-opencl-dev" >&2
  exit 1
}
damocles=$(realpath "$1"); jsonrpc=$(realpath "$2"); proofs=$(realpath "$3")
out=${4:-/tmp/original-worker}
rm -rf "$out" && mkdir -p "$out"
cp -r "$damocles/damocles-worker/." "$out/"
cd "$out"
fil='git = "https://github.com/ipfs-force-community/rust-fil-proofs", package = "\([a-z0-9-]*\)", branch = "force/v18.1.0"'
sed -i "s|$fil|path = \"$proofs/\1\"|" Cargo.toml
rpc='git = "https://github.com/ipfs-force-community/jsonrpc.git", branch = "feat/0x5459/v18-do-not-check-http-status"'
for pair in jsonrpc-core-client:core-client jsonrpc-core:core jsonrpc-derive:derive jsonrpc-http-server:http; do
  name=${pair%%:*}; dir=${pair##*:}
  sed -i "s|^$name = { $rpc|$name = { path = \"$jsonrpc/$dir\"|" Cargo.toml
done
grep -n 'git = ' Cargo.toml && { echo "a git dependency is left" >&2; exit 1; }
rustup toolchain install "$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)" --profile minimal
cargo build --bin damocles-worker
