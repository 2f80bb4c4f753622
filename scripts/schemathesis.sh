#!/usr/bin/env bash
# Property-based API tests: schemathesis (PyPI, in target/py) generates requests from an
# OpenAPI document citypin serves (today OGC API - Features' /ogc/api; SCHEMATHESIS_DOCS lists
# others) and fails on any 5xx or any response the document does not describe. Bounded: at
# most SCHEMATHESIS_EXAMPLES (25) cases per operation and phase and SCHEMATHESIS_SECS (75 s)
# per document, so it adds under two minutes.
# Starts the real citypin (debug build) on a fresh database in the test cluster (DATABASE_URL
# from with-test-db.sh) with the LA sample city and its council districts loaded.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?run me under scripts/with-test-db.sh}"
st=target/py/bin/schemathesis
[ -x "$st" ] || { echo "$st is missing: run scripts/install-deps.sh" >&2; exit 1; }
db="citypin_schemathesis_$$"
admin_url="$DATABASE_URL"
psql "$admin_url" -qAtc "CREATE DATABASE $db" >/dev/null
url="${admin_url/\/citypin\?/\/$db?}"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log="target/schemathesis-server.log"
data="${CITYPIN_SHARED_DATA:-../shared/data}/la311"
[ -f "$data/la311_normalized.csv" ] || { echo "$data is missing: set CITYPIN_SHARED_DATA to the shared data folder" >&2; exit 1; }
cargo build --quiet --bin citypin
DATABASE_URL="$url" CITYPIN_LISTEN="127.0.0.1:$port" CITYPIN_SAMPLE="$data/la311_normalized.csv" \
  CITYPIN_AREAS="$data/la-city-council-districts-2012.json" CITYPIN_SNAPSHOT_INTERVAL_SECS=0 \
  ./target/debug/citypin serve >"$log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  psql "$admin_url" -qAtc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null || { echo "citypin did not become ready"; cat "$log"; exit 1; }
base="http://127.0.0.1:$port"
status=0
for doc in ${SCHEMATHESIS_DOCS:-/ogc/api}; do
  echo "schemathesis: $base$doc"
  "$st" run "$base$doc" --url "$base${doc%%/api*}" \
    --checks not_a_server_error,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-25}" --max-time "${SCHEMATHESIS_SECS:-75}" \
    --workers 2 --request-timeout 10 --suppress-health-check all \
    --seed 17 --generation-database none --no-color || status=1
done
if [ $status -ne 0 ]; then echo "schemathesis found failures (server log: $log)" >&2; fi
exit $status
