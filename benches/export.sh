#!/usr/bin/env bash
# Benchmark: export N (default 1,000,000) incidents as GeoJSON from a release citypin, side by
# side with `ogr2ogr -f GeoJSON /dev/null PG:...` reading the same rows straight from PostGIS.
# Reports features/s for both, their ratio, and the peak RSS growth of citypin during the export.
#
#   benches/export.sh            # N=1000000; about 2-4 minutes on the 2-core VM after the build
#   N=200000 benches/export.sh   # a quicker run
#
# Data: the LA sample (30,000 rows) is imported, then resampled with jitter until the table holds
# N rows: INSERT ... SELECT over generate_series, each copy moved by up to ±0.005° (~500 m) with a
# fresh id and reference (see the SQL below). The bench cluster lives in /tmp and is kept between
# runs (delete $CITYPIN_DATA_DIR to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
PORT=${PORT:-18089}
export CITYPIN_DATA_DIR=${CITYPIN_BENCH_PG:-/tmp/citypin-bench-export}
unset CITYPIN_SAMPLE CITYPIN_AREAS
sample="${CITYPIN_SHARED_DATA:-../shared/data}/la311/la311_normalized.csv"
[ -f "$sample" ] || { echo "$sample is missing: set CITYPIN_SHARED_DATA to the shared data folder" >&2; exit 1; }

cargo build --release --quiet --bin citypin
bin=./target/release/citypin
url=$($bin postgres start)
export DATABASE_URL="$url"
trap '$bin postgres stop >/dev/null 2>&1 || true' EXIT
sql() { psql -X -q -t -A "$url" -c "$1"; }
# GDAL's PG driver does not take a URL whose query names the socket: key=value form.
pg="host=${url##*host=} port=$(sed -E 's|.*:([0-9]+)/.*|\1|' <<<"$url") user=postgres dbname=$(sed -E 's|.*/([^/?]+)\?.*|\1|' <<<"$url")"

have=$(sql "SELECT count(*) FROM reports" 2>/dev/null || echo 0)
# A few jittered copies may lose a reference clash (ON CONFLICT DO NOTHING): 99 % is enough.
if [ "$have" -lt $((N * 99 / 100)) ]; then
  $bin import "$sample" >/dev/null
  have=$(sql "SELECT count(*) FROM reports")
  echo "growing reports from $have to $N rows (jittered copies of the LA sample)"
  sql "ALTER TABLE reports DISABLE TRIGGER reports_touch"
  sql "INSERT INTO reports (id, reference, jurisdiction_id, service_code, status, status_notes,
         description, address, zipcode, agency, channel, location, h3_cell, requested_at,
         updated_at, closed_at, due_at, supporters, attributes)
       SELECT gen_random_uuid(),
              'CP-' || upper(substr(h, 1, 4)) || '-' || upper(substr(h, 5, 4)),
              s.jurisdiction_id, s.service_code, s.status, s.status_notes, s.description,
              s.address, s.zipcode, s.agency, 'import',
              ST_SetSRID(ST_MakePoint(ST_X(s.location) + (random() - 0.5) * 0.01,
                                      ST_Y(s.location) + (random() - 0.5) * 0.01), 4326),
              s.h3_cell, s.requested_at + g * interval '1 minute', s.updated_at, s.closed_at,
              s.due_at, s.supporters, s.attributes
       FROM (SELECT * FROM reports WHERE external_id IS NOT NULL) s,
            generate_series(1, ceil(($N - $have)::numeric / $have)::int) g,
            LATERAL (SELECT md5(s.id::text || g::text) AS h) m
       LIMIT $N - $have
       ON CONFLICT (reference) DO NOTHING"
  sql "ALTER TABLE reports ENABLE TRIGGER reports_touch"
  sql "VACUUM ANALYZE reports"
fi
rows=$(sql "SELECT count(*) FROM reports WHERE NOT hidden")
echo "reports (public): $rows"

CITYPIN_LISTEN=127.0.0.1:$PORT CITYPIN_SNAPSHOT_INTERVAL_SECS=0 $bin serve >/tmp/citypin-bench-export.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; $bin postgres stop >/dev/null 2>&1 || true' EXIT
until curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null; do sleep 0.5; done

kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$pid/status"; }
# Reset the peak-RSS counter (VmHWM) so start-up (the index load) does not count.
echo 5 >"/proc/$pid/clear_refs"
rss_before=$(kb VmRSS)
t0=$(date +%s.%N)
bytes=$(curl -sf -o /dev/null -w '%{size_download}' "http://127.0.0.1:$PORT/api/v1/export/incidents.geojson")
t1=$(date +%s.%N)
hwm=$(kb VmHWM)

columns="id, reference, service_code, status, status_notes, description, address, zipcode,
  channel, requested_at, updated_at, closed_at, supporters, duplicate_of, location"
t2=$(date +%s.%N)
# GDAL's GeoJSON driver will not create /dev/null itself: write to stdout and discard it.
ogr2ogr -f GeoJSON /vsistdout/ "PG:$pg" -sql "SELECT $columns FROM reports WHERE NOT hidden" \
  -lco COORDINATE_PRECISION=7 -lco RFC7946=YES >/dev/null
t3=$(date +%s.%N)

awk -v n="$rows" -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v bytes="$bytes" \
    -v before="$rss_before" -v hwm="$hwm" 'BEGIN {
  cp = n / (b - a); og = n / (d - c);
  printf "citypin  GeoJSON export: %d features in %.2f s = %.0f features/s (%.1f MB)\n", n, b - a, cp, bytes / 1e6;
  printf "ogr2ogr  PG -> GeoJSON:  %d features in %.2f s = %.0f features/s\n", n, d - c, og;
  printf "ratio citypin / ogr2ogr: %.2f\n", cp / og;
  printf "citypin RSS: %.1f MB before, peak %.1f MB during the export: growth %.1f MB\n",
         before / 1024, hwm / 1024, (hwm - before) / 1024;
}'
