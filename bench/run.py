#!/usr/bin/env python3
"""cardume's benchmarks for the cluster core (issue 2), side by side with a real Ganeti peer.

Run with the project's interpreter:  .venv/bin/python bench/run.py [--peer auto|yes|no] [--quick]

It brings up its own 3-node local cluster in a temporary directory (on a free loopback range),
measures, stops and deletes it, prints a table (figure, cardume, ganeti, ratio) and writes the
same figures as JSON to bench/results/latest.json. Figures only: nothing here asserts a time.
See bench/README.md for what each figure means and how the peer is measured.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the .venv/bin holding the gnt-* entry points
DEFAULT_JSON = REPO / "bench" / "results" / "latest.json"
NODES = 3
NODED_PORT = 1811
DELAY_OP = {"OP_ID": "OP_TEST_DELAY", "duration": 0}
# Ganeti 3.0.2 refuses a delay of 0 ("Duration must be greater than zero").
PEER_DELAY = 0.001
PEER_DIRS = [REPO.parent / "shared" / "peers" / "ganeti", Path("/work/shared/peers/ganeti")]
# Installed Python programs run from cached bytecode (Debian precompiles Ganeti's); a
# PYTHONDONTWRITEBYTECODE inherited from a developer's shell would make every cardume command
# recompile its modules on each start, so the benchmark's commands run without it.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
PEER_DAEMONS = ("ganeti-noded", "ganeti-confd", "ganeti-wconfd", "ganeti-rapi",
                "ganeti-luxid", "ganeti-mond", "ganeti-kvmd", "ganeti-metad")


class BenchError(Exception):
    """A benchmark step failed (not a slow figure: a command or a job that did not work)."""


@dataclass
class Counts:
    """How many repetitions each figure takes."""

    cli_start: int = 20
    delay_cli: int = 50
    peer_delay_cli: int = 10
    burst_jobs: int = 200
    bursts: int = 5
    peer_burst_jobs: int = 200
    socket_serial: int = 500
    node_list: int = 20
    peer_node_list: int = 10

    @classmethod
    def quick(cls) -> Counts:
        return cls(cli_start=3, delay_cli=5, peer_delay_cli=3, burst_jobs=200, bursts=1,
                   peer_burst_jobs=20, socket_serial=50, node_list=3, peer_node_list=3)


@dataclass
class Figure:
    key: str
    label: str
    unit: str
    better: str  # "lower" or "higher"
    cardume: float | None = None
    ganeti: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        """How many times better cardume is than the peer (>1: cardume is better)."""
        if not self.cardume or not self.ganeti:
            return None
        if self.better == "higher":
            return self.cardume / self.ganeti
        return self.ganeti / self.cardume


# --- helpers ------------------------------------------------------------------------------


def run_timed(argv: Sequence[str], env: dict[str, str] | None = None,
              timeout: float = 300.0) -> tuple[float, str]:
    """Run a command to completion; its wall time in seconds and its stdout. Fails loudly."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(list(argv), env=ENV if env is None else env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{' '.join(argv)} did not finish in {timeout:.0f}s") from None
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise BenchError(f"{' '.join(argv)} exited with {proc.returncode}: {' | '.join(tail)}")
    return elapsed, proc.stdout


def repeat(argv: Sequence[str], count: int, env: dict[str, str] | None = None,
           warmup: int = 1) -> list[float]:
    """Wall times of ``count`` runs of a command, after ``warmup`` runs that are not kept."""
    for _ in range(warmup):
        run_timed(argv, env)
    return [run_timed(argv, env)[0] for _ in range(count)]


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB."""
    values = {"VmRSS": 0, "VmHWM": 0}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def port_free(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the daemons bind
        try:
            sock.bind((ip, port))
        except OSError:
            return False
    return True


def free_base_ips(count: int) -> list[str]:
    """Loopback ranges 127.0.N.41.. whose addresses are all free on the node daemon port."""
    found = []
    for third in range(0, 250):
        base = ipaddress.IPv4Address(f"127.0.{third}.41")
        if all(port_free(str(base + i), NODED_PORT) for i in range(count)):
            found.append(str(base))
            if len(found) == 3:
                break
    return found


# --- the cardume side ---------------------------------------------------------------------


class LocalCluster:
    """A throw-away `cardume vcluster` in a temporary directory."""

    def __init__(self, nodes: int) -> None:
        self.nodes = nodes
        self.tmp = tempfile.mkdtemp(prefix="cardume-bench-")
        self.root = os.path.join(self.tmp, "vc")
        self.base_ip: str | None = None
        self.env = dict(ENV, CARDUME_ROOT=self.root)
        self.env.pop("CARDUME_NODE", None)

    def cmd(self, name: str) -> str:
        path = BIN / name
        if not path.exists():
            raise BenchError(f"{path} is missing: run this with the project's .venv/bin/python")
        return str(path)

    def up(self) -> None:
        candidates = free_base_ips(self.nodes)
        if not candidates:
            raise BenchError("no free loopback range 127.0.N.41.. for the benchmark cluster")
        last = ""
        for base_ip in candidates:  # another cluster may grab a range between check and use
            try:
                run_timed([self.cmd("cardume"), "vcluster", "up", "--nodes", str(self.nodes),
                           "--root", self.root, "--base-ip", base_ip], self.env, timeout=120)
                self.base_ip = base_ip
                return
            except BenchError as err:
                last = str(err)
                self.down(purge=True)
        raise BenchError(f"could not bring up the benchmark cluster: {last}")

    def down(self, purge: bool = True) -> None:
        if os.path.isdir(os.path.join(self.root, "nodes")):
            argv = [self.cmd("cardume"), "vcluster", "down", "--root", self.root]
            subprocess.run(argv + (["--purge"] if purge else []), env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def node_dir(self, index: int) -> str:
        return os.path.join(self.root, "nodes", f"node{index}")

    @property
    def master_socket(self) -> str:
        return os.path.join(self.node_dir(1), "run", "master.sock")

    def pid(self, index: int, daemon: str) -> int | None:
        try:
            with open(os.path.join(self.node_dir(index), "run", f"{daemon}.pid"),
                      encoding="ascii") as handle:
                return int(handle.read().strip())
        except (OSError, ValueError):
            return None

    def client(self) -> Any:
        from cardume.cli.luxi import Client
        return Client(self.master_socket)


def burst(cluster: LocalCluster, jobs: int) -> float:
    """Submit ``jobs`` delay jobs in one SubmitManyJobs; seconds until all of them ended."""
    from cardume import errors
    with cluster.client() as client:
        start = time.perf_counter()
        results = client.call("SubmitManyJobs", [[dict(DELAY_OP)] for _ in range(jobs)])
        ids = []
        for ok, value in results:
            if not ok:
                raise BenchError(f"the master refused a job: {value}")
            ids.append(int(value))
        failed = []
        for job_id in ids:
            try:
                client.wait_job(job_id, feedback=False)
            except errors.CardumeError as err:
                failed.append(f"{job_id}: {err}")
        elapsed = time.perf_counter() - start
    if failed:
        raise BenchError(f"{len(failed)} of {jobs} burst jobs failed, e.g. {failed[0]}")
    return elapsed


def socket_serial(cluster: LocalCluster, jobs: int) -> float:
    """Submit a delay job and wait for it, ``jobs`` times over one connection; seconds."""
    with cluster.client() as client:
        client.wait_job(client.submit([dict(DELAY_OP)]), feedback=False)  # warm-up
        start = time.perf_counter()
        for _ in range(jobs):
            client.wait_job(client.submit([dict(DELAY_OP)]), feedback=False)
        return time.perf_counter() - start


# --- the Ganeti peer ----------------------------------------------------------------------


class Peer:
    """The real Ganeti 3.0.2 cluster of shared/peers/ganeti, driven through its ``gx``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.gx = str(directory / "gx")
        self.version = "?"

    @classmethod
    def find(cls) -> tuple[Peer | None, str]:
        """The peer if it is up and answers, else None and why not."""
        if not os.path.exists("/run/netns/gnt-n1"):
            return None, "/run/netns/gnt-n1 does not exist (start it with setup.sh 3)"
        for directory in PEER_DIRS:
            if (directory / "gx").exists():
                peer = cls(directory)
                try:
                    _, out = run_timed(peer.on(1, "gnt-cluster", "version"), timeout=60)
                except BenchError as err:
                    return None, f"gx does not work: {err}"
                peer.version = next((line.split(":", 1)[1].strip() for line in out.splitlines()
                                     if line.startswith("Software version:")), "?")
                return peer, ""
        return None, "no gx script in " + ", ".join(str(d) for d in PEER_DIRS)

    def on(self, node: int, *argv: str) -> list[str]:
        return [self.gx, str(node), *argv]

    def node_count(self) -> int:
        return len([n for n in os.listdir("/run/netns") if n.startswith("gnt-n")])

    def submit_job_burst(self, jobs: int, workdir: str) -> tuple[float, float, str]:
        """`gnt-debug submit-job --job-repeat=N --timing-stats`: (T:total or wall, wall, raw)."""
        opfile = os.path.join(workdir, "peer-delay.json")
        with open(opfile, "w", encoding="ascii") as handle:
            json.dump([{"OP_ID": "OP_TEST_DELAY", "duration": PEER_DELAY}], handle)
        run_timed(self.on(1, "test", "-r", opfile))  # /tmp is shared with the peer's nodes
        wall, out = run_timed(self.on(1, "gnt-debug", "submit-job", f"--job-repeat={jobs}",
                                      "--timing-stats", opfile), timeout=1800)
        stats = {}
        for line in out.splitlines():
            if line.startswith("T:"):
                key, _, value = line[2:].partition(" ")
                with contextlib.suppress(ValueError):
                    stats[key.strip()] = float(value)
        timing = " ".join(f"T:{k}={v:.2f}s" for k, v in stats.items())
        return stats.get("total", wall), wall, timing

    def daemons(self) -> dict[int, list[tuple[str, int, int, int]]]:
        """Per peer node: (daemon, pid, VmRSS KiB, VmHWM KiB), told apart by network namespace."""
        netns = {}
        for name in os.listdir("/run/netns"):
            if name.startswith("gnt-n") and name[5:].isdigit():
                netns[os.stat(f"/run/netns/{name}").st_ino] = int(name[5:])
        found: dict[int, list[tuple[str, int, int, int]]] = {i: [] for i in netns.values()}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    argv = handle.read().split(b"\0")
                node = netns.get(os.stat(f"/proc/{pid}/ns/net").st_ino)
                if node is None:
                    continue
                names = [os.path.basename(a.decode(errors="replace")) for a in argv[:2]]
                daemon = next((n for n in names if n in PEER_DAEMONS), None)
                if daemon is None:
                    continue
                rss, hwm = rss_kib(pid)
            except (OSError, ValueError):
                continue
            found[node].append((daemon, pid, rss, hwm))
        for rows in found.values():
            rows.sort()
        return found


# --- the run ------------------------------------------------------------------------------


class Bench:
    def __init__(self, counts: Counts, peer: Peer | None, quick: bool) -> None:
        self.counts = counts
        self.peer = peer
        self.quick = quick
        self.figures: list[Figure] = []
        self.rss: dict[str, Any] = {}
        self.cluster = LocalCluster(NODES)
        self.t0 = time.monotonic()

    def figure(self, key: str, label: str, unit: str, better: str) -> Figure:
        fig = Figure(key, label, unit, better)
        self.figures.append(fig)
        return fig

    def progress(self, message: str) -> None:
        elapsed = time.monotonic() - self.t0
        print(f"  [{elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)

    def peer_step(self, what: str, step: Callable[[], None]) -> None:
        """Run one peer measurement; a peer failure is reported, not fatal."""
        if self.peer is None:
            return
        self.progress(f"ganeti: {what}")
        try:
            step()
        except BenchError as err:
            print(f"  ganeti: {what} failed: {err}", file=sys.stderr)

    def run(self) -> None:
        self.progress("bringing up a 3-node cardume vcluster")
        self.cluster.up()
        env = self.cluster.env
        c = self.counts

        # 1. CLI start time
        self.progress("CLI start time")
        start = self.figure("cli_start_version", "CLI start: gnt-cluster version", "ms",
                            "lower")
        start.cardume = 1000 * statistics.median(
            repeat([self.cluster.cmd("gnt-cluster"), "version"], c.cli_start, env))
        start.notes.append(f"median of {c.cli_start}; cardume's answers without the master, "
                         "Ganeti's asks its master (QueryClusterInfo)")
        floor = self.figure("cli_start_floor", "CLI start floor: python3 -c pass", "ms", "lower")
        floor.cardume = 1000 * statistics.median(repeat([sys.executable, "-c", "pass"],
                                                        c.cli_start))
        floor.notes.append(f"median of {c.cli_start}; the interpreter each CLI runs on "
                           f"(cardume: {sys.executable}, ganeti: /usr/bin/python3)")

        def peer_cli() -> None:
            assert self.peer is not None
            start.ganeti = 1000 * statistics.median(
                repeat(self.peer.on(1, "gnt-cluster", "version"), c.cli_start))
            floor.ganeti = 1000 * statistics.median(
                repeat(self.peer.on(1, "/usr/bin/python3", "-c", "pass"), c.cli_start))
        self.peer_step("CLI start time", peer_cli)

        # 2. gnt-debug delay 0, one at a time through the CLI
        self.progress(f"gnt-debug delay 0 x{c.delay_cli}")
        delay = self.figure("delay_cli_jobs_per_s", "gnt-debug delay, one at a time (CLI)",
                            "jobs/s", "higher")
        times = repeat([self.cluster.cmd("gnt-debug"), "delay", "0"], c.delay_cli, env)
        delay.cardume = len(times) / sum(times)
        delay.notes.append(f"cardume: `gnt-debug delay 0` x{len(times)} (median "
                         f"{1000 * statistics.median(times):.1f} ms each)")

        def peer_delay() -> None:
            assert self.peer is not None
            peer_times = repeat(self.peer.on(1, "gnt-debug", "delay", str(PEER_DELAY)),
                                c.peer_delay_cli)
            delay.ganeti = len(peer_times) / sum(peer_times)
            delay.notes.append(f"ganeti: `gnt-debug delay {PEER_DELAY}` x{len(peer_times)} "
                             f"(median {1000 * statistics.median(peer_times):.0f} ms each; "
                             "Ganeti 3.0.2 refuses a delay of 0)")
        self.peer_step(f"gnt-debug delay {PEER_DELAY}", peer_delay)

        # 3. a burst of jobs submitted at once
        jobs = c.burst_jobs
        self.progress(f"{jobs} jobs at once x{c.bursts}")
        many = self.figure("burst_jobs_per_s", f"{jobs} delay jobs submitted at once",
                           "jobs/s", "higher")
        burst(self.cluster, 10)  # warm-up
        spans = [burst(self.cluster, jobs) for _ in range(c.bursts)]
        many.cardume = jobs / statistics.median(spans)
        many.notes.append(f"cardume: SubmitManyJobs on the master socket, then wait for each; "
                         f"median of {len(spans)} bursts "
                         f"({', '.join(f'{s * 1000:.0f}' for s in spans)} ms)")

        def peer_burst() -> None:
            assert self.peer is not None
            count = c.peer_burst_jobs
            total, wall, timing = self.peer.submit_job_burst(count, self.cluster.tmp)
            many.ganeti = count / total
            capped = f" (capped at {count} jobs)" if count != jobs else ""
            many.notes.append(f"ganeti: `gnt-debug submit-job --job-repeat={count} "
                             f"--timing-stats` of one {PEER_DELAY} s delay{capped}: {timing}, "
                             f"{wall:.1f} s wall")
        self.peer_step(f"{c.peer_burst_jobs} jobs at once", peer_burst)

        # 4. one at a time over the socket, no CLI start-up
        self.progress(f"socket submit+wait x{c.socket_serial}")
        fig = self.figure("socket_serial_jobs_per_s", "socket submit+wait, one at a time",
                          "jobs/s", "higher")
        fig.cardume = c.socket_serial / socket_serial(self.cluster, c.socket_serial)
        fig.notes.append(f"cardume only: {c.socket_serial} x (SubmitJob, WaitForJobChange) "
                         "in one process over one connection")

        # 5. gnt-node list
        self.progress("gnt-node list")
        listing = self.figure("node_list_latency", "gnt-node list latency", "ms", "lower")
        listing.cardume = 1000 * statistics.median(
            repeat([self.cluster.cmd("gnt-node"), "list"], c.node_list, env))
        listing.notes.append(f"median of {c.node_list} (ganeti: {c.peer_node_list}); "
                         "3 nodes, live node facts from every node daemon")

        def peer_list() -> None:
            assert self.peer is not None
            listing.ganeti = 1000 * statistics.median(
                repeat(self.peer.on(1, "gnt-node", "list"), c.peer_node_list))
        self.peer_step("gnt-node list", peer_list)

        # 6. idle RSS of the daemons, after all the jobs above
        self.progress("daemon RSS")
        time.sleep(1.0)
        self.measure_rss()

    def measure_rss(self) -> None:
        mine: dict[str, dict[str, Any]] = {}
        for index in range(1, NODES + 1):
            daemons = {}
            for daemon in ("noded", "masterd"):
                pid = self.cluster.pid(index, daemon)
                if pid is None:
                    continue
                rss, hwm = rss_kib(pid)
                daemons[daemon] = {"pid": pid, "rss_kib": rss, "hwm_kib": hwm}
            mine[f"node{index}"] = daemons
        peer: dict[str, dict[str, Any]] = {}
        if self.peer is not None:
            for index, rows in self.peer.daemons().items():
                peer[f"node{index}"] = {}
                for daemon, pid, rss, hwm in rows:
                    entry = peer[f"node{index}"].setdefault(
                        daemon, {"pids": [], "rss_kib": 0, "hwm_kib": 0})
                    entry["pids"].append(pid)
                    entry["rss_kib"] += rss
                    entry["hwm_kib"] += hwm
        self.rss = {"cardume": mine, "ganeti": peer or None}

        def total(side: dict[str, dict[str, Any]], node: str) -> float | None:
            daemons = side.get(node)
            if not daemons:
                return None
            return float(sum(d["rss_kib"] for d in daemons.values())) / 1024

        node1 = mine.get("node1", {})
        for daemon in ("noded", "masterd"):
            fig = self.figure(f"rss_node1_{daemon}", f"RSS node1 {daemon}", "MiB", "lower")
            if daemon in node1:
                fig.cardume = node1[daemon]["rss_kib"] / 1024
            if daemon == "noded" and "ganeti-noded" in peer.get("node1", {}):
                fig.ganeti = peer["node1"]["ganeti-noded"]["rss_kib"] / 1024
        for index in range(1, NODES + 1):
            node = f"node{index}"
            names = " + ".join(mine.get(node, {})) or "-"
            fig = self.figure(f"rss_{node}_total", f"RSS {node} total ({names})", "MiB",
                              "lower")
            fig.cardume = total(mine, node)
            fig.ganeti = total(peer, node)
        if peer.get("node1"):
            self.figures[-NODES].notes.append(
                "ganeti node1: " + ", ".join(
                    f"{d} {v['rss_kib'] / 1024:.0f}" for d, v in peer["node1"].items()))
        hwm = node1.get("masterd", {}).get("hwm_kib")
        if hwm:
            self.figures[-NODES].notes.append(f"cardume masterd peak (VmHWM) {hwm / 1024:.0f}")


def print_table(bench: Bench, header: list[str]) -> None:
    print()
    for line in header:
        print(line)
    print()
    rows = [("figure", "unit", "cardume", "ganeti", "ratio")]
    for fig in bench.figures:
        ratio = fig.ratio
        rows.append((fig.label, fig.unit, fmt(fig.cardume), fmt(fig.ganeti),
                     f"{fmt(ratio)}x" if ratio is not None else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for number, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [row[i].rjust(widths[i]) for i in (2, 3, 4)]
        print("  ".join(cells).rstrip())
        if number == 0:
            print("  ".join("-" * w for w in widths))
    print()
    print("ratio: how many times better cardume is (ganeti/cardume for ms and MiB, "
          "cardume/ganeti for jobs/s)")
    for fig in bench.figures:
        for note in fig.notes:
            print(f"  {fig.label}: {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", choices=("auto", "yes", "no"), default="auto",
                        help="measure the real Ganeti peer too (auto: when it is up)")
    parser.add_argument("--quick", action="store_true",
                        help="few repetitions: a smoke run that keeps this script working")
    parser.add_argument("--peer-burst", type=int, metavar="N",
                        help="jobs in the peer's burst (default 200, 20 with --quick)")
    parser.add_argument("--json", default=str(DEFAULT_JSON), metavar="PATH",
                        help=f"where to write the figures (default {DEFAULT_JSON})")
    args = parser.parse_args(argv)
    counts = Counts.quick() if args.quick else Counts()
    if args.peer_burst:
        counts.peer_burst_jobs = args.peer_burst

    peer: Peer | None = None
    peer_line = "peer: not measured (--peer no)"
    if args.peer != "no":
        peer, why = Peer.find()
        if peer is None:
            if args.peer == "yes":
                print(f"peer: not available: {why}", file=sys.stderr)
                return 2
            peer_line = f"peer: not available ({why}); no ratios"
            print(peer_line, flush=True)
        else:
            peer_line = (f"peer: Ganeti {peer.version}, {peer.node_count()} nodes, "
                         f"via {peer.gx} (delay {PEER_DELAY} s: Ganeti refuses 0)")

    # A SIGTERM (a test's timeout, a CI stop) still stops the cluster via the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = Bench(counts, peer, args.quick)
    load_start = loadavg()
    started = time.time()
    try:
        bench.run()
    except BenchError as err:
        print(f"bench: {err}", file=sys.stderr)
        return 1
    finally:
        bench.progress("stopping the cardume vcluster")
        bench.cluster.down(purge=True)

    header = [
        f"cardume benchmarks (issue 2){' --quick' if args.quick else ''}: "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}, "
        f"{os.cpu_count()} CPUs, load {load_start:.2f} at start, {loadavg():.2f} at end",
        f"cardume: {NODES}-node vcluster on {bench.cluster.base_ip}.., "
        f"Python {platform.python_version()}",
        peer_line,
    ]
    if "PYTHONDONTWRITEBYTECODE" in os.environ:
        header.append("(PYTHONDONTWRITEBYTECODE was set: dropped for the measured commands, "
                      "so they run from cached bytecode as installed programs do)")
    print_table(bench, header)
    result = {
        "started": started,
        "duration_s": time.time() - started,
        "quick": args.quick,
        "host": {"cpus": os.cpu_count(), "load_start": load_start, "load_end": loadavg(),
                 "python": platform.python_version(), "platform": platform.platform()},
        "cardume": {"nodes": NODES, "base_ip": bench.cluster.base_ip,
                    "commit": git_head()},
        "ganeti": ({"version": peer.version, "nodes": peer.node_count(),
                    "delay": PEER_DELAY} if peer else None),
        "counts": asdict(counts),
        "figures": [dict(asdict(f), ratio=f.ratio) for f in bench.figures],
        "ratio_meaning": "times better for cardume: ganeti/cardume for ms and MiB, "
                         "cardume/ganeti for jobs/s",
        "rss": bench.rss,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
        handle.write("\n")
    print(f"\nwritten to {args.json}")
    return 0


def git_head() -> str | None:
    """The commit measured (read-only: rev-parse changes nothing)."""
    try:
        proc = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None


if __name__ == "__main__":
    sys.exit(main())
