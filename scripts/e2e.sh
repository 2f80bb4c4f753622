#!/usr/bin/env bash
# Browser tests: starts the real citypin (debug build) on a fresh database in the test cluster
# (DATABASE_URL from with-test-db.sh), with the LA sample city loaded, and drives the web map
# with Debian's Chromium through playwright-core.
# Usage: scripts/e2e.sh [command to run instead of web-map/run-e2e.sh, with CITYPIN_URL set]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/test-server.sh
start_test_server e2e
e2e_url="$test_db_url"
CITYPIN_CREW_TOKEN=$(DATABASE_URL="$e2e_url" ./target/debug/citypin token create --role crew --name e2e | tail -n1)
export CITYPIN_CREW_TOKEN
export CITYPIN_URL="$test_base"
# Any arguments run instead of the browser tests, against the same server (e.g. the web map's
# first-load measurement: scripts/e2e.sh sh -c 'cd web-map && npm run measure').
if [ $# -gt 0 ]; then "$@"; else web-map/run-e2e.sh; fi
