#!/usr/bin/env python3
"""The web console's figures (issue 16): the server time of the dashboard and of the
instance list page at 1,000 and 10,000 instances (goal: under 0.3 s at 10,000).

Run with the project's interpreter:  .venv/bin/python bench/ui.py [--sizes 1000,10000]
    [--repeat 7]

It brings up its own 3-node local cluster (bench/run.py's LocalCluster), grows it with
diskless, never-started instances (bench/rapi.py's grow), logs in to the console as the
cluster's REST user and, at each size, GETs each page --repeat times over one kept-alive
HTTPS connection. The figure is the median of the console's own ``Server-Timing`` (the page
made, master queries included); the request's round trip is printed beside it. Pages: the
dashboard (/ui/), the instance list's first page (100 of them, by name), a filtered and
sorted list (stopped ones by memory, descending), the list's last page, one instance's
page and the jobs list (the growth leaves one job per instance). Results also go to
bench/results/ui.json. Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import rapi as rapi_bench  # bench/rapi.py: the REST daemon's address, grow
import run as bench  # bench/run.py: the local cluster

RESULTS = bench.REPO / "bench" / "results" / "ui.json"
PAGES = {
    "dashboard": "/ui/",
    "instances": "/ui/instances",
    "instances_filtered_sorted": "/ui/instances?status=ADMIN_down&sort=memory&order=desc",
    "instances_last_page": "/ui/instances?sort=name&page=1000000",
    "instance": "/ui/instances/r5",
    "jobs": "/ui/jobs",
}
GOAL_MS = 300.0


class Console:
    """A logged-in console session over one kept-alive connection."""

    def __init__(self, rest: rapi_bench.Rapi) -> None:
        self.rest = rest
        self.conn = rest.connection()
        self.cookie = ""
        user, _, password = rest.login.partition(":")
        origin = f"https://{rest.host}:{rest.port}"
        self.conn.request("POST", "/ui/login", body=urlencode(
            {"user": user, "password": password}), headers={
                "Content-Type": "application/x-www-form-urlencoded", "Origin": origin})
        reply = self.conn.getresponse()
        reply.read()
        if reply.status != 303:
            raise bench.BenchError(f"console login: {reply.status}")
        self.cookie = (reply.getheader("Set-Cookie") or "").split(";", 1)[0]

    def get(self, path: str) -> tuple[float, float, int]:
        """(server ms, round trip ms, bytes) of one GET."""
        start = time.perf_counter()
        self.conn.request("GET", path, headers={"Cookie": self.cookie})
        reply = self.conn.getresponse()
        body = reply.read()
        trip = (time.perf_counter() - start) * 1000
        if reply.status != 200:
            raise bench.BenchError(f"GET {path}: {reply.status} {body[:200]!r}")
        found = re.search(r"dur=([\d.]+)", reply.getheader("Server-Timing") or "")
        return float(found.group(1)) if found else trip, trip, len(body)

    def timed(self, path: str, repeat: int) -> dict[str, Any]:
        self.get(path)  # warm-up
        runs = [self.get(path) for _ in range(repeat)]
        return {"server_ms": statistics.median(r[0] for r in runs),
                "round_trip_ms": statistics.median(r[1] for r in runs),
                "bytes": runs[-1][2]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="instance counts")
    parser.add_argument("--repeat", type=int, default=7, help="timed requests per figure")
    args = parser.parse_args()
    try:
        sizes = sorted(int(s) for s in args.sizes.split(","))
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: expected counts like 1000,10000")
    cluster = bench.LocalCluster(bench.NODES)
    results: dict[str, Any] = {"sizes": {}, "goal_ms": GOAL_MS}
    try:
        print("bringing up a 3-node cardume vcluster", file=sys.stderr)
        cluster.up()
        os_dir = Path(cluster.root, "os")
        os_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(bench.FIXTURE_OS, os_dir / "dummy")
        rest = rapi_bench.Rapi(cluster)
        for size in sizes:
            print(f"growing to {size:,} instances", file=sys.stderr)
            rapi_bench.grow(cluster, size)
            console = Console(rest)
            results["sizes"][size] = {name: console.timed(path, args.repeat)
                                      for name, path in PAGES.items()}
            console.conn.close()
    except bench.BenchError as err:
        print(f"benchmark failed: {err}", file=sys.stderr)
        return 1
    finally:
        cluster.down()
    print(f"{'page':34} {'instances':>10} {'server ms':>10} {'round trip':>11} {'KiB':>8}")
    for size, pages in results["sizes"].items():
        for name, fig in pages.items():
            mark = "" if fig["server_ms"] <= GOAL_MS or size < 10000 else "  (over the goal)"
            print(f"{name:34} {size:>10,} {fig['server_ms']:>10.1f} "
                  f"{fig['round_trip_ms']:>11.1f} {fig['bytes'] / 1024:>8.0f}{mark}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
