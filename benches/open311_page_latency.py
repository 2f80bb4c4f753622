"""Latency of one full Open311 page (1000 requests, JSON) from a running release citypin that
holds the Los Angeles sample city: the plain 90-day list (PostGIS), a city-wide bbox and a
5 km radius (ids from the live index, rows from PostGIS), and the list with extensions=true.

Sequential requests over one keep-alive connection, 5 warm-up + 100 timed per query.
Usage (DATABASE_URL naming an empty database; see BENCHMARKS.md for the full command):
    target/py/bin/python benches/open311_page_latency.py target/release/citypin PORT
"""

import os
import statistics
import subprocess
import sys
import time

import requests

# Third-party data stays outside the repository: the shared data folder beside it.
SHARED_DATA = os.environ.get("CITYPIN_SHARED_DATA", "../shared/data")

QUERIES = [
    ("default 90 days (PostGIS)", ""),
    ("bbox over the city (index)", "?bbox=-118.7,33.7,-118.1,34.4"),
    ("radius 5 km (index)", "?lat=34.05&long=-118.25&radius=5000"),
    ("default + extensions=true", "?extensions=true"),
]


def main():
    binary, port = sys.argv[1], sys.argv[2]
    env = dict(os.environ, CITYPIN_LISTEN=f"127.0.0.1:{port}", RUST_LOG="warn",
               CITYPIN_SAMPLE=os.path.join(SHARED_DATA, "la311", "la311_normalized.csv"))
    server = subprocess.Popen([binary, "serve"], env=env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        session = requests.Session()
        for name, query in QUERIES:
            url = f"http://127.0.0.1:{port}/open311/v2/requests.json{query}"
            n = len(session.get(url).json())
            for _ in range(5):
                session.get(url).content
            times = []
            for _ in range(100):
                start = time.perf_counter()
                session.get(url).content
                times.append((time.perf_counter() - start) * 1000)
            times.sort()
            print(f"{name}: {n} per page, p50 {statistics.median(times):.1f} ms, "
                  f"p90 {times[89]:.1f} ms, max {times[-1]:.1f} ms")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
