# Sourced by the scripts that drive a real citypin over HTTP (e2e.sh, schemathesis.sh), under
# scripts/with-test-db.sh: `start_test_server NAME [VAR=VALUE ...]` creates a fresh database
# citypin_NAME_<pid> in the test cluster, starts the debug build on a free port with the LA
# sample city (and the extra settings given), waits for readiness with a deadline, and sets
# `test_db_url`, `test_base` (http://127.0.0.1:PORT) and `test_log`; the server stops and the
# database is dropped on exit.
: "${DATABASE_URL:?run me under scripts/with-test-db.sh}"
test_shared="${CITYPIN_SHARED_DATA:-../shared/data}"
test_sample="$test_shared/la311/la311_normalized.csv"

start_test_server() {
  local name=$1
  shift
  # Third-party data stays outside the repository (the basemap's boundaries are read there too).
  [ -f "$test_sample" ] || { echo "$test_sample is missing: set CITYPIN_SHARED_DATA to the shared data folder" >&2; exit 1; }
  test_admin_url="$DATABASE_URL"
  test_db="citypin_${name}_$$"
  psql "$test_admin_url" -qAtc "CREATE DATABASE $test_db" >/dev/null
  test_db_url="${test_admin_url/\/citypin\?/\/$test_db?}"
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  test_base="http://127.0.0.1:$port"
  test_log="target/$name-server.log"
  cargo build --quiet --bin citypin
  env DATABASE_URL="$test_db_url" CITYPIN_LISTEN="127.0.0.1:$port" CITYPIN_SAMPLE="$test_sample" \
    CITYPIN_SNAPSHOT_INTERVAL_SECS=0 "$@" ./target/debug/citypin serve >"$test_log" 2>&1 &
  test_server=$!
  trap stop_test_server EXIT
  # The sample city loads before the service is ready.
  for _ in $(seq 1 600); do
    curl -fs "$test_base/health/ready" >/dev/null 2>&1 && return 0
    kill -0 "$test_server" 2>/dev/null || { cat "$test_log"; exit 1; }
    sleep 0.1
  done
  echo "citypin did not become ready"; cat "$test_log"; exit 1
}

stop_test_server() {
  kill "$test_server" 2>/dev/null || true
  wait "$test_server" 2>/dev/null || true
  psql "$test_admin_url" -qAtc "DROP DATABASE IF EXISTS $test_db" >/dev/null 2>&1 || true
}
