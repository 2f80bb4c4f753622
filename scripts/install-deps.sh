#!/usr/bin/env bash
# Installs what citypin needs on a fresh Debian 12 machine, and nothing that is already there.
# Called by `make run` and `make test`; safe to run again.
set -euo pipefail

# Debian packages: PostgreSQL + PostGIS (the embedded cluster), GDAL (tests drive ogrinfo and
# ogr2ogr as real GIS clients), Chromium (browser tests; never a downloaded browser), Python's
# venv (real client libraries from PyPI for the tests; matplotlib for `make bench`'s plot).
packages=(postgresql-15 postgresql-15-postgis-3 gdal-bin chromium curl python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "cargo is required (rustup)"; exit 1; }
command -v npm >/dev/null || { echo "node and npm are required"; exit 1; }

# Real third-party clients used by the tests, pinned, in one venv under target/ so nothing
# touches the system Python: an Open311 GeoReport v2 client, a vector-tile decoder, piexif
# (the EXIF writer whose GPS tags the photo tests read), and schemathesis (property-based tests
# generated from the OpenAPI documents citypin serves, scripts/schemathesis.sh).
cd "$(dirname "$0")/.."
venv=target/py
if ! "$venv/bin/python" -c 'import georeport, mapbox_vector_tile, piexif, schemathesis' 2>/dev/null; then
  echo "installing the client tests' Python packages into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check georeport==0.3.1 'mapbox-vector-tile>=2,<3' piexif==1.1.3 schemathesis==4.32.5
fi

# The independent GeoJSON checker the export tests run (@placemarkio/check-geojson) and the
# S3-protocol server the S3 photo-store tests run (s3rver), pinned by tests/tools/package-lock.json.
if [ ! -d tests/tools/node_modules/@placemarkio/check-geojson ] || [ ! -x tests/tools/node_modules/.bin/s3rver ]; then
  (cd tests/tools && npm ci --no-audit --no-fund --silent)
fi
