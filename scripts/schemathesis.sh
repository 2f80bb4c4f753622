#!/usr/bin/env bash
# Property-based API tests: schemathesis (PyPI, in target/py) generates requests from an
# OpenAPI document citypin serves (today OGC API - Features' /ogc/api; SCHEMATHESIS_DOCS lists
# others) and fails on any 5xx or any response the document does not describe. Bounded: at
# most SCHEMATHESIS_EXAMPLES (25) cases per operation and phase and SCHEMATHESIS_SECS (75 s)
# per document, so it adds under two minutes.
# Starts the real citypin (debug build) on a fresh database in the test cluster (DATABASE_URL
# from with-test-db.sh) with the LA sample city and its council districts loaded.
set -euo pipefail
cd "$(dirname "$0")/.."
st=target/py/bin/schemathesis
[ -x "$st" ] || { echo "$st is missing: run scripts/install-deps.sh" >&2; exit 1; }
. scripts/test-server.sh
start_test_server schemathesis CITYPIN_AREAS="$test_shared/la311/la-city-council-districts-2012.json"
log="$test_log"
base="$test_base"
status=0
for doc in ${SCHEMATHESIS_DOCS:-/ogc/api}; do
  echo "schemathesis: $base$doc"
  "$st" run "$base$doc" --url "$base${doc%%/api*}" \
    --checks not_a_server_error,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-25}" --max-time "${SCHEMATHESIS_SECS:-75}" \
    --workers 2 --request-timeout 10 --suppress-health-check all \
    --seed 17 --generation-database none --no-color || status=1
done
if [ $status -ne 0 ]; then echo "schemathesis found failures (server log: $log)" >&2; fi
exit $status
