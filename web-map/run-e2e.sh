#!/usr/bin/env bash
# Browser tests of the web map against a running citypin.
#   CITYPIN_URL          base URL of the running service (default http://127.0.0.1:8080)
#   CITYPIN_CREW_TOKEN   a crew token; if unset and CITYPIN_BIN is given, one is made with
#                        "$CITYPIN_BIN token create --role crew --name web-map-e2e"
# Builds web-map/dist first if it is missing (citypin serves it at /).
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules ] || npm ci --no-audit --no-fund
[ -f dist/index.html ] || npm run build
if [ -z "${CITYPIN_CREW_TOKEN:-}" ] && [ -n "${CITYPIN_BIN:-}" ]; then
  CITYPIN_CREW_TOKEN="$(cd .. && "$CITYPIN_BIN" token create --role crew --name web-map-e2e | tail -n1)"
  export CITYPIN_CREW_TOKEN
fi
export CITYPIN_URL="${CITYPIN_URL:-http://127.0.0.1:8080}"
exec node --test --test-concurrency=1 tests/e2e.mjs
