#!/usr/bin/env bash
# Runs a command with DATABASE_URL pointing at a private PostGIS cluster for tests, started by
# citypin's own embedded-cluster code in target/test-pg and stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin citypin
export CITYPIN_DATA_DIR="$PWD/target/test-pg"
url=$(./target/debug/citypin postgres start)
trap './target/debug/citypin postgres stop >/dev/null 2>&1 || true' EXIT
export DATABASE_URL="$url"
"$@"
