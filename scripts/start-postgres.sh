#!/usr/bin/env bash
# Starts this machine's PostgreSQL when it is installed but not running (as CI machines
# have it: `pg_ctlcluster --skip-systemctl-redirect 15 main start`, as root), makes the
# `damocles` role the tests use (it creates a database per test and drops it after), and
# prints the URL the tests read from DAMOCLES_TEST_DATABASE_URL:
#   export DAMOCLES_TEST_DATABASE_URL="$(scripts/start-postgres.sh)"
set -euo pipefail
if ! command -v pg_lsclusters >/dev/null 2>&1; then
  echo "start-postgres: PostgreSQL is not installed (apt install postgresql)" >&2
  exit 1
fi
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
as_postgres() { as_root su postgres -c "$1"; }
read -r version cluster port status _ < <(pg_lsclusters -h | head -1)
if [ "$status" != online ]; then
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start >&2
elif [ "${DAMOCLES_PG_RESTART:-0}" = 1 ]; then
  # For the test of managers riding out a database restart.
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" restart >&2
fi
# pg_ctlcluster returns once the server accepts connections.
if ! as_postgres "psql -p $port -qtAc \"SELECT 1 FROM pg_roles WHERE rolname = 'damocles'\"" | grep -q 1; then
  as_postgres "psql -p $port -qc \"CREATE ROLE damocles LOGIN CREATEDB PASSWORD 'damocles'\"" >&2
fi
echo "postgres://damocles:damocles@127.0.0.1:$port/postgres"
