#!/usr/bin/env bash
# Installs what the `cuda` build of damocles-rs needs on Debian bookworm: the CUDA 11.8
# toolkit from Debian's non-free component and g++-11, the newest host compiler nvcc 11.8
# accepts. Idempotent: does nothing when nvcc and g++-11 are already there.
set -euo pipefail
if command -v nvcc >/dev/null 2>&1 && command -v g++-11 >/dev/null 2>&1; then
  echo "cuda toolkit present: $(nvcc --version | tail -n 1)"
  exit 0
fi
src=/etc/apt/sources.list.d/damocles-nonfree.sources
if [ ! -f "$src" ]; then
  cat >"$src" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends nvidia-cuda-toolkit g++-11
nvcc --version | tail -n 1
