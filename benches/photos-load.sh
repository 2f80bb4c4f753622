#!/usr/bin/env bash
# Peak server memory with 50 concurrent photo uploads: starts a release citypin on a private
# PostGIS cluster (scripts/with-test-db.sh) at 127.0.0.1:18089, runs examples/photos_load.rs
# against it, and stops everything. Loopback only; bounded to N requests.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-50}"
cargo build --release --bin citypin --example photos_load
exec scripts/with-test-db.sh bash -c '
  set -euo pipefail
  photos=$(mktemp -d)
  # A database of its own, dropped afterwards, so the test cluster stays clean.
  psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS citypin_photos_load" -c "CREATE DATABASE citypin_photos_load"
  load_url=$(printf %s "$DATABASE_URL" | sed "s|/[^/?]*?|/citypin_photos_load?|")
  DATABASE_URL="$load_url" CITYPIN_LISTEN=127.0.0.1:18089 CITYPIN_PHOTO_DIR="$photos" CITYPIN_SNAPSHOT_INTERVAL_SECS=0 RUST_LOG=warn \
    ./target/release/citypin serve & pid=$!
  cleanup() {
    kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
    rm -rf "$photos"
    psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS citypin_photos_load" || true
  }
  trap cleanup EXIT
  for _ in $(seq 1 100); do
    curl -fs http://127.0.0.1:18089/health/ready >/dev/null && break || sleep 0.2
  done
  ./target/release/examples/photos_load http://127.0.0.1:18089 "$pid" '"$N"'
'
