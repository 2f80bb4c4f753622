#!/usr/bin/env bash
# Every test, with DATABASE_URL already set by with-test-db.sh: Rust unit and API tests, then
# real clients against a running citypin (Open311 client; schemathesis over the OpenAPI
# documents; the web map in Debian's Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets
scripts/open311-client-test.sh
scripts/schemathesis.sh
scripts/e2e.sh
