#!/usr/bin/env python3
"""Plots the scaling curve of a `make bench` run: latency and memory against data size.

usage: bench-plot.py target/bench/results.json target/bench/scaling.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


MAIN = ["nearby_open", "nearby_all", "open311_geo", "tiles_cached", "tiles_cold", "intake"]


def main(src, dst):
    with open(src) as f:
        res = json.load(f)
    scales = res["scales"]
    sizes = [s["incidents"] for s in scales]
    fig, (lat_ax, mem_ax) = plt.subplots(
        1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [1.5, 1], "wspace": 0.8}
    )
    names = []
    for s in scales:
        for sc in s["scenarios"]:
            # The variants (intake at other concurrencies, reads under writes) stay in the tables.
            if sc.get("available") and sc["name"] not in names and sc["name"] in MAIN:
                names.append(sc["name"])
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(names):
        colour = colours[i % len(colours)]
        for who, style in (("citypin", "-"), ("baseline", ":")):
            xs, p50, p99 = [], [], []
            for s in scales:
                sc = next((x for x in s["scenarios"] if x["name"] == name and x.get("available")), None)
                if sc is None:
                    continue
                stats = sc["citypin"] if who == "citypin" else (sc.get("baseline") or {}).get("stats")
                if not stats:
                    continue
                xs.append(s["incidents"])
                p50.append(stats["p50_ms"])
                p99.append(stats["p99_ms"])
            if xs:
                label = name if who == "citypin" else f"{name} (PostGIS)"
                lat_ax.plot(xs, p99, style, marker="o", color=colour, label=f"{label} p99")
                lat_ax.plot(xs, p50, style, marker=".", color=colour, alpha=0.5)
    lat_ax.set_xscale("log")
    lat_ax.set_yscale("log")
    lat_ax.set_xlabel("incidents in the database")
    lat_ax.set_ylabel("latency, ms (large dots p99, small p50)")
    lat_ax.set_title("p99 (p50 faint) vs data size\nsolid: citypin, dotted: the same endpoint answered by PostGIS (source=postgis)", fontsize=10)
    lat_ax.grid(True, which="both", alpha=0.3)
    lat_ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))

    ready = [s["startup"]["rss_ready_kb"] / 1024 for s in scales]
    peak = [s["server_peak_rss_kb"] / 1024 for s in scales]
    mem_ax.plot(sizes, ready, marker="o", label="RSS after start-up (index loaded)")
    mem_ax.plot(sizes, peak, marker="o", label="peak RSS over the run (VmHWM)")
    mem_ax.set_xscale("log")
    mem_ax.set_xlabel("incidents in the database")
    mem_ax.set_ylabel("citypin memory, MiB")
    mem_ax.set_title("citypin memory vs data size", fontsize=10)
    mem_ax.grid(True, which="both", alpha=0.3)
    mem_ax.legend(fontsize=8)
    fig.suptitle(f"citypin make bench, {res['date']}, {res['machine']['cpus']} CPUs, "
                 f"{res['connections']} connections")
    fig.savefig(dst, dpi=110, bbox_inches="tight")
    print(f"bench: plotted {dst}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
