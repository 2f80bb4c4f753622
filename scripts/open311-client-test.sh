#!/usr/bin/env bash
# Drives citypin with a real Open311 client (the `georeport` package, installed into
# target/py by install-deps.sh), on a fresh database of the test cluster that
# with-test-db.sh started (DATABASE_URL), loaded with the Los Angeles sample city.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?run under scripts/with-test-db.sh}"
db="citypin_open311_client_$$"
psql -q "$DATABASE_URL" -c "CREATE DATABASE $db"
trap 'psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$DATABASE_URL" "$db")
cargo build --quiet --bin citypin
sample="${CITYPIN_SHARED_DATA:-../shared/data}/la311/la311_normalized.csv"
[ -f "$sample" ] || { echo "$sample is missing: set CITYPIN_SHARED_DATA to the shared data folder" >&2; exit 1; }
DATABASE_URL="$url" CITYPIN_SAMPLE="$sample" CITYPIN_SNAPSHOT_INTERVAL_SECS=0 \
  target/py/bin/python tests/clients/open311_georeport.py target/debug/citypin
