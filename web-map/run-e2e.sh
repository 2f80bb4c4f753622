#!/usr/bin/env bash
# Browser tests of the web map against a running citypin.
#   CITYPIN_URL          base URL of the running service (default http://127.0.0.1:8080)
#   CITYPIN_CREW_TOKEN   a crew token; if unset and CITYPIN_BIN is given, one is made with
#                        "$CITYPIN_BIN token create --role crew --name web-map-e2e"
# Builds web-map/dist first if it is missing or older than its sources (citypin serves it at /).
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules ] || npm ci --no-audit --no-fund
# Rebuild when the sources are newer than the build, so the tests never drive a stale dist.
if [ ! -f dist/index.html ] || [ -n "$(find src index.html vite.config.js package-lock.json -newer dist/index.html -print -quit)" ]; then
  npm run build
fi
if [ -z "${CITYPIN_CREW_TOKEN:-}" ] && [ -n "${CITYPIN_BIN:-}" ]; then
  CITYPIN_CREW_TOKEN="$(cd .. && "$CITYPIN_BIN" token create --role crew --name web-map-e2e | tail -n1)"
  export CITYPIN_CREW_TOKEN
fi
export CITYPIN_URL="${CITYPIN_URL:-http://127.0.0.1:8080}"
exec node --test --test-concurrency=1 "$@" tests/e2e.mjs
