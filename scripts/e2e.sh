#!/usr/bin/env bash
# Browser tests: starts the real citypin (debug build) on a fresh database in the test cluster
# (DATABASE_URL from with-test-db.sh), with the LA sample city loaded, and drives the web map
# with Debian's Chromium through playwright-core.
# Usage: scripts/e2e.sh [command to run instead of web-map/run-e2e.sh, with CITYPIN_URL set]
set -euo pipefail
cd "$(dirname "$0")/.."
db="citypin_e2e_$$"
admin_url="$DATABASE_URL"
psql "$admin_url" -qAtc "CREATE DATABASE $db" >/dev/null
e2e_url="${admin_url/\/citypin\?/\/$db?}"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log="target/e2e-server.log"
# Third-party data stays outside the repository (the basemap's boundaries are read from there too).
sample="${CITYPIN_SHARED_DATA:-../shared/data}/la311/la311_normalized.csv"
[ -f "$sample" ] || { echo "$sample is missing: set CITYPIN_SHARED_DATA to the shared data folder" >&2; exit 1; }
DATABASE_URL="$e2e_url" CITYPIN_LISTEN="127.0.0.1:$port" CITYPIN_SAMPLE="$sample" CITYPIN_SNAPSHOT_INTERVAL_SECS=0 \
  ./target/debug/citypin serve >"$log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  psql "$admin_url" -qAtc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
}
trap cleanup EXIT
# Wait for readiness with a deadline (the sample city loads first).
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null || { echo "citypin did not become ready"; cat "$log"; exit 1; }
CITYPIN_CREW_TOKEN=$(DATABASE_URL="$e2e_url" ./target/debug/citypin token create --role crew --name e2e | tail -n1)
export CITYPIN_CREW_TOKEN
export CITYPIN_URL="http://127.0.0.1:$port"
# Any arguments run instead of the browser tests, against the same server (e.g. the web map's
# first-load measurement: scripts/e2e.sh sh -c 'cd web-map && npm run measure').
if [ $# -gt 0 ]; then "$@"; else web-map/run-e2e.sh; fi
