#!/usr/bin/env bash
# Installs, from Debian, what the tests use beside Rust: Chromium and chromedriver (the
# dashboard's browser tests, damocles-cli/tests/system/dashboard.rs) and promtool (the
# alert rules' checks, scripts/check-deploy.sh). Idempotent: installs only what is missing.
# As root, or with sudo.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -eq 0 ]; then
  echo "test tools present: $(chromedriver --version | head -n 1); $(promtool --version 2>&1 | head -n 1)"
  exit 0
fi
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -q
as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
