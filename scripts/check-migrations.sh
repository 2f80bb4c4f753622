#!/usr/bin/env bash
# A landed migration never changes. sqlx records each applied migration's SHA-384 in
# `_sqlx_migrations.checksum` and refuses to start against a database whose recorded checksum
# differs from the embedded text ("migration N was previously applied but has been modified").
# migrations/checksums.txt is the committed record, in `sha384sum` format; this fails if a listed
# migration changed or is gone, or if a migration is not listed. A new migration is one more line:
#   (cd migrations && sha384sum 0012_name.sql >> checksums.txt)
# Usage: scripts/check-migrations.sh [MIGRATIONS_DIR]   (run by `make lint`)
set -euo pipefail
dir="${1:-$(dirname "$0")/../migrations}"
cd "$dir"
shopt -s nullglob
status=0
declare -A listed
while read -r sum name; do
  [[ -z "$sum" || "$sum" == \#* ]] && continue
  listed[$name]=1
  if [ ! -f "$name" ]; then
    echo "migrations/$name is in checksums.txt but missing: a landed migration is never removed" >&2
    status=1
    continue
  fi
  actual=$(sha384sum "$name" | cut -d' ' -f1)
  if [ "$actual" != "$sum" ]; then
    echo "migrations/$name changed after it landed (SHA-384 $actual, recorded $sum): databases migrated with the recorded text would refuse to start; put the change in a new migration" >&2
    status=1
  fi
done < checksums.txt
for f in *.sql; do
  if [ -z "${listed[$f]:-}" ]; then
    echo "migrations/$f is not in migrations/checksums.txt; once it is final, add it: (cd migrations && sha384sum $f >> checksums.txt)" >&2
    status=1
  fi
done
exit $status
