#!/usr/bin/env bash
# `make bench` / `make bench-quick`: builds the release binary and the load harness, starts a
# private PostGIS cluster for the benchmark (citypin's own embedded-cluster code, fsync and
# synchronous_commit on), runs benches/load.rs at every data size, then plots the scaling curve.
# Arguments go to the harness: --quick, --scales 100000,1000000, --duration S, --connections N.
# Results: target/bench/results.{json,md}, target/bench/scaling.png.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench
mkdir -p "$out"

cargo build --release --bin citypin
cargo bench --bench load --no-run

# Its own cluster, apart from the test one, one per checkout; under /tmp so the `postgres` user
# (the cluster runs as it when we are root) can reach it.
export CITYPIN_DATA_DIR="/tmp/citypin-bench-pg-$(printf %s "$PWD" | sha1sum | cut -c1-12)"
url=$(./target/release/citypin postgres start)
trap './target/release/citypin postgres stop >/dev/null 2>&1 || true' EXIT
DATABASE_URL="$url" cargo bench --bench load -- --out "$out" "$@"

# The plot is a picture of results.json; a missing PyPI leaves the numbers intact.
if [ ! -x "$out/venv/bin/python" ]; then
  python3 -m venv "$out/venv" && "$out/venv/bin/pip" install --quiet matplotlib \
    || echo "bench: could not install matplotlib; skipping the plot"
fi
if [ -x "$out/venv/bin/python" ]; then
  "$out/venv/bin/python" scripts/bench-plot.py "$out/results.json" "$out/scaling.png"
fi
