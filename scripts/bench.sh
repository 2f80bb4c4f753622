#!/usr/bin/env bash
# `make bench` / `make bench-quick`: the whole benchmark suite in one command.
#  1. builds the release binary and every bench;
#  2. starts a private PostGIS cluster for the benchmark (citypin's own embedded-cluster code,
#     fsync and synchronous_commit on);
#  3. runs the HTTP load harness (benches/load.rs) at every data size, each scenario side by side
#     with its baseline;
#  4. runs the criterion micro-benchmarks (spatial_index, dedup, tiles, photos), each with its own
#     baseline in the same run, at BENCH_INCIDENTS incidents (1,000,000; 100,000 with --quick),
#     and the photo memory run (50 concurrent uploads); their goal lines join results.md;
#  5. plots the scaling curve.
# Arguments go to the harness: --quick, --scales 100000,1000000, --duration S, --connections N.
# Results: target/bench/results.{json,md}, target/bench/micro/*.txt, target/bench/scaling.png,
# target/bench/stages.txt (how long each stage took).
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench
mkdir -p "$out/micro"
started=$(date +%s)
stage_start=$started
: >"$out/stages.txt"
stage() {
  local now
  now=$(date +%s)
  printf '%-34s %5d s\n' "$1" $((now - stage_start)) | tee -a "$out/stages.txt"
  stage_start=$now
}

quick=0
for a in "$@"; do [ "$a" = --quick ] && quick=1; done
export BENCH_INCIDENTS="${BENCH_INCIDENTS:-$([ $quick = 1 ] && echo 100000 || echo 1000000)}"

cargo build --release --bin citypin --example photos_load
cargo bench --no-run
stage "build (release binary and benches)"

# Its own cluster, apart from the test one, one per checkout; under /tmp so the `postgres` user
# (the cluster runs as it when we are root) can reach it.
export CITYPIN_DATA_DIR="/tmp/citypin-bench-pg-$(printf %s "$PWD" | sha1sum | cut -c1-12)"
url=$(./target/release/citypin postgres start)
trap './target/release/citypin postgres stop >/dev/null 2>&1 || true' EXIT
DATABASE_URL="$url" cargo bench --bench load -- --out "$out" "$@"
stage "HTTP load harness"

# Each micro-benchmark prints its side-by-side summary (p50/p99 and ratios) before criterion's
# own lines; the whole output is kept.
for b in spatial_index dedup tiles photos; do
  DATABASE_URL="$url" cargo bench --bench "$b" 2>&1 | tee "$out/micro/$b.txt"
  stage "micro-benchmark $b ($BENCH_INCIDENTS incidents)"
done

# 50 concurrent 12-megapixel uploads against a release server: peak RSS (issue 9).
benches/photos-load.sh 50 2>&1 | tee "$out/micro/photos_load.txt"
stage "photos under 50 concurrent uploads"

# The micro-benchmarks' goals: each prints `goal | figure | goal | measured | met |` lines.
{
  printf '\n### Goals measured in process (criterion benches, %s incidents)\n\n' "$BENCH_INCIDENTS"
  printf '| figure | goal | measured | met |\n|---|---|---|---|\n'
  grep -h '^goal |' "$out"/micro/*.txt | sed 's/^goal //' || true
} >>"$out/results.md"

# The plot is a picture of results.json; a missing PyPI leaves the numbers intact.
if [ ! -x "$out/venv/bin/python" ]; then
  python3 -m venv "$out/venv" && "$out/venv/bin/pip" install --quiet matplotlib \
    || echo "bench: could not install matplotlib; skipping the plot"
fi
if [ -x "$out/venv/bin/python" ]; then
  "$out/venv/bin/python" scripts/bench-plot.py "$out/results.json" "$out/scaling.png"
fi
stage "plot"
printf '%-34s %5d s\n' "total" $(($(date +%s) - started)) | tee -a "$out/stages.txt"
