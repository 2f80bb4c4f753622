#!/usr/bin/env bash
# `make sqlx-prepare`: regenerates .sqlx/, the descriptions of the checked queries (sqlx's
# `query!` family) that every build reads instead of a database (.cargo/config.toml sets
# SQLX_OFFLINE=true). Run under scripts/with-test-db.sh: a fresh database in the test cluster,
# migrated from migrations/ as they are now, is what the macros describe the queries against
# while they compile; sqlx writes each description into SQLX_OFFLINE_DIR as it goes.
# `--check` writes them elsewhere and fails if .sqlx/ differs (a query or a migration changed
# without `make sqlx-prepare`).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?run me under scripts/with-test-db.sh}"

out=.sqlx
if [ "${1:-}" = --check ]; then
  out=target/sqlx-check
fi
db="citypin_sqlx_$$"
admin_url="$DATABASE_URL"
url="${admin_url/\/citypin\?/\/$db?}"
psql "$admin_url" -qAtc "CREATE DATABASE $db" >/dev/null
trap 'psql "$admin_url" -qAtc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
# psql rather than citypin's embedded migrator: the binary may not build offline yet (a new
# query has no description until this script writes one). Each file in one transaction, in
# order, as sqlx applies them.
export PGOPTIONS="-c client_min_messages=warning"
for m in migrations/*.sql; do
  psql "$url" -X -q -v ON_ERROR_STOP=1 -1 -f "$m" >/dev/null
done

rm -rf "$out"
mkdir -p "$out"
# The macros describe a query only when the file holding it compiles: make cargo recompile
# every crate that has one.
grep -rlE --include='*.rs' --exclude-dir=node_modules 'sqlx::query(_as|_scalar)?!' src tests benches examples | xargs -r touch
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$PWD/$out" DATABASE_URL="$url" cargo check --all-targets --quiet
echo "$(ls "$out" | wc -l) query descriptions in $out/"

if [ "$out" != .sqlx ]; then
  diff -r .sqlx "$out" >/dev/null || {
    echo ".sqlx/ is out of date: run make sqlx-prepare and commit it" >&2
    diff -rq .sqlx "$out" >&2 || true
    exit 1
  }
  echo ".sqlx/ is up to date"
fi
