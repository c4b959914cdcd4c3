#!/usr/bin/env bash
# The monitoring files of deploy/ (docs/alerts.md): the alert rules pass `promtool check
# rules` and their unit tests (`promtool test rules`), and every query of the Grafana
# dashboard parses as PromQL. That every metric they name is one the binaries export is
# damocles-cli/tests/system/deploy_metrics.rs. promtool comes from Debian's `prometheus`
# package, installed here when missing (CI runs as root). A few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
rules=deploy/prometheus/damocles.rules.yml
tests=deploy/prometheus/damocles.rules.test.yml
dashboard=deploy/grafana/damocles.json

if ! command -v promtool >/dev/null 2>&1; then
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
  echo "check-deploy: installing promtool (Debian's prometheus package)"
  as_root apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    prometheus >/dev/null
fi

promtool check rules "$rules"
promtool test rules "$tests"

# The dashboard's queries, each as a recording rule (Grafana's $__rate_interval as 5m; the
# $manager and $worker variables stay, as the regexes they are in): promtool parses them.
# A JSON string is a valid YAML double-quoted string, so each is copied as it is.
queries=$(mktemp)
trap 'rm -f "$queries"' EXIT
{
  echo "groups:"
  echo "  - name: dashboard-queries"
  echo "    rules:"
  grep -oE '"expr": "([^"\\]|\\.)*"' "$dashboard" | sed -E 's/^"expr": //' | {
    n=0
    while IFS= read -r expr; do
      n=$((n + 1))
      echo "      - record: dashboard:query_$n"
      echo "        expr: ${expr//\$__rate_interval/5m}"
    done
    [ "$n" -gt 0 ] || { echo "check-deploy: no query found in $dashboard" >&2; exit 1; }
  }
} >"$queries"
count=$(grep -c '^      - record:' "$queries")
promtool check rules "$queries" >/dev/null || {
  promtool check rules "$queries" || true
  echo "check-deploy: a query of $dashboard does not parse (above)" >&2
  exit 1
}
echo "check-deploy: the rules pass check and test; the dashboard's $count queries parse"
