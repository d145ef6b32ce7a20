#!/usr/bin/env python3
"""cardume's benchmarks (issues 2 and 3), side by side with a real Ganeti peer.

Run with the project's interpreter:  .venv/bin/python bench/run.py [--peer auto|yes|no] [--quick]
    [--only SECTION,...] [SECTION...]      sections: jobs, instances, list (default: all)

It brings up its own 3-node local cluster in a temporary directory (on a free loopback range),
measures, stops and deletes it, prints a table (figure, cardume, ganeti, ratio) and writes the
same figures as JSON to bench/results/latest.json. Figures only: nothing here asserts a time.
See bench/README.md for what each figure means and how the peer is measured.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cardume.vcluster import loopback

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the .venv/bin holding the gnt-* entry points
DEFAULT_JSON = REPO / "bench" / "results" / "latest.json"
NODES = 3
NODED_PORT = 1811
DELAY_OP = {"OP_ID": "OP_TEST_DELAY", "duration": 0}
# Ganeti 3.0.2 refuses a delay of 0 ("Duration must be greater than zero").
PEER_DELAY = 0.001
# The peer's directory: $CARDUME_GANETI_PEER, else beside this checkout (../shared/peers/ganeti)
PEER_DIRS = [Path(p) for p in (os.environ.get("CARDUME_GANETI_PEER"),) if p] + [
    REPO.parent / "shared" / "peers" / "ganeti"]
# Installed Python programs run from cached bytecode (Debian precompiles Ganeti's); a
# PYTHONDONTWRITEBYTECODE inherited from a developer's shell would make every cardume command
# recompile its modules on each start, so the benchmark's commands run without it.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
PEER_DAEMONS = ("ganeti-noded", "ganeti-confd", "ganeti-wconfd", "ganeti-rapi",
                "ganeti-luxid", "ganeti-mond", "ganeti-kvmd", "ganeti-metad")
# The sections a run can be limited to (--only / positional), in the order they are named.
SECTIONS = ("jobs", "instances", "list")
FIXTURE_OS = REPO / "tests" / "fixtures" / "os" / "dummy"  # copied into the cluster's ROOT/os
OS_NAME = "dummy+default"
PEER_OS = "trivial+default"  # installed on the peer by its setup.sh
PEER_PREFIX = "cbench-"  # every peer instance this script creates; removed again at the end
INSTANCE_MEMORY = 128  # MiB, -B memory=128 on both sides (Ganeti's default and bench.sh's)
# Fake-hypervisor instances "use" their memory: each node sees the host's free memory minus its
# own running instances. 400 running instances of 128 MiB on one node would not fit in this
# machine's ~23 GiB, so adds go round-robin over the nodes (on both sides).
LIST_FIELDS = ["name", "hypervisor", "os", "pnode", "status", "oper_ram"]  # the list default
GROW_BATCH = 500  # jobs per SubmitManyJobs while growing the instance count


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
    # issue 3: instances
    seq_adds: int = 200
    peer_seq_adds: int = 50
    seq_adds_nostart: int = 200
    peer_seq_adds_nostart: int = 20
    adds_at_once: int = 200
    peer_adds_at_once: int = 50
    list_base: int = 200
    list_mid: int = 1000
    list_top: int = 10000
    instance_list: int = 10
    peer_instance_list: int = 10
    top_adds: int = 10

    @classmethod
    def quick(cls) -> Counts:
        return cls(cli_start=3, delay_cli=5, peer_delay_cli=3, burst_jobs=200, bursts=1,
                   peer_burst_jobs=20, socket_serial=50, node_list=3, peer_node_list=3,
                   seq_adds=10, peer_seq_adds=3, seq_adds_nostart=10, peer_seq_adds_nostart=3,
                   adds_at_once=10, peer_adds_at_once=5, list_base=50, list_mid=100,
                   list_top=200, instance_list=3, peer_instance_list=3, top_adds=3)


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


def free_base_ips(count: int) -> list[str]:
    """Up to three loopback ranges 127.0.N.41.. whose addresses are all free on the node
    daemon port (.41: away from vcluster's default .11 and the tests' ranges)."""
    bases = (f"127.0.{third}.41" for third in range(0, 250))
    return list(itertools.islice(loopback.free_ranges(bases, count, NODED_PORT), 3))


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
        from cardume.master.client import Client
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


def create_op(name: str, node: str, os_type: str, start: bool = True,
              install: bool = True) -> dict[str, Any]:
    """OP_INSTANCE_CREATE of a diskless instance, as `gnt-instance add -t diskless -B memory=128
    -o OS -n NODE --no-name-check --no-ip-check [--no-start] [--no-install] NAME` builds it."""
    return {"OP_ID": "OP_INSTANCE_CREATE", "instance_name": name, "mode": "create",
            "disk_template": "diskless", "disks": [], "nics": [{}],
            "beparams": {"memory": INSTANCE_MEMORY}, "hvparams": {}, "osparams": {},
            "os_type": os_type, "pnode": node, "name_check": False, "ip_check": False,
            "start": start, "no_install": not install, "wait_for_sync": True, "tags": []}


def submit_and_wait(cluster: LocalCluster, jobs: list[list[dict[str, Any]]]) -> float:
    """One SubmitManyJobs of ``jobs``, then wait for each; seconds until all ended."""
    from cardume import errors
    with cluster.client() as client:
        start = time.perf_counter()
        results = client.call("SubmitManyJobs", jobs)
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
        raise BenchError(f"{len(failed)} of {len(jobs)} jobs failed, e.g. {failed[0]}")
    return elapsed


def instance_names(cluster: LocalCluster) -> list[str]:
    with cluster.client() as client:
        return [row[0] for row in client.call("Query", "instance", ["name"], None)["data"]]


def file_kib(path: str) -> int:
    try:
        return os.stat(path).st_size // 1024
    except OSError:
        return 0


def size_text(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB" if kib >= 1024 else f"{kib:.0f} KiB"


def sqlite_kib(path: str) -> tuple[int, int]:
    """(page_count x page_size, the objects' JSON in all) of a live SQLite DB, in KiB: its
    size with the WAL's pages counted in, read-only (WAL readers never block the writer)."""
    import sqlite3
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        data = conn.execute("SELECT coalesce(sum(length(data)), 0) FROM objects").fetchone()[0]
    finally:
        conn.close()
    return pages * page_size // 1024, int(data) // 1024


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

    def node_names(self) -> list[str]:
        _, out = run_timed(self.on(1, "gnt-node", "list", "--no-headers", "-o", "name"))
        names = out.split()
        if not names:
            raise BenchError("the peer lists no nodes")
        return names

    def instance_names(self) -> list[str]:
        _, out = run_timed(self.on(1, "gnt-instance", "list", "--no-headers", "-o", "name"),
                           timeout=600)
        return out.split()

    def submit_jobs(self, jobs: list[list[dict[str, Any]]], workdir: str,
                    tag: str) -> tuple[float, float, str]:
        """`gnt-debug submit-job --timing-stats FILE...`, one file (one job) per entry of
        ``jobs``: Ganeti submits them in one SubmitManyJobs and waits for all of them.
        (T:total or wall, wall, timing). It exits 0 even when jobs fail: callers check."""
        directory = os.path.join(workdir, f"peer-{tag}")
        os.makedirs(directory, exist_ok=True)
        files = []
        for index, ops in enumerate(jobs):
            path = os.path.join(directory, f"job{index}.json")
            with open(path, "w", encoding="ascii") as handle:
                json.dump(ops, handle)
            files.append(path)
        run_timed(self.on(1, "test", "-r", files[-1]))  # /tmp is shared with the peer's nodes
        wall, out = run_timed(self.on(1, "gnt-debug", "submit-job", "--timing-stats", *files),
                              timeout=3600)
        stats = {}
        for line in out.splitlines():
            if line.startswith("T:"):
                key, _, value = line[2:].partition(" ")
                with contextlib.suppress(ValueError):
                    stats[key.strip()] = float(value)
        timing = " ".join(f"T:{k}={v:.2f}s" for k, v in stats.items())
        return stats.get("total", wall), wall, timing

    def create(self, names: Sequence[str], nodes: Sequence[str], workdir: str, tag: str,
               start: bool = True, install: bool = True) -> tuple[float, float, str]:
        """Create ``names`` (round-robin over ``nodes``) submitted at once; fails unless all
        of them exist afterwards."""
        jobs = [[create_op(name, nodes[i % len(nodes)], PEER_OS, start, install)]
                for i, name in enumerate(names)]
        result = self.submit_jobs(jobs, workdir, tag)
        missing = set(names) - set(self.instance_names())
        if missing:
            raise BenchError(f"{len(missing)} of {len(names)} peer creates failed, "
                             f"e.g. {sorted(missing)[0]}")
        return result

    def remove_bench_instances(self, workdir: str) -> tuple[int, float]:
        """Remove every instance named PEER_PREFIX*, as bench.sh cleanup does (submitted, then
        waited for); (how many, seconds). Leaves the peer cluster running."""
        names = [n for n in self.instance_names() if n.startswith(PEER_PREFIX)]
        if not names:
            return 0, 0.0
        start = time.perf_counter()
        jobs = [[{"OP_ID": "OP_INSTANCE_REMOVE", "instance_name": name,
                  "ignore_failures": True}] for name in names]
        self.submit_jobs(jobs, workdir, "remove")
        left = [n for n in self.instance_names() if n.startswith(PEER_PREFIX)]
        if left:
            raise BenchError(f"{len(left)} peer instances were not removed: "
                             f"{', '.join(left[:5])}")
        return len(names), time.perf_counter() - start

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
    def __init__(self, counts: Counts, peer: Peer | None, quick: bool,
                 sections: Sequence[str] = SECTIONS) -> None:
        self.counts = counts
        self.peer = peer
        self.quick = quick
        self.sections = [s for s in SECTIONS if s in sections]
        self.figures: list[Figure] = []
        self.rss: dict[str, Any] = {}
        self.instances: dict[str, Any] = {}  # issue 3's raw figures, for the JSON
        self.cluster = LocalCluster(NODES)
        self.t0 = time.monotonic()
        self.peer_touched = False  # the peer got instances of ours: remove them at the end
        self.peer_nodes: list[str] = []
        self.peer_base: tuple[int, float] | None = None  # (instances, list ms) on the peer

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
        os_dir = os.path.join(self.cluster.root, "os")
        os.makedirs(os_dir, exist_ok=True)  # on every node's OS search path
        shutil.copytree(FIXTURE_OS, os.path.join(os_dir, "dummy"))
        # The instance sections interleave so that `gnt-instance list` is measured at
        # list_base instances, the sequential adds with start (list_base of them normally).
        if "jobs" in self.sections:
            self.run_jobs()
        if "instances" in self.sections:
            self.seq_adds(start=True)
        if "list" in self.sections:
            self.list_base()
        if "instances" in self.sections:
            self.seq_adds(start=False)
            self.adds_at_once()
        if "list" in self.sections:
            self.grow_and_list(self.counts.list_mid, "mid")
            self.grow_and_list(self.counts.list_top, "top")
            self.at_top()

    def cleanup(self) -> None:
        """Remove the peer instances this run created (the peer cluster stays up)."""
        if self.peer is None or not self.peer_touched:
            return
        self.progress(f"ganeti: removing the {PEER_PREFIX}* instances")
        try:
            removed, seconds = self.peer.remove_bench_instances(self.cluster.tmp)
            self.instances["peer_cleanup"] = {"removed": removed, "seconds": seconds}
        except BenchError as err:
            print(f"  ganeti: cleanup failed: {err} (remove them with "
                  f"`gx 1 gnt-instance remove -f NAME`)", file=sys.stderr)

    def run_jobs(self) -> None:
        """Issue 2's figures: CLI start, delay jobs, bursts, socket jobs, node list, RSS."""
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
        helped = self.figure("cli_start_list_help", "CLI start: gnt-instance list --help", "ms",
                             "lower")
        helped.cardume = 1000 * statistics.median(
            repeat([self.cluster.cmd("gnt-instance"), "list", "--help"], c.cli_start, env))
        helped.notes.append(f"median of {c.cli_start}; builds the command's whole parser, "
                            "asks nobody")
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
            helped.ganeti = 1000 * statistics.median(
                repeat(self.peer.on(1, "gnt-instance", "list", "--help"), c.cli_start))
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

    # --- issue 3: instances -------------------------------------------------------------

    def peer_ready(self) -> Peer:
        """The peer, its node names known and leftovers of an interrupted run removed."""
        assert self.peer is not None
        if not self.peer_nodes:
            self.peer_nodes = self.peer.node_names()
            self.peer_touched = True
            removed, _ = self.peer.remove_bench_instances(self.cluster.tmp)
            if removed:
                self.progress(f"ganeti: removed {removed} {PEER_PREFIX}* instances left over")
        return self.peer

    def node_for(self, index: int) -> str:
        return f"node{index % NODES + 1}"

    def seq_adds(self, start: bool) -> None:
        """`gnt-instance add` of diskless instances one by one through the CLI."""
        c = self.counts
        count = c.seq_adds if start else c.seq_adds_nostart
        peer_count = c.peer_seq_adds if start else c.peer_seq_adds_nostart
        tag, flags = ("seq", []) if start else ("nos", ["--no-start"])
        what = "gnt-instance add" + (" --no-start" if not start else "")
        self.progress(f"{what} x{count}, one by one")
        fig = self.figure(f"add_{tag}_ms", f"{what}, diskless, one at a time (CLI)", "ms",
                          "lower")
        common = ["add", "-t", "diskless", "-B", f"memory={INSTANCE_MEMORY}",
                  "--no-name-check", "--no-ip-check", *flags]
        gnt = self.cluster.cmd("gnt-instance")
        run_timed([gnt, "list"], self.cluster.env)  # warm-up: the CLI's bytecode is cached
        began = time.perf_counter()
        times = [run_timed([gnt, *common, "-o", OS_NAME, "-n", self.node_for(i), f"{tag}{i}"],
                           self.cluster.env)[0] for i in range(count)]
        total = time.perf_counter() - began
        fig.cardume = 1000 * sum(times) / len(times)
        fig.notes.append(
            f"cardume: {count} adds ({self.node_for(0)}..{self.node_for(NODES - 1)} "
            f"round-robin), mean of each CLI call, median {1000 * statistics.median(times):.0f} "
            f"ms, {total:.1f} s in all")
        self.instances[f"add_{tag}"] = {"count": count, "seconds": times}

        def peer_adds() -> None:
            peer = self.peer_ready()
            peer_times = []
            for i in range(peer_count):
                argv = peer.on(1, "gnt-instance", *common, "-o", PEER_OS, "-n",
                               self.peer_nodes[i % len(self.peer_nodes)],
                               f"{PEER_PREFIX}{tag}{i}")
                peer_times.append(run_timed(argv)[0])
            fig.ganeti = 1000 * sum(peer_times) / len(peer_times)
            fig.notes.append(
                f"ganeti: {peer_count} adds, not {count}: each takes about a second"
                f"{' (--peer-adds sets it)' if start else ''}; median "
                f"{1000 * statistics.median(peer_times):.0f} ms, {sum(peer_times):.1f} s in all")
            self.instances[f"peer_add_{tag}"] = {"count": peer_count, "seconds": peer_times}
        self.peer_step(f"{what} x{peer_count}, one by one", peer_adds)

    def adds_at_once(self) -> None:
        """Diskless creates (with start and OS install) submitted at once; until all done."""
        c = self.counts
        count = c.adds_at_once
        self.progress(f"{count} adds submitted at once")
        fig = self.figure("adds_at_once_per_s", f"{count} gnt-instance adds submitted at once",
                          "adds/s", "higher")
        jobs = [[create_op(f"many{i}", self.node_for(i), OS_NAME)] for i in range(count)]
        elapsed = submit_and_wait(self.cluster, jobs)
        fig.cardume = count / elapsed
        fig.notes.append(
            f"cardume: one SubmitManyJobs of {count} OP_INSTANCE_CREATE (diskless, OS install, "
            f"start; round-robin over {NODES} nodes) on the master socket, then wait for each: "
            f"{elapsed:.2f} s until all done")
        self.instances["adds_at_once"] = {"count": count, "seconds": elapsed}

        def peer_many() -> None:
            peer = self.peer_ready()
            n = c.peer_adds_at_once
            names = [f"{PEER_PREFIX}many{i}" for i in range(n)]
            total, wall, timing = peer.create(names, self.peer_nodes, self.cluster.tmp, "many")
            fig.ganeti = n / total
            capped = f", capped at {n} (--peer-at-once sets it)" if n != count else ""
            fig.notes.append(
                f"ganeti: `gnt-debug submit-job --timing-stats` of {n} one-opcode job files "
                f"(one SubmitManyJobs; the same OP_INSTANCE_CREATE){capped}: {timing}, "
                f"{wall:.1f} s wall")
            self.instances["peer_adds_at_once"] = {"count": n, "seconds": total, "wall": wall}
        self.peer_step(f"{c.peer_adds_at_once} adds at once", peer_many)

    def grow(self, target: int) -> tuple[int, float, list[tuple[int, float]]]:
        """Grow the cluster to ``target`` instances by the fast path: SubmitManyJobs of
        OP_INSTANCE_CREATE (diskless, no start, no install, no name/IP check) in batches of
        GROW_BATCH, each waited for. (created, seconds, [(count after batch, batch seconds)])."""
        have = len(instance_names(self.cluster))
        created, seconds, batches = 0, 0.0, []
        while have < target:
            size = min(GROW_BATCH, target - have)
            jobs = [[create_op(f"grow{have + i}", self.node_for(have + i), OS_NAME,
                               start=False, install=False)] for i in range(size)]
            spent = submit_and_wait(self.cluster, jobs)
            have += size
            created += size
            seconds += spent
            batches.append((have, spent))
        return created, seconds, batches

    def list_figures(self, level: str, count: int) -> tuple[Figure, Figure]:
        """`gnt-instance list` and `gnt-instance list --no-headers -o name`, median ms."""
        c = self.counts
        gnt = self.cluster.cmd("gnt-instance")
        _, out = run_timed([gnt, "list", "--no-headers", "-o", "name"], self.cluster.env)
        if len(out.split()) != count:
            raise BenchError(f"gnt-instance list shows {len(out.split())} instances, "
                             f"expected {count}")
        full = self.figure(f"instance_list_{level}_ms", f"gnt-instance list, {count:,} instances",
                           "ms", "lower")
        full.cardume = 1000 * statistics.median(repeat([gnt, "list"], c.instance_list,
                                                       self.cluster.env))
        names = self.figure(f"instance_list_names_{level}_ms",
                            f"gnt-instance list --no-headers -o name, {count:,}", "ms", "lower")
        names.cardume = 1000 * statistics.median(
            repeat([gnt, "list", "--no-headers", "-o", "name"], c.instance_list,
                   self.cluster.env))
        query = 1000 * statistics.median(self.query_times(LIST_FIELDS, c.instance_list))
        query_names = 1000 * statistics.median(self.query_times(["name"], c.instance_list))
        full.notes.append(f"cardume: median of {c.instance_list}; default columns "
                          f"({', '.join(LIST_FIELDS)}: live data from every node); the LUXI "
                          f"Query alone, without the CLI, {query:.1f} ms ({query_names:.1f} ms "
                          "for the names)")
        self.instances[f"list_{level}"] = {"count": count, "list_ms": full.cardume,
                                           "names_ms": names.cardume, "query_ms": query,
                                           "query_names_ms": query_names}
        return full, names

    def query_times(self, fields: list[str], count: int) -> list[float]:
        """Seconds of the LUXI Query behind `gnt-instance list` (after one warm-up), over one
        connection: the master's side of a listing, without the CLI's start and printing."""
        times = []
        with self.cluster.client() as client:
            for _ in range(count + 1):
                start = time.perf_counter()
                client.call("Query", "instance", fields, None)
                times.append(time.perf_counter() - start)
        return times[1:]

    def list_base(self) -> None:
        c = self.counts
        created, seconds, _ = self.grow(c.list_base)
        count = len(instance_names(self.cluster))
        self.progress(f"gnt-instance list at {count} instances")
        full, names = self.list_figures("base", count)
        if created:
            full.notes.append(f"cardume: grown by {created} stopped instances (fast path) to "
                              f"{count} in {seconds:.1f} s")

        def peer_list() -> None:
            peer = self.peer_ready()
            have = peer.instance_names()
            missing = c.list_base - len(have)
            if missing > 0:
                self.progress(f"ganeti: growing to {c.list_base} instances")
                taken = set(have)
                fresh = [n for n in (f"{PEER_PREFIX}grow{i}" for i in range(len(have) + missing))
                         if n not in taken][:missing]
                total, _, _ = peer.create(fresh, self.peer_nodes, self.cluster.tmp, "grow",
                                          start=False, install=False)
                full.notes.append(f"ganeti: grown by {missing} stopped instances (one "
                                  f"submit-job, no install) in {total:.1f} s")
            peer_count = len(peer.instance_names())
            full.ganeti = 1000 * statistics.median(
                repeat(peer.on(1, "gnt-instance", "list"), c.peer_instance_list))
            names.ganeti = 1000 * statistics.median(
                repeat(peer.on(1, "gnt-instance", "list", "--no-headers", "-o", "name"),
                       c.peer_instance_list))
            full.notes.append(f"ganeti: median of {c.peer_instance_list} at its "
                              f"{peer_count} instances")
            self.peer_base = (peer_count, full.ganeti)
            _, size = run_timed(peer.on(1, "stat", "-c", "%s", "/var/lib/ganeti/config.data"))
            daemons = peer.daemons().get(1, [])
            self.instances["peer_list_base"] = {
                "count": peer_count, "list_ms": full.ganeti, "names_ms": names.ganeti,
                "config_data_kib": int(size.strip() or 0) / 1024,
                "node1_daemons_rss_kib": {d: rss for d, _, rss, _ in daemons}}
        self.peer_step(f"gnt-instance list at {c.list_base} instances", peer_list)

    def grow_and_list(self, target: int, level: str) -> None:
        self.progress(f"growing to {target:,} instances")
        created, seconds, batches = self.grow(target)
        self.instances[f"grow_{level}"] = {"created": created, "seconds": seconds,
                                           "batches": batches}
        count = len(instance_names(self.cluster))
        self.progress(f"gnt-instance list at {count:,} instances")
        self.list_figures(level, count)

    def at_top(self) -> None:
        """After growing to list_top: growth rate, the list against the peer's at its base,
        the master's RSS and the config DB's size."""
        top = self.instances.get("list_top", {}).get("count", self.counts.list_top)
        mid = self.instances.get("grow_mid", {"created": 0, "seconds": 0.0, "batches": []})
        high = self.instances.get("grow_top", {"created": 0, "seconds": 0.0, "batches": []})
        created = mid["created"] + high["created"]
        seconds = mid["seconds"] + high["seconds"]
        if created:
            fig = self.figure("grow_instances_per_s",
                              f"grow by {created:,} to {top:,} instances (fast path)",
                              "inst/s", "higher")
            fig.cardume = created / seconds
            batches = mid["batches"] + high["batches"]
            first, last = batches[0], batches[-1]
            first_size = first[0] - (top - created)
            last_size = last[0] - (batches[-2][0] if len(batches) > 1 else top - created)
            fig.notes.append(
                f"cardume: {seconds:.1f} s in all; SubmitManyJobs of OP_INSTANCE_CREATE "
                f"(diskless, no start, no install), {GROW_BATCH} per batch, each waited for; "
                f"first batch {first_size / first[1]:.0f}/s, last {last_size / last[1]:.0f}/s")
        listing = self.instances.get("list_top")
        if listing:
            fig = self.figure("instance_list_top_vs_peer_base_ms",
                              f"gnt-instance list: cardume at {top:,}, ganeti at its "
                              f"{self.peer_base[0] if self.peer_base else self.counts.list_base}",
                              "ms", "lower")
            fig.cardume = listing["list_ms"]
            if self.peer_base:
                fig.ganeti = self.peer_base[1]
        pid = self.cluster.pid(1, "masterd")
        if pid is not None:
            rss, hwm = rss_kib(pid)
            fig = self.figure("rss_masterd_top", f"RSS masterd at {top:,} instances", "MiB",
                              "lower")
            fig.cardume = rss / 1024
            fig.notes.append(f"cardume: peak (VmHWM) {hwm / 1024:.0f} MiB")
            self.instances["masterd_top"] = {"rss_kib": rss, "hwm_kib": hwm}
        master = self.cluster.node_dir(1)
        db = file_kib(os.path.join(master, "config.db"))
        wal = file_kib(os.path.join(master, "config.db-wal"))
        queue = file_kib(os.path.join(master, "queue.db")) + file_kib(
            os.path.join(master, "queue.db-wal"))
        size, data = sqlite_kib(os.path.join(master, "config.db"))
        fig = self.figure("config_db_top", f"config DB at {top:,} instances", "MiB", "lower")
        fig.cardume = size / 1024
        fig.notes.append(f"cardume: the master's config.db, page_count x page_size with the "
                         f"WAL applied ({size_text(data)} of object JSON); on disk now "
                         f"config.db {size_text(db)} + WAL {size_text(wal)}; job queue "
                         f"{size_text(queue)}")
        peer_base = self.instances.get("peer_list_base")
        if peer_base:
            rss = peer_base["node1_daemons_rss_kib"]
            fig.notes.append(
                f"ganeti at its {peer_base['count']} instances: config.data "
                f"{size_text(peer_base['config_data_kib'])}; node1 daemons "
                + ", ".join(f"{d} {v / 1024:.0f}" for d, v in rss.items()) + " MiB")
        self.instances["config_db_top"] = {"size_kib": size, "json_kib": data,
                                           "config_db_file_kib": db, "wal_file_kib": wal,
                                           "queue_files_kib": queue}
        # The cost of one add grows with the instance count: a few sequential adds up there.
        count = self.counts.top_adds
        gnt = self.cluster.cmd("gnt-instance")
        times = [run_timed([gnt, "add", "-t", "diskless", "-B", f"memory={INSTANCE_MEMORY}",
                            "--no-name-check", "--no-ip-check", "--no-start", "-o", OS_NAME,
                            "-n", self.node_for(i), f"top{i}"], self.cluster.env)[0]
                 for i in range(count)]
        fig = self.figure("add_nos_top_ms", f"gnt-instance add --no-start, at {top:,} instances",
                          "ms", "lower")
        fig.cardume = 1000 * sum(times) / len(times)
        fig.notes.append(f"cardume: mean of {count} CLI adds one by one (median "
                         f"{1000 * statistics.median(times):.0f} ms), after the lists above")

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
          "cardume/ganeti for rates: jobs/s, adds/s, inst/s)")
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
    parser.add_argument("--peer-adds", type=int, metavar="N",
                        help="sequential adds on the peer (default 50, 3 with --quick; "
                             "each takes about a second)")
    parser.add_argument("--peer-at-once", type=int, metavar="N",
                        help="adds submitted at once on the peer (default 50, 5 with --quick)")
    parser.add_argument("--json", default=str(DEFAULT_JSON), metavar="PATH",
                        help=f"where to write the figures (default {DEFAULT_JSON})")
    parser.add_argument("--only", metavar="SECTION,...", default="",
                        help=f"run only these sections ({', '.join(SECTIONS)}); default all")
    parser.add_argument("sections", nargs="*", metavar="SECTION",
                        help="sections to run, as with --only")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] + args.sections
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    sections = [s for s in SECTIONS if s in chosen] if chosen else list(SECTIONS)
    counts = Counts.quick() if args.quick else Counts()
    if args.peer_burst:
        counts.peer_burst_jobs = args.peer_burst
    if args.peer_adds:
        counts.peer_seq_adds = args.peer_adds
    if args.peer_at_once:
        counts.peer_adds_at_once = args.peer_at_once

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
    bench = Bench(counts, peer, args.quick, sections)
    load_start = loadavg()
    started = time.time()
    try:
        bench.run()
    except BenchError as err:
        print(f"bench: {err}", file=sys.stderr)
        return 1
    finally:
        bench.cleanup()  # the peer's instances, before the work directory goes
        bench.progress("stopping the cardume vcluster")
        bench.cluster.down(purge=True)

    header = [
        f"cardume benchmarks (issues 2 and 3){' --quick' if args.quick else ''}: "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}, "
        f"{os.cpu_count()} CPUs, load {load_start:.2f} at start, {loadavg():.2f} at end",
        f"cardume: {NODES}-node vcluster on {bench.cluster.base_ip}.., "
        f"Python {platform.python_version()}",
        peer_line,
        f"sections: {', '.join(sections)}",
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
        "sections": sections,
        "counts": asdict(counts),
        "figures": [dict(asdict(f), ratio=f.ratio) for f in bench.figures],
        "ratio_meaning": "times better for cardume: ganeti/cardume for ms and MiB, "
                         "cardume/ganeti for rates (jobs/s, adds/s, inst/s)",
        "rss": bench.rss,
        "instances": bench.instances,
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
