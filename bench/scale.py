#!/usr/bin/env python3
"""cardume at scale (issue 15, item 7): a local cluster of 100 nodes.

Run with the project's interpreter:
    .venv/bin/python bench/scale.py [--nodes N] [--instances N] [--adds N] [--repeat N]
                                    [--root DIR] [--keep] [--json PATH]

It brings up a ``cardume vcluster`` of N nodes (default 100) in a temporary directory, on the
first free range 127.0.K.11.. with K >= 10 (away from the integration tests' and bench/run.py's
ranges), times that, then measures ``gnt-node list``, ``gnt-cluster verify`` and
``gnt-instance add`` through the real commands, the node daemons' and the master's memory,
and (with --instances) ``gnt-instance list`` at that many instances spread over the nodes. It
prints a table and writes the figures to bench/results/scale-latest.json. Figures only:
nothing here asserts a time. There is no Ganeti column: the Ganeti peer on this machine
has 3 nodes (one network namespace each) and cannot be grown to 100. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cardume.vcluster import loopback
from run import (
    BIN,
    ENV,
    FIXTURE_OS,
    OS_NAME,
    REPO,
    BenchError,
    create_op,
    fmt,
    git_head,
    loadavg,
    rss_kib,
    run_timed,
)

DEFAULT_JSON = REPO / "bench" / "results" / "scale-latest.json"
NODED_PORT = 1811
NODE_LIST_FIELDS = ["name", "dtotal", "dfree", "mtotal", "mnode", "mfree", "pinst_cnt",
                    "sinst_cnt"]  # gnt-node list's default columns
INSTANCE_LIST_FIELDS = ["name", "hypervisor", "os", "pnode", "status", "oper_ram"]
GROW_BATCH = 500  # jobs per SubmitManyJobs while growing the instance count


def free_base_ip(count: int) -> str:
    """127.0.K.11 (K >= 10) whose ``count`` addresses are all free on the node daemon port.
    The tests use 127.0.0-5.*, their instances 127.0.9.*, bench/run.py 127.0.K.41.."""
    bases = (f"127.0.{third}.11" for third in range(10, 250))
    for base in loopback.free_ranges(bases, count, NODED_PORT):
        return base
    raise BenchError(f"no free loopback range of {count} addresses for the cluster")


def median_ms(times: list[float]) -> float:
    return 1000 * statistics.median(times)


class Cluster:
    """The measured cluster: one this script brings up (and removes), or --root's."""

    def __init__(self, root: str | None, nodes: int) -> None:
        self.own = root is None
        self.tmp = tempfile.mkdtemp(prefix="cardume-scale-") if root is None else None
        self.root = os.path.abspath(root) if root else os.path.join(str(self.tmp), "vc")
        self.nodes = nodes
        self.env = dict(ENV, CARDUME_ROOT=self.root)
        self.env.pop("CARDUME_NODE", None)

    def cmd(self, name: str) -> str:
        path = BIN / name
        if not path.exists():
            raise BenchError(f"{path} is missing: run this with the project's .venv/bin/python")
        return str(path)

    def up(self, base_ip: str | None) -> float:
        """Seconds `cardume vcluster up --nodes N` takes."""
        argv = [self.cmd("cardume"), "vcluster", "up", "--nodes", str(self.nodes),
                "--root", self.root]
        if self.own:
            argv += ["--base-ip", base_ip or free_base_ip(self.nodes)]
        elapsed, _ = run_timed(argv, self.env, timeout=900)
        os_dir = os.path.join(self.root, "os", "dummy")
        if not os.path.isdir(os_dir):
            shutil.copytree(FIXTURE_OS, os_dir)
        return elapsed

    def down(self) -> None:
        if not self.own:
            return
        if os.path.isdir(os.path.join(self.root, "nodes")):
            with contextlib.suppress(BenchError):
                run_timed([self.cmd("cardume"), "vcluster", "down", "--purge", "--root",
                           self.root], self.env, timeout=600)
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def pid(self, node: str, daemon: str) -> int | None:
        try:
            with open(os.path.join(self.root, "nodes", node, "run", f"{daemon}.pid"),
                      encoding="ascii") as handle:
                return int(handle.read().strip())
        except (OSError, ValueError):
            return None

    def node_names(self) -> list[str]:
        return sorted(os.listdir(os.path.join(self.root, "nodes")),
                      key=lambda n: int(n[4:]) if n[4:].isdigit() else 0)

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        from cardume.master.client import Client, master_socket_path
        with Client(master_socket_path(self.env)) as client:
            yield client

    def gnt(self, command: str, *args: str, timeout: float = 300.0) -> tuple[float, str]:
        return run_timed([self.cmd(command), *args], self.env, timeout=timeout)

    def cpu_seconds(self, daemon: str) -> float:
        """CPU time (user + system) all of this cluster's ``daemon`` processes used so far."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for node in self.node_names():
            pid = self.pid(node, daemon)
            if pid is None:
                continue
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
                    fields = handle.read().rpartition(")")[2].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
        return total


class Scale:
    def __init__(self, cluster: Cluster, args: argparse.Namespace) -> None:
        self.cluster = cluster
        self.args = args
        self.figures: dict[str, dict[str, Any]] = {}
        self.run = f"{int(time.time()) % 100000:05d}"  # names new on an existing --root

    def figure(self, key: str, label: str, unit: str, value: float | None,
               note: str = "", **raw: Any) -> None:
        self.figures[key] = {"label": label, "unit": unit, "value": value, "note": note, **raw}
        print(f"  {label}: {fmt(value)} {unit}" + (f"  ({note})" if note else ""), flush=True)

    def repeated(self, command: str, *args: str, count: int) -> list[float]:
        self.cluster.gnt(command, *args)  # warm-up: the CLI's bytecode, the master's pool
        return [self.cluster.gnt(command, *args)[0] for _ in range(count)]

    def node_list(self, suffix: str = "", label: str = "") -> None:
        c = self.cluster
        cpu_before = c.cpu_seconds("noded")
        times = self.repeated("gnt-node", "list", count=self.args.repeat)
        noded_cpu = (c.cpu_seconds("noded") - cpu_before) / (self.args.repeat + 1)
        out = c.gnt("gnt-node", "list", "--no-headers", "-o", "name,role,offline")[1]
        rows = [line.split() for line in out.splitlines()]
        self.figure(f"node_list{suffix}_ms", f"gnt-node list{label}", "ms", median_ms(times),
                    f"median of {len(times)}; {len(rows)} nodes listed; the node daemons "
                    f"used {1000 * noded_cpu:.0f} ms of CPU per list",
                    times=times, noded_cpu_ms=1000 * noded_cpu)
        with c.client() as client:
            query = []
            for _ in range(self.args.repeat):
                began = time.perf_counter()
                client.call("Query", "node", NODE_LIST_FIELDS, [])
                query.append(time.perf_counter() - began)
        self.figure(f"node_query{suffix}_ms", f"  of which the master's Query{label}", "ms",
                    median_ms(query), "LUXI Query of the same columns, without the CLI",
                    times=query)

    def verify(self) -> None:
        times = self.repeated("gnt-cluster", "verify", count=self.args.verify_repeat)
        self.figure("verify_ms", "gnt-cluster verify", "ms", median_ms(times),
                    f"median of {len(times)}", times=times)

    def adds(self, tag: str, label: str) -> None:
        nodes = self.cluster.node_names()
        times = []
        for i in range(self.args.adds):
            node = nodes[-1 - i % len(nodes)]  # the last nodes: the last ones added
            times.append(self.cluster.gnt(
                "gnt-instance", "add", "-t", "diskless", "-B", "memory=128", "-o", OS_NAME,
                "-n", node, "--no-name-check", "--no-ip-check", f"{tag}{self.run}-{i}")[0])
        self.figure(f"add_{tag}_ms", f"gnt-instance add{label}", "ms", median_ms(times),
                    f"median of {len(times)}: diskless, OS install and start, on the last "
                    "nodes", times=times)

    def rss(self) -> None:
        c = self.cluster
        noded = []
        for node in c.node_names():
            pid = c.pid(node, "noded")
            if pid is not None:
                noded.append(rss_kib(pid)[0] / 1024)
        self.figure("noded_rss_median_mib", "node daemon RSS, median", "MiB",
                    statistics.median(noded), f"VmRSS of {len(noded)} node daemons",
                    all=noded)
        self.figure("noded_rss_max_mib", "node daemon RSS, max", "MiB", max(noded))
        master = None
        for node in c.node_names():
            pid = c.pid(node, "masterd")
            if pid is not None:
                master = rss_kib(pid)
        if master is not None:
            self.figure("masterd_rss_mib", "master daemon RSS", "MiB", master[0] / 1024,
                        f"peak (VmHWM) {master[1] / 1024:.0f} MiB")

    def grow(self, total: int) -> None:
        """Create instances (no start, no install) round-robin over the nodes until the
        cluster has ``total``, in SubmitManyJobs batches."""
        nodes = self.cluster.node_names()
        with self.cluster.client() as client:
            have = len(client.call("Query", "instance", ["name"], None)["data"])
            began = time.perf_counter()
            made = 0
            while have < total:
                batch = [[create_op(f"s{self.run}-{n}", nodes[n % len(nodes)], OS_NAME, start=False,
                                    install=False)]
                         for n in range(have, min(total, have + GROW_BATCH))]
                results = client.call("SubmitManyJobs", batch)
                for ok, value in results:
                    if not ok:
                        raise BenchError(f"the master refused a job: {value}")
                    client.wait_job(int(value), feedback=False)
                have += len(batch)
                made += len(batch)
            elapsed = time.perf_counter() - began
        if made:
            self.figure("grow_per_s", f"growth to {total:,} instances", "inst/s",
                        made / elapsed, f"{made} creates (no start, no install) in "
                        f"{elapsed:.0f} s")

    def instance_list(self, total: int) -> None:
        times = self.repeated("gnt-instance", "list", count=self.args.repeat)
        self.figure("instance_list_ms", f"gnt-instance list at {total:,} instances", "ms",
                    median_ms(times), f"median of {len(times)}", times=times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100, help="cluster size (default 100)")
    parser.add_argument("--instances", type=int, default=0, metavar="N",
                        help="also grow to N instances and list them (e.g. 10000)")
    parser.add_argument("--adds", type=int, default=5, help="gnt-instance adds (median)")
    parser.add_argument("--repeat", type=int, default=10, help="repetitions of each list")
    parser.add_argument("--verify-repeat", type=int, default=5,
                        help="repetitions of gnt-cluster verify")
    parser.add_argument("--root", metavar="DIR",
                        help="measure this local cluster (brought up to --nodes if needed) "
                             "instead of a new one; it is left running")
    parser.add_argument("--base-ip", help="first address of a new cluster (default: the "
                                          "first free 127.0.K.11, K >= 10)")
    parser.add_argument("--keep", action="store_true",
                        help="leave the new cluster running (its root is printed)")
    parser.add_argument("--json", default=str(DEFAULT_JSON), metavar="PATH",
                        help=f"where to write the figures (default {DEFAULT_JSON})")
    args = parser.parse_args(argv)
    if not 1 <= args.nodes <= 200:
        parser.error(f"invalid --nodes {args.nodes}: expected 1..200")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cluster = Cluster(args.root, args.nodes)
    scale = Scale(cluster, args)
    load_start = loadavg()
    started = time.time()
    print(f"cardume at scale: {args.nodes} nodes, {os.cpu_count()} CPUs, load "
          f"{load_start:.2f}", flush=True)
    try:
        up = cluster.up(args.base_ip)
        scale.figure("up_s", f"cardume vcluster up --nodes {args.nodes}", "s", up,
                     "from nothing" if cluster.own else "an existing cluster: only what "
                     "was missing")
        scale.node_list()
        scale.verify()
        scale.adds("add", "")
        scale.rss()
        if args.instances:
            scale.grow(args.instances)
            scale.instance_list(args.instances)
            scale.node_list("_top", f" at {args.instances:,} instances")
            scale.adds("addtop", f" at {args.instances:,} instances")
            scale.rss()
    except BenchError as err:
        print(f"scale: {err}", file=sys.stderr)
        return 1
    finally:
        if args.keep and cluster.own:
            print(f"kept the cluster: export CARDUME_ROOT={cluster.root}")
        else:
            cluster.down()
    result = {
        "started": started, "duration_s": time.time() - started,
        "host": {"cpus": os.cpu_count(), "load_start": load_start, "load_end": loadavg(),
                 "python": platform.python_version(), "platform": platform.platform()},
        "cardume": {"nodes": args.nodes, "instances": args.instances, "commit": git_head()},
        "ganeti": None,
        "figures": scale.figures,
    }
    print(f"load {load_start:.2f} at start, {loadavg():.2f} at end")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
        handle.write("\n")
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
