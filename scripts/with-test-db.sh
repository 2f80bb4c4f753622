#!/usr/bin/env bash
# Runs a command with DATABASE_URL pointing at a private PostGIS cluster for tests, started by
# citypin's own embedded-cluster code in target/test-pg and stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
# The binary only manages the cluster. When it does not build offline (a new query with no
# description in .sqlx/ yet, which `make sqlx-prepare`, run under this script, is to write),
# the last one built does.
if ! build_log=$(cargo build --quiet --bin citypin 2>&1); then
  [ -x target/debug/citypin ] || { printf '%s\n' "$build_log" >&2; exit 1; }
  echo "with-test-db.sh: citypin does not build; the last one built manages the cluster" >&2
fi
# Under /tmp so the `postgres` user (the cluster runs as it when we are root) can reach it,
# one cluster per checkout.
export CITYPIN_DATA_DIR="${CITYPIN_TEST_PG:-/tmp/citypin-test-pg-$(printf %s "$PWD" | sha1sum | cut -c1-12)}"
# citypin rejects unknown CITYPIN_* settings, and this one is only the script's.
unset CITYPIN_TEST_PG
url=$(./target/debug/citypin postgres start)
trap './target/debug/citypin postgres stop >/dev/null 2>&1 || true' EXIT
export DATABASE_URL="$url"
"$@"
