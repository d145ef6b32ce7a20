#!/usr/bin/env python3
"""The REST API's figures (issue 13), with the Ganeti peer's at 200 instances beside them.

Run with the project's interpreter:  .venv/bin/python bench/rapi.py [--sizes 200,1000,10000]
    [--repeat 7] [--jobs 200] [--peer auto|yes|no]

It brings up its own 3-node local cluster (bench/run.py's LocalCluster), grows it to each
size with diskless, never-started instances (the fast path of bench/run.py), and at each
size times ``GET /2/instances?bulk=1`` and ``GET /2/nodes?bulk=1``: over one kept-alive
HTTPS connection (http.client, the median of --repeat) and with a new curl each time (TLS
handshake included, as the peer is measured); and the ``/metrics`` scrape (issue 16).
Then job submissions per second through the REST API (``PUT /2/tags?tag=...``, each reply
a job id; one connection, then 4 at once) and the REST daemon's RSS. The peer, when it is
up, gets 200 instances of its own (prefixed ``cbench-``, removed at the end) and is timed
with curl inside its node1. Figures only: nothing here asserts a time. Results also go to
bench/results/rapi.json.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import run as bench  # bench/run.py: the local cluster, the create opcode, the peer

RESULTS = bench.REPO / "bench" / "results" / "rapi.json"
PEER_SIZE = 200
PEER_LOGIN = "gnt-admin:gntpass"  # the peer's RAPI user (shared/peers/ganeti)


class Rapi:
    """The cardume REST API of a local cluster: a kept-alive connection and curl."""

    def __init__(self, cluster: bench.LocalCluster) -> None:
        from cardume import paths
        deadline = time.monotonic() + 30
        where = None
        while where is None:
            where = paths.read_json(os.path.join(cluster.node_dir(1), "run", "rapi.json"))
            if where is None and time.monotonic() > deadline:
                raise bench.BenchError("the REST daemon did not start")
            time.sleep(0.05)
        self.host, self.port = str(where["address"]), int(where["port"])
        self.pid = int(where["pid"])
        self.login = Path(cluster.root, "rapi-credentials").read_text().strip()
        self.auth = {"Authorization": "Basic " + base64.b64encode(self.login.encode()).decode()}
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE

    def connection(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=300)

    def request(self, conn: http.client.HTTPSConnection, method: str, path: str) -> bytes:
        conn.request(method, path, headers=self.auth)
        reply = conn.getresponse()
        body = reply.read()
        if reply.status != 200:
            raise bench.BenchError(f"{method} {path}: {reply.status} {body[:200]!r}")
        return body

    def timed_gets(self, path: str, repeat: int) -> tuple[float, float, int]:
        """(median ms, min ms, reply bytes) over one kept-alive connection."""
        conn = self.connection()
        try:
            size = len(self.request(conn, "GET", path))  # warm-up, and the connection
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                self.request(conn, "GET", path)
                times.append((time.perf_counter() - start) * 1000)
        finally:
            conn.close()
        return statistics.median(times), min(times), size

    def curl_ms(self, path: str, repeat: int) -> float:
        url = f"https://{self.host}:{self.port}{path}"
        return curl_median(["curl", "-sk", "-u", self.login, "-o", "/dev/null",
                            "-w", "%{time_total}", url], repeat)

    def submissions_per_second(self, jobs: int, threads: int) -> float:
        """``PUT /2/tags?tag=bench`` (a cluster tag job) ``jobs`` times, over ``threads``
        kept-alive connections; job ids per second (the jobs' running is not waited for)."""
        per_thread = jobs // threads
        errors: list[str] = []

        def submit() -> None:
            conn = self.connection()
            try:
                for _ in range(per_thread):
                    job = json.loads(self.request(conn, "PUT", "/2/tags?tag=bench"))
                    if not isinstance(job, int) and not str(job).isdigit():
                        errors.append(f"not a job id: {job!r}")
            except Exception as err:  # reported below, with the figure withheld
                errors.append(str(err))
            finally:
                conn.close()

        workers = [threading.Thread(target=submit) for _ in range(threads)]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - start
        if errors:
            raise bench.BenchError(f"{len(errors)} submissions failed, e.g. {errors[0]}")
        return per_thread * threads / elapsed


def curl_median(argv: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise bench.BenchError(f"{' '.join(argv[:3])} ... exited {out.returncode}")
        times.append(float(out.stdout.strip().splitlines()[-1]) * 1000)
    return statistics.median(times)


def wait_jobs_done(cluster: bench.LocalCluster, timeout: float = 600) -> None:
    """Until the master runs nothing (the tag jobs of the submission figure)."""
    deadline = time.monotonic() + timeout
    with cluster.client() as client:
        while time.monotonic() < deadline:
            rows = client.call("Query", "job", ["status"], None)["data"]
            if all(row[0] in ("success", "error", "canceling", "canceled") for row in rows):
                return
            time.sleep(0.2)
    raise bench.BenchError("jobs still running after the submission figure")


def grow(cluster: bench.LocalCluster, target: int) -> None:
    have = len(bench.instance_names(cluster))
    while have < target:
        size = min(bench.GROW_BATCH, target - have)
        jobs = [[bench.create_op(f"r{have + i}", f"node{(have + i) % bench.NODES + 1}",
                                 bench.OS_NAME, start=False, install=False)]
                for i in range(size)]
        bench.submit_and_wait(cluster, jobs)
        have += size


def peer_figures(peer: bench.Peer, workdir: str, repeat: int) -> dict[str, Any]:
    names = [f"{bench.PEER_PREFIX}rapi{i}" for i in range(PEER_SIZE)]
    have = set(peer.instance_names())
    missing = [n for n in names if n not in have]
    if missing:
        print(f"  creating {len(missing)} instances on the peer", file=sys.stderr)
        peer.create(missing, peer.node_names(), workdir, "rapi", start=False, install=False)
    count = len(peer.instance_names())
    figures: dict[str, Any] = {"instances": count}
    for key, path in (("instances_bulk_ms", "/2/instances?bulk=1"),
                      ("nodes_bulk_ms", "/2/nodes?bulk=1")):
        figures[key] = curl_median(peer.on(1, "curl", "-sk", "-u", PEER_LOGIN, "-o",
                                           "/dev/null", "-w", "%{time_total}",
                                           f"https://127.0.0.1:5080{path}"), repeat)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,1000,10000", help="instance counts")
    parser.add_argument("--repeat", type=int, default=7, help="timed requests per figure")
    parser.add_argument("--jobs", type=int, default=200, help="submissions per rate figure")
    parser.add_argument("--peer", choices=["auto", "yes", "no"], default="auto")
    args = parser.parse_args()
    try:
        sizes = sorted(int(s) for s in args.sizes.split(","))
    except ValueError:
        parser.error(f"--sizes {args.sizes!r}: expected counts like 200,1000,10000")
    peer, why = (None, "not asked") if args.peer == "no" else bench.Peer.find()
    if peer is None and args.peer == "yes":
        print(f"the Ganeti peer is not available: {why}", file=sys.stderr)
        return 1
    cluster = bench.LocalCluster(bench.NODES)
    workdir = tempfile.mkdtemp(prefix="cardume-bench-rapi-")
    results: dict[str, Any] = {"sizes": {}, "peer": None}
    try:
        print("bringing up a 3-node cardume vcluster", file=sys.stderr)
        cluster.up()
        os_dir = os.path.join(cluster.root, "os")
        os.makedirs(os_dir, exist_ok=True)
        shutil.copytree(bench.FIXTURE_OS, os.path.join(os_dir, "dummy"))
        rapi = Rapi(cluster)
        for size in sizes:
            print(f"growing to {size:,} instances", file=sys.stderr)
            grow(cluster, size)
            inst = rapi.timed_gets("/2/instances?bulk=1", args.repeat)
            nodes = rapi.timed_gets("/2/nodes?bulk=1", args.repeat)
            scrape = rapi.timed_gets("/metrics", args.repeat)
            results["sizes"][size] = {
                "instances_bulk_ms": inst[0], "instances_bulk_min_ms": inst[1],
                "instances_bulk_bytes": inst[2], "nodes_bulk_ms": nodes[0],
                "instances_bulk_curl_ms": rapi.curl_ms("/2/instances?bulk=1", args.repeat),
                "nodes_bulk_curl_ms": rapi.curl_ms("/2/nodes?bulk=1", args.repeat),
                "metrics_ms": scrape[0], "metrics_bytes": scrape[2],
                "rapi_rss_kib": bench.rss_kib(rapi.pid)[0],
            }
        print("job submissions through the REST API", file=sys.stderr)
        results["submit_per_s_1"] = rapi.submissions_per_second(args.jobs, 1)
        wait_jobs_done(cluster)
        results["submit_per_s_4"] = rapi.submissions_per_second(args.jobs, 4)
        wait_jobs_done(cluster)
        results["rapi_rss_kib"], results["rapi_hwm_kib"] = bench.rss_kib(rapi.pid)
        if peer is not None:
            print(f"the Ganeti peer at {PEER_SIZE} instances", file=sys.stderr)
            try:
                results["peer"] = peer_figures(peer, workdir, args.repeat)
            finally:
                peer.remove_bench_instances(workdir)
    except bench.BenchError as err:
        print(f"benchmark failed: {err}", file=sys.stderr)
        return 1
    finally:
        cluster.down()
        shutil.rmtree(workdir, ignore_errors=True)
    report(results, peer is None and why)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    return 0


def report(results: dict[str, Any], no_peer: str | bool) -> None:
    peer = results.get("peer")
    print(f"{'figure':58} {'cardume':>10} {'ganeti':>10}")
    for size, fig in results["sizes"].items():
        theirs = peer if peer and size == PEER_SIZE else None
        rows = [
            (f"GET /2/instances?bulk=1 at {size:,}, kept-alive (ms)",
             fig["instances_bulk_ms"], None),
            (f"GET /2/instances?bulk=1 at {size:,}, curl (ms)", fig["instances_bulk_curl_ms"],
             theirs and theirs["instances_bulk_ms"]),
            (f"GET /2/nodes?bulk=1 at {size:,}, kept-alive (ms)", fig["nodes_bulk_ms"], None),
            (f"GET /2/nodes?bulk=1 at {size:,}, curl (ms)", fig["nodes_bulk_curl_ms"],
             theirs and theirs["nodes_bulk_ms"]),
            (f"bulk reply at {size:,} (KiB)", fig["instances_bulk_bytes"] / 1024, None),
            (f"GET /metrics at {size:,}, kept-alive (ms)", fig["metrics_ms"], None),
            (f"/metrics page at {size:,} (KiB)", fig["metrics_bytes"] / 1024, None),
            (f"REST daemon RSS at {size:,} (MiB)", fig["rapi_rss_kib"] / 1024, None),
        ]
        for label, ours, ganeti in rows:
            theirs_text = "-" if ganeti is None else f"{ganeti:.1f}"
            print(f"{label:58} {ours:10.1f} {theirs_text:>10}")
    print(f"{'job submissions through RAPI, 1 connection (/s)':58} "
          f"{results['submit_per_s_1']:10.1f}")
    print(f"{'job submissions through RAPI, 4 connections (/s)':58} "
          f"{results['submit_per_s_4']:10.1f}")
    print(f"{'REST daemon RSS / peak at the end (MiB)':58} "
          f"{results['rapi_rss_kib'] / 1024:6.1f} / {results['rapi_hwm_kib'] / 1024:.1f}")
    if peer:
        print(f"(ganeti: curl inside its node1, at {peer['instances']} instances)")
    elif no_peer:
        print(f"(no Ganeti peer: {no_peer})")


if __name__ == "__main__":
    sys.exit(main())
