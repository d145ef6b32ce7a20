#!/usr/bin/env python3
"""Security and durability probe (issue 11): a local cluster as a hostile local user and a
failing machine would treat it, before and after the issue's fixes.

Run with the project's interpreter, as root (it runs parts as uid 65534 with setpriv):

    .venv/bin/python bench/security_probe.py [--src DIR] [--before COMMIT] [--only WHICH]
                                             [--json PATH]

By default it probes two versions of the code side by side: "before" (a git worktree of
COMMIT, 72ec463) and "after" (a git worktree of HEAD: what is committed, untouched by edits
in progress), both made in a temporary directory and removed at the end. ``--src DIR``
probes that source tree alone (``--src src``: this checkout as it is on disk). Each
version gets its own throw-away 3-node clusters (``cardume vcluster up``) on a free
loopback range 127.0.N.71.. (N >= 1), every command and daemon running with
PYTHONPATH=<src> so that the venv's gnt-* scripts import that version. Three parts:

1. bad input: ~100 bad gnt-* command lines; each is refused (non-zero exit, no traceback)
   or not, leaves debris (the cluster, its jobs or its disk files changed) or not, and
   crashes something (a daemon died, a traceback in a log) or not;
2. hostile local user (uid 65534): state files it can read that hold a key, a token or the
   configuration, the cluster CA key recovered from them and what it opens, the LUXI
   socket, malformed HTTP requests and 60 MiB bodies to an unjoined node daemon, node calls
   with a foreign CA's certificate; and a plain node's certificate (a compromised node)
   making master-only calls;
3. faults: the master daemon SIGKILLed with jobs queued and running, a master failover
   and fail-back with finished, running and queued jobs, the master and a node daemon
   SIGKILLed during an instance add's OS install.

It prints the cases that were not refused (and any debris or crash), then one table:
figures as rows, one column per version. Figures only: nothing here asserts. Everything it
starts (clusters, the extra node daemon, OS scripts, loop devices, the worktree) is
stopped and removed at the end, also when a step fails. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from cardume.vcluster import loopback

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the .venv/bin holding the gnt-* entry points
BEFORE_COMMIT = "72ec463"  # main before issue 11's work
DEFAULT_JSON = REPO / "bench" / "results" / "security-latest.json"
FIXTURE_OS = REPO / "tests" / "fixtures" / "os" / "dummy"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
NODED_PORT = 1811
NODES = 3
CMD_TIMEOUT = 20.0  # one bad command line; longer means it was accepted and is waiting
BODY_MIB = 60
BODY_CLIENTS = 6
TRACEBACK = "Traceback (most recent call last)"
UNFINISHED = ("queued", "waiting", "running", "canceling")
MIB = 1024 * 1024
# The file storage directory vcluster clusters start with (restored after a bad one).
FILE_STORAGE = "/srv/ganeti/file-storage"

# What a hostile user looks for in the files it can read.
_PEM_KEY = re.compile(rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----(?:\\n|\n|[A-Za-z0-9+/=\s])+?"
                      rb"-----END \1PRIVATE KEY-----")
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----(?:\\n|\n|[A-Za-z0-9+/=\s])+?"
                       rb"-----END CERTIFICATE-----")
_TOKEN = re.compile(rb"cardume-join:v1:[0-9a-f]{64}:[A-Za-z0-9_-]{20,128}")


class ProbeError(Exception):
    """A probe step could not be carried out (not a finding: the probe itself failed)."""


# --- small helpers -------------------------------------------------------------------------


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """The predicate's first true value within timeout seconds, else its last (false) one."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rpartition(")")[2].split()[:1] != ["Z"]
    except OSError:
        return False


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB; (0, 0) once it is gone."""
    values = {"VmRSS": 0, "VmHWM": 0}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                if key in values:
                    values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values["VmRSS"], values["VmHWM"]


def free_base_ip(count: int) -> str:
    """127.0.N.71 with 127.0.N.71.. all free on the node daemon port, N >= 1: away from
    the integration tests (127.0.0.x), the benchmarks (.41) and vcluster's default (.11)."""
    bases = (f"127.0.{third}.71" for third in range(1, 250))
    for base in loopback.free_ranges(bases, count, NODED_PORT):
        return base
    raise ProbeError("no free loopback range 127.0.N.71.. for the probe's clusters")


def ip_plus(base: str, offset: int) -> str:
    return str(ipaddress.IPv4Address(base) + offset)


def processes_with(marker: bytes) -> dict[int, list[str]]:
    """pid -> argv of every live process whose environment holds marker."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in environ and pid_alive(int(entry)):
            found[int(entry)] = argv.split("\0")[:-1]
    return found


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line or environment mention text (a directory of
    this probe: its daemons' --root, its OS scripts' OSP_RECORD)."""
    needle = text.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes()
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if (needle in argv or needle in environ) and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def loop_devices_under(directory: str) -> list[tuple[str, str]]:
    """(device, backing file) of the loop devices attached to a file below directory."""
    proc = subprocess.run(["losetup", "--list", "--noheadings", "-O", "NAME,BACK-FILE"],
                          capture_output=True, text=True)
    found = []
    for line in proc.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].startswith(directory.rstrip("/") + "/"):
            found.append((parts[0], parts[1]))
    return found


# --- results -------------------------------------------------------------------------------


@dataclass
class Result:
    argv: list[str]
    rc: int
    out: str
    err: str
    timed_out: bool = False

    @property
    def traceback(self) -> bool:
        return TRACEBACK in self.err or TRACEBACK in self.out

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def shown(self) -> str:
        first = (self.err_lines or [line for line in self.out.splitlines() if line.strip()]
                 or ["(no output)"])
        state = "timed out" if self.timed_out else f"exit {self.rc}"
        more = f" (+{len(self.err_lines) - 1} more lines)" if len(self.err_lines) > 1 else ""
        return f"{state}: {first[0][:300]}{more}"


FIGURES: list[tuple[str, str, str, bool]] = [
    # key, section, label, whether "after" should be zero
    ("input.tried", "Bad input", "bad command lines tried", False),
    ("input.refused", "Bad input", "refused (non-zero exit, no traceback)", False),
    ("input.not_refused", "Bad input", "not refused (accepted, or still waiting)", True),
    ("input.multiline", "Bad input", "refused, but in more than one line", True),
    ("input.internal", "Bad input", "refused, but as an internal_error", True),
    ("input.debris", "Bad input", "left debris (cluster, jobs or disk files changed)", True),
    ("input.crashes", "Bad input", "crashes (a daemon died, or a traceback anywhere)", True),
    ("input.uncancelable", "Bad input", "accepted delays still running after gnt-job cancel",
     True),
    ("host.secret_files", "Hostile local user (uid 65534)",
     "state files it can read holding a key, a token or the config", True),
    ("host.key_files", "Hostile local user (uid 65534)", "  ... holding a private key", True),
    ("host.token_files", "Hostile local user (uid 65534)", "  ... holding a join token", True),
    ("host.config_files", "Hostile local user (uid 65534)",
     "  ... config store files (config.db*)", True),
    ("host.ca_key", "Hostile local user (uid 65534)", "cluster CA key recovered (1 = yes)",
     True),
    ("host.stolen_ca_calls", "Hostile local user (uid 65534)",
     "node calls answered with a cert it signed with that key (of 2)", True),
    ("host.luxi", "Hostile local user (uid 65534)", "LUXI socket usable (1 = yes)", True),
    ("host.malformed", "Hostile local user (uid 65534)",
     "malformed HTTP requests tried (unjoined + joined node)", False),
    ("host.malformed_no_4xx", "Hostile local user (uid 65534)",
     "  ... without a 4xx reply", True),
    ("host.noded_tracebacks", "Hostile local user (uid 65534)",
     "tracebacks in node daemon logs after them", True),
    ("host.rss_before", "Hostile local user (uid 65534)",
     "unjoined node daemon RSS before (MiB)", False),
    ("host.rss_peak", "Hostile local user (uid 65534)",
     f"  ... peak with {BODY_CLIENTS} clients sending {BODY_MIB} MiB bodies (MiB)", False),
    ("host.bodies_taken", "Hostile local user (uid 65534)",
     f"  ... {BODY_MIB} MiB bodies taken in full (of {BODY_CLIENTS})", True),
    ("host.foreign_answered", "Hostile local user (uid 65534)",
     "node calls answered for a foreign CA's cert (of 3)", True),
    ("host.crashes", "Hostile local user (uid 65534)",
     "daemons that died (master_stop aside)", True),
    ("host.plain_config_dump", "Compromised plain node (its own certificate)",
     "config_dump answered with the CA key (1 = yes)", True),
    ("host.plain_master_stop", "Compromised plain node (its own certificate)",
     "master_stop stopped the master daemon (1 = yes)", True),
    ("host.demoted_copy", "Compromised plain node (its own certificate)",
     "demoted candidate still holds the config copy (1 = yes)", True),
    ("fault.kill_acked", "Faults", "master SIGKILL: jobs acknowledged before the kill", False),
    ("fault.kill_lost", "Faults", "  ... jobs lost or changed after the restart", True),
    ("fault.fo_acked", "Faults", "master failover: jobs on the old master", False),
    ("fault.fo_lost", "Faults", "  ... jobs lost (failover, then fail-back)", True),
    ("fault.fo_reused", "Faults", "  ... job ids handed out twice (of 4 new jobs)", True),
    ("fault.fo_twice", "Faults",
     "  ... queued jobs that ran again after fail-back (of 2)", True),
    ("fault.add_orphans", "Faults",
     "master SIGKILL during an add's OS install: orphan disk files", True),
    ("fault.add_unreported", "Faults", "  ... orphans gnt-cluster verify does not name", True),
    ("fault.noded_procs", "Faults",
     "node daemon SIGKILL during an OS install: orphan processes", True),
    ("fault.noded_loops", "Faults", "  ... loop devices left attached", True),
    ("probe.seconds", "Probe", "seconds this version's probe took", False),
]


# --- one version of the code ---------------------------------------------------------------


class Target:
    """One version of cardume: its src directory first on PYTHONPATH for everything."""

    def __init__(self, label: str, src: Path, workdir: Path) -> None:
        self.label = label
        self.src = src
        self.workdir = workdir  # 0755: uid 65534 must reach the cluster's files to try them
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("CARDUME_") and k != "PYTHONPATH"}
        env["PYTHONPATH"] = str(src)
        self.env = env
        self.values: dict[str, float | None] = {}
        self.details: dict[str, Any] = {}

    def check_import(self) -> None:
        proc = subprocess.run([sys.executable, "-c", "import cardume; print(cardume.__file__)"],
                              env=self.env, capture_output=True, text=True, timeout=60)
        where = proc.stdout.strip()
        if proc.returncode != 0 or not where.startswith(str(self.src) + "/"):
            raise ProbeError(f"PYTHONPATH={self.src} does not import cardume from there: "
                             f"{where or proc.stderr.strip()}")

    def step(self, name: str, payload: dict[str, Any], nobody: bool = False,
             timeout: float = 180.0) -> dict[str, Any]:
        """Run one step of this script in a child process importing this version (as uid
        65534 when nobody); its JSON answer. Payload goes on stdin (it may hold secrets)."""
        argv = [*(NOBODY if nobody else []), sys.executable, str(Path(__file__).resolve()),
                "--step", name]
        try:
            proc = subprocess.run(argv, env=self.env, input=json.dumps(payload),
                                  capture_output=True, text=True, timeout=timeout,
                                  cwd=self.workdir)
        except subprocess.TimeoutExpired:
            raise ProbeError(f"step {name} did not finish in {timeout:.0f}s") from None
        if proc.returncode != 0:
            raise ProbeError(f"step {name} failed ({proc.returncode}): "
                             f"{proc.stderr.strip()[-2000:]}")
        answer: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return answer


class Cluster:
    """A throw-away ``cardume vcluster`` of one target."""

    def __init__(self, target: Target, name: str) -> None:
        self.target = target
        self.root = target.workdir / name
        self.base_ip = ""
        self.os_marker_dir = target.workdir / f"{name}-records"

    # --- life ---------------------------------------------------------------------------

    def up(self, fresh: bool = True) -> None:
        if fresh:
            self.base_ip = free_base_ip(NODES + 4)
            progress(f"{self.target.label}: cluster {self.root.name} on {self.base_ip}..")
        argv = ["vcluster", "up", "--nodes", str(NODES), "--root", str(self.root)]
        if fresh:
            argv += ["--base-ip", self.base_ip]
        result = self.cardume(*argv, timeout=180)
        if result.rc != 0:
            raise ProbeError(f"vcluster up failed: {result.shown()}")
        if fresh:
            shutil.copytree(FIXTURE_OS, self.root / "os" / "dummy")
            os.makedirs(self.os_marker_dir, exist_ok=True)
            with open(self.root / "hosts", "a", encoding="ascii") as hosts:
                for index in range(1, 10):  # names of instances, on addresses nobody uses
                    hosts.write(f"{ip_plus(self.base_ip, 100 + index)} vm{index}\n")
                hosts.write(f"{self.ip(NODES + 3)} node9\n")  # resolves, nothing listens

    def down(self) -> None:
        if (self.root / "nodes").is_dir():
            self.cardume("vcluster", "down", "--purge", "--root", str(self.root), timeout=180)
        shutil.rmtree(self.root, ignore_errors=True)

    # --- commands -----------------------------------------------------------------------

    def env(self, node: str | None = None) -> dict[str, str]:
        env = dict(self.target.env, CARDUME_ROOT=str(self.root))
        if node is not None:
            env["CARDUME_NODE"] = node
        return env

    def run(self, argv: Sequence[str], timeout: float = 120.0,
            node: str | None = None) -> Result:
        argv = list(argv)
        try:
            proc = subprocess.run(argv, env=self.env(node), stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=timeout,
                                  errors="replace")
        except subprocess.TimeoutExpired as err:
            def text(data: Any) -> str:
                if isinstance(data, bytes):
                    return data.decode(errors="replace")
                return data or ""
            return Result(argv, -1, text(err.stdout), text(err.stderr), timed_out=True)
        return Result(argv, proc.returncode, proc.stdout, proc.stderr)

    def gnt(self, command: str, *args: str, timeout: float = 120.0,
            node: str | None = None) -> Result:
        return self.run([str(BIN / command), *args], timeout, node)

    def must(self, command: str, *args: str, timeout: float = 120.0,
             node: str | None = None) -> Result:
        result = self.gnt(command, *args, timeout=timeout, node=node)
        if result.rc != 0:
            raise ProbeError(f"{command} {' '.join(args)}: {result.shown()}")
        return result

    def cardume(self, *args: str, timeout: float = 120.0) -> Result:
        return self.run([str(BIN / "cardume"), *args], timeout)

    # --- what there is ------------------------------------------------------------------

    def ip(self, index: int) -> str:
        return ip_plus(self.base_ip, index - 1)

    def node_dir(self, name: str) -> Path:
        return self.root / "nodes" / name

    def pid(self, node: str, daemon: str) -> int | None:
        try:
            pid = int((self.node_dir(node) / "run" / f"{daemon}.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def master(self) -> str:
        return self.gnt("gnt-cluster", "getmaster").out.strip()

    def daemons(self) -> dict[str, int | None]:
        """'nodeK/noded' and the master's 'nodeK/masterd' -> pid (None: not running)."""
        found: dict[str, int | None] = {}
        for index in range(1, NODES + 1):
            node = f"node{index}"
            found[f"{node}/noded"] = self.pid(node, "noded")
            if (self.node_dir(node) / "run" / "masterd.pid").exists():
                found[f"{node}/masterd"] = self.pid(node, "masterd")
        return found

    def jobs(self, node: str | None = None) -> dict[int, tuple[str, str]]:
        """id -> (status, summary) of every job the master lists."""
        out = self.must("gnt-job", "list", "--no-headers", "--separator=|", "-o",
                        "id,status,summary", node=node).out
        found = {}
        for line in out.splitlines():
            parts = line.split("|", 2)
            if len(parts) == 3 and parts[0].strip().isdigit():
                found[int(parts[0])] = (parts[1].strip(), parts[2].strip())
        return found

    def job_id(self, result: Result) -> int:
        match = re.search(r"^JobID: (\d+)$", result.err + result.out, re.MULTILINE)
        if result.rc != 0 or not match:
            raise ProbeError(f"{' '.join(result.argv[:4])}: no job id: {result.shown()}")
        return int(match.group(1))

    def instances(self) -> list[str]:
        return self.must("gnt-instance", "list", "--no-headers", "-o", "name").out.split()

    def disk_files(self) -> list[Path]:
        return sorted(self.root.glob("nodes/*/disk/**/*file.disk*"))

    def log_files(self) -> list[Path]:
        return sorted(self.root.glob("nodes/*/log/*.log"))


class LogWatch:
    """Counts tracebacks written to a set of log files since the last look."""

    def __init__(self, files: Callable[[], list[Path]]) -> None:
        self._files = files
        self._offsets: dict[Path, int] = {}
        self.new()

    def new(self) -> list[str]:
        """(file: first line of) each traceback written since the last call."""
        found = []
        for path in self._files():
            try:
                with open(path, "rb") as handle:
                    handle.seek(self._offsets.get(path, 0))
                    data = handle.read()
                    self._offsets[path] = handle.tell()
            except OSError:
                continue
            text = data.decode(errors="replace")
            for match in re.finditer(re.escape(TRACEBACK), text):
                tail = text[match.end():].splitlines()[1:]  # from the line after it
                # the exception: the first line of the block that is not indented
                last = next((line for line in tail if line and not line.startswith(" ")),
                            "")
                found.append(f"{path.parent.parent.name}/{path.name}: {last[:200]}")
        return found


# --- part 1: bad input ---------------------------------------------------------------------


@dataclass
class Case:
    argv: list[str]
    undo: list[list[str]] = field(default_factory=list)  # run when it was accepted


def bad_commands() -> list[Case]:
    """Bad command lines over every gnt-* family. A few undo commands put the cluster back
    when an old version accepts a case, so that the next cases meet the same cluster."""
    label253 = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # a DNS name, 253 chars
    add = ["gnt-instance", "add", "-t", "diskless", "-o", "dummy+default", "-n", "node1",
           "--no-start", "--no-name-check", "--no-ip-check"]
    fadd = ["gnt-instance", "add", "-t", "file", "-o", "dummy+default", "-n", "node1",
            "--no-start", "--no-name-check", "--no-ip-check"]
    cases: list[Case] = []

    def case(*argv: str, undo: Sequence[Sequence[str]] = ()) -> None:
        cases.append(Case(list(argv), [list(u) for u in undo]))

    def add_case(name: str, *extra: str, base: Sequence[str] = add) -> None:
        # "--": a name starting with "-" must reach the name check, not the option parser
        case(*base, *extra, "--", name, undo=[["gnt-instance", "remove", "-f", name]])

    # instance names
    for name in (label253, label253 + "e", "a" * 64, "x" * 300, "vmé", "вм1", "vm\u200b1",
                 "vm\U0001F600", "../etc", "vm/x", "-vm", "vm_x", "vm..x", "", " vm",
                 "vm\nx", "vm;id", "vm1 vm2"):
        add_case(name)
    add_case("vm8", "-o", "nosuchos+default")
    add_case("vm8", "-o", "dummy+nosuchvariant")
    add_case("vm8", "-O", "nosuchparam=1")
    add_case("vm8", "-n", "nosuchnode")
    add_case("vm8", "-t", "nosuchtemplate")
    add_case("vm8", "-t", "drbd", "--disk", "0:size=1g")  # not enabled on the cluster
    add_case("vm1")  # exists already
    # disk sizes and syntax
    for disk in ("0:size=-1", "0:size=0", "0:size=1e308", "0:size=nan", "0:size=inf",
                 "0:size=1x", "0:size=100t", "0:size=99999999999999999999999g",
                 "0:size=\u00b2", "0:", "x:size=1g", "0:size=1g,mode=rwx",
                 "1000000:size=1g"):
        add_case("vm8", "--disk", disk, base=fadd)
    add_case("vm8", "--disk", "0:size=1g", "--disk", "0:size=1g", base=fadd)
    # backend and hypervisor parameters, NICs, tags
    for beparams in ("memory=-1", "memory=abc", "memory=1e308", "memory=nan", "vcpus=0",
                     "vcpus=-3", "nosuchparam=1", "memory", "memory=\u00b2"):
        add_case("vm8", "-B", beparams)
    for hvparams in ("fake:nosuch=1", "nosuchhv", "kvm:kernel_path=/x", "fake:migration_mode=x"):
        add_case("vm8", "-H", hvparams)
    for nic in ("0:ip=999.1.1.1", "0:mac=zz:zz", "0:mode=nosuch", "x:link=br0"):
        add_case("vm8", "--net", nic)
    for tag in ("tagé", "a b", "x" * 200):  # (--tags '' is no tags, as in Ganeti)
        add_case("vm8", "--tags", tag)
    # other instance commands on a real instance (vm1) or none
    case("gnt-instance", "remove", "-f", "nosuchvm")
    case("gnt-instance", "startup", "nosuchvm")
    case("gnt-instance", "info", "nosuchvm")
    case("gnt-instance", "migrate", "-f", "nosuchvm")
    case("gnt-instance", "modify", "-B", "memory=-5", "vm1",
         undo=[["gnt-instance", "modify", "-B", "memory=128", "vm1"]])
    case("gnt-instance", "modify", "-B", "memory=abc", "vm1")
    case("gnt-instance", "modify", "-B", "memory=inf", "vm1",
         undo=[["gnt-instance", "modify", "-B", "memory=128", "vm1"]])
    for tag in ("tagé", "", "a b", "x" * 200):
        case("gnt-instance", "add-tags", "vm1", tag,
             undo=[["gnt-instance", "remove-tags", "vm1", tag]])
    rename = ["gnt-instance", "rename", "-f", "--no-name-check", "--no-ip-check"]
    for name in ("vmé", label253):
        case(*rename, "vm1", name, undo=[[*rename, name, "vm1"]])
    for amount in ("-1g", "nan", "inf", "1e308"):
        case("gnt-instance", "grow-disk", "--", "vm1", "0", amount)
    case("gnt-instance", "grow-disk", "vm1", "9", "1g")
    # nodes
    case("gnt-node", "add", "--join-token", "garbage", "node9")
    case("gnt-node", "add", "--join-token", "", "node9")
    case("gnt-node", "add", "--join-token", "cardume-join:v1:" + "0" * 64 + ":" + "x" * 43,
         "node9")
    case("gnt-node", "add", "nosuchnode")
    case("gnt-node", "add", "--join-token", "garbage", "-s", "999.999.1.1", "node9")
    case("gnt-node", "modify", "-C", "maybe", "node2")
    case("gnt-node", "modify", "-O", "yes", "nosuchnode")
    case("gnt-node", "remove", "nosuchnode")
    case("gnt-node", "remove", "node1")  # the master
    for tag in ("tagé", "x" * 200, ""):
        case("gnt-node", "add-tags", "node1", tag,
             undo=[["gnt-node", "remove-tags", "node1", tag]])
    case("gnt-node", "info", "nosuchnode")
    case("gnt-node", "list", "-o", "nosuchfield")
    # groups
    for group in ("groupé", "", "a b", "default"):
        case("gnt-group", "add", group, undo=[["gnt-group", "remove", group]])
    case("gnt-group", "remove", "default")
    case("gnt-group", "rename", "default", "a b",
         undo=[["gnt-group", "rename", "a b", "default"]])
    case("gnt-group", "assign-nodes", "nosuchgroup", "node2")
    case("gnt-group", "add", "--alloc-policy", "nosuch", "g2",
         undo=[["gnt-group", "remove", "g2"]])
    case("gnt-group", "add-tags", "default", "tagé",
         undo=[["gnt-group", "remove-tags", "default", "tagé"]])
    # cluster
    restore_dir = [["gnt-cluster", "modify", "--file-storage-dir", FILE_STORAGE]]
    for directory in ("/etc", "/", "/proc", "/srv/../etc", "relative/dir", "",
                      "/srv/ganeti/elsewhere"):  # the last strands vm1's disk
        case("gnt-cluster", "modify", "--file-storage-dir", directory, undo=restore_dir)
    case("gnt-cluster", "modify", "--shared-file-storage-dir", "/etc",
         undo=[["gnt-cluster", "modify", "--shared-file-storage-dir", "SHARED"]])
    case("gnt-cluster", "modify", "-B", "memory=-1",
         undo=[["gnt-cluster", "modify", "-B", "memory=128"]])
    case("gnt-cluster", "modify", "-H", "fake:migration_mode=sideways",
         undo=[["gnt-cluster", "modify", "-H", "fake:migration_mode=live"]])
    for jobs in ("0", "-1", "1e308", "nan"):
        case("gnt-cluster", "modify", "--max-running-jobs", jobs,
             undo=[["gnt-cluster", "modify", "--max-running-jobs", "20"]])
    for size in ("-1", "abc"):
        case("gnt-cluster", "modify", "-C", size,
             undo=[["gnt-cluster", "modify", "-C", "10"]])
    for tag in ("tagé", "x" * 200, ""):
        case("gnt-cluster", "add-tags", tag, undo=[["gnt-cluster", "remove-tags", tag]])
    case("gnt-cluster", "modify", "--enabled-hypervisors", "nosuchhv")
    case("gnt-cluster", "modify", "--enabled-disk-templates", "nosuch")
    case("gnt-cluster", "modify", "--mac-prefix", "zz:zz:zz")
    case("gnt-cluster", "modify", "--uid-pool", "5-1")
    # jobs
    huge = str(10 ** 30)
    for job in (huge, "-1", "abc", "\u00b2", "999999"):
        case("gnt-job", "info", job)
    case("gnt-job", "cancel", huge)
    case("gnt-job", "archive", huge)
    case("gnt-job", "wait", huge)
    case("gnt-job", "list", huge)
    # delays (submitted: a delay that was accepted would otherwise hold the command)
    for duration in ("inf", "1e308", "100000", "-1", "nan", "-inf", "abc"):
        case("gnt-debug", "delay", "--submit", "--", duration)
    case("gnt-debug", "delay", "--submit", "--repeat", "100000000", "0")
    case("gnt-debug", "delay", "--submit", "--repeat", "-1", "0")
    # OS
    case("gnt-os", "list", "-o", "nosuchfield")
    return cases


def snapshot(cluster: Cluster) -> dict[str, Any]:
    """What a refused command must leave as it was."""
    queries = {
        "cluster": ["gnt-cluster", "info"],
        "nodes": ["gnt-node", "list", "--no-headers", "-o",
                  "name,role,pip,group,master_candidate,drained,offline,serial_no,tags"],
        "instances": ["gnt-instance", "list", "--no-headers", "-o",
                      "name,pnode,status,disk_template,os,be/memory,serial_no,disk.sizes"],
        "groups": ["gnt-group", "list", "--no-headers", "-o", "name,node_list,serial_no,tags"],
        "jobs": ["gnt-job", "list", "--no-headers", "--separator=|", "-o", "id,status"],
    }
    procs = {key: subprocess.Popen([str(BIN / argv[0]), *argv[1:]], env=cluster.env(),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace")
             for key, argv in queries.items()}
    found: dict[str, Any] = {}
    for key, proc in procs.items():
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        found[key] = out
    jobs = {}
    for line in found.pop("jobs").splitlines():
        parts = line.split("|")
        if len(parts) >= 2 and parts[0].strip().isdigit():
            jobs[int(parts[0])] = parts[1].strip()
    found["jobs"] = jobs
    files = []
    for top in [cluster.root / "storage", *cluster.root.glob("nodes/*/disk")]:
        for path in sorted(top.rglob("*")):
            with contextlib.suppress(OSError):
                files.append(f"{path.relative_to(cluster.root)} {path.lstat().st_size}")
    found["files"] = files
    return found


def debris(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What changed between two snapshots, short. One new job that ended in error (or was
    canceled) is a refusal made by the master, not debris."""
    changed = [key for key in ("cluster", "nodes", "instances", "groups", "files")
               if before[key] != after[key]]
    old, new = before["jobs"], after["jobs"]
    if set(old) - set(new):
        changed.append(f"jobs gone: {sorted(set(old) - set(new))}")
    added = {job: status for job, status in new.items() if job not in old}
    if len(added) > 1 or any(status not in ("error", "canceled") for status in added.values()):
        changed.append("new jobs: " + ", ".join(f"{job} {status}"
                                                for job, status in sorted(added.items())))
    for key in ("cluster", "nodes", "instances", "groups", "files"):
        if key in changed:
            lines_before = set(str(before[key]).splitlines()) if key != "files" \
                else set(before[key])
            lines_after = set(str(after[key]).splitlines()) if key != "files" \
                else set(after[key])
            diff = sorted(lines_after - lines_before)[:3] or sorted(lines_before -
                                                                     lines_after)[:3]
            changed[changed.index(key)] = f"{key}: " + " / ".join(
                line.strip()[:120] for line in diff)
    return changed


def job_ended(cluster: Cluster, job: int) -> bool:
    return cluster.jobs().get(job, ("gone", ""))[0] not in UNFINISHED


def probe_bad_input(target: Target) -> None:
    cluster = Cluster(target, "input")
    cluster.up()
    try:
        cluster.must("gnt-instance", "add", "-t", "file", "--disk", "0:size=64m", "-o",
                     "dummy+default", "-n", "node1", "--no-name-check", "--no-ip-check",
                     "vm1")
        shared = str(cluster.root / "storage" / "shared-file-storage")
        watch = LogWatch(cluster.log_files)
        base = snapshot(cluster)
        if snapshot(cluster) != base:
            progress("warning: two snapshots of the idle cluster differ; debris may be noise")
        cases = bad_commands()
        counts = dict.fromkeys(("tried", "refused", "not_refused", "multiline", "internal",
                                "debris", "crashes", "uncancelable"), 0)
        shown: list[dict[str, Any]] = []
        every: list[dict[str, str]] = []  # in the JSON, to check what a refusal said
        progress(f"{target.label}: {len(cases)} bad command lines..")
        for case in cases:
            daemons = cluster.daemons()
            result = cluster.gnt(*case.argv, timeout=CMD_TIMEOUT)
            after = snapshot(cluster)
            left = debris(base, after)
            # an accepted delay or other job still running: cancel it so it holds no slot
            for job, status in after["jobs"].items():
                if job not in base["jobs"] and status in ("queued", "waiting", "running"):
                    cluster.gnt("gnt-job", "cancel", str(job), timeout=30)
                    ended = wait_for(partial(job_ended, cluster, job), 3)
                    if not ended:
                        counts["uncancelable"] += 1
                        left.append(f"job {job} still running after gnt-job cancel")
            died = [name for name, pid in daemons.items()
                    if pid is not None and not pid_alive(pid)]
            tracebacks = watch.new() + (["in the command's output"] if result.traceback
                                        else [])
            refused = result.rc != 0 and not result.timed_out and not result.traceback
            counts["tried"] += 1
            every.append({"command": shlex.join(case.argv), "result": result.shown()})
            counts["refused"] += refused
            counts["not_refused"] += not refused
            counts["multiline"] += refused and len(result.err_lines) > 1
            internal = refused and "internal_error" in result.err
            counts["internal"] += internal
            counts["debris"] += bool(left)
            counts["crashes"] += bool(died or tracebacks)
            if not refused or left or died or tracebacks or internal or \
                    (refused and len(result.err_lines) > 1):
                shown.append({"command": shlex.join(case.argv), "result": result.shown(),
                              "refused": refused, "debris": left, "died": died,
                              "tracebacks": tracebacks, "internal": internal,
                              "multiline": refused and len(result.err_lines) > 1})
            if died:
                cluster.up(fresh=False)
            if not refused or left:
                for undo in case.undo:
                    argv = [a.replace("SHARED", shared) for a in undo]
                    cluster.gnt(*argv, timeout=60)
            base = snapshot(cluster) if (left or died or not refused) else after
            watch.new()
        for key, value in counts.items():
            target.values[f"input.{key}"] = value
        target.details["bad_input"] = shown
        target.details["bad_input_all"] = every
    finally:
        cluster.down()


# --- part 2: a hostile local user, a compromised node --------------------------------------


def probe_hostile(target: Target) -> None:
    cluster = Cluster(target, "hostile")
    cluster.up()
    extra: int | None = None
    extra_root = target.workdir / "unjoined"
    try:
        # an unjoined node daemon, started the way vcluster starts them
        extra_ip = cluster.ip(NODES + 2)
        extra = int(target.step("start-noded", {"root": str(extra_root), "name": "node8",
                                                "ip": extra_ip, "port": NODED_PORT})["pid"])
        token = cluster.cardume("node", "join-token", "--root", str(extra_root)).out.strip()
        # the admin mistypes the node's name: the token goes into a job that fails
        cluster.gnt("gnt-node", "add", "--join-token", token, "node3", timeout=60)
        cluster.must("gnt-node", "modify", "-C", "no", "--force", "node3")
        demoted_copy = (cluster.node_dir("node3") / "config.db")
        target.values["host.demoted_copy"] = int(not wait_for(
            lambda: not demoted_copy.exists(), 10))
        daemons = cluster.daemons()
        watch = LogWatch(lambda: [*cluster.log_files(), *sorted(extra_root.glob("log/*"))])

        progress(f"{target.label}: uid 65534 reads the state..")
        secrets = [token.rsplit(":", 1)[-1]] if token.startswith("cardume-join:") else []
        found = target.step("walk", {
            "roots": [str(cluster.root), str(extra_root)], "secrets": secrets,
            "base": str(target.workdir),
            "target": [cluster.ip(2), NODED_PORT], "name": "node1", "ip": cluster.ip(1)},
            nobody=True)
        files = found["files"]
        target.values["host.secret_files"] = len(files)
        for kind in ("key", "token", "config"):
            target.values[f"host.{kind}_files"] = sum(kind in f["kinds"] for f in files)
        target.values["host.ca_key"] = int(found["ca_key"])
        target.values["host.stolen_ca_calls"] = sum(
            outcome.startswith("answered") for outcome in found["calls"].values())
        target.details["hostile_files"] = files
        target.details["stolen_ca_calls"] = found["calls"]

        master_socket = cluster.node_dir("node1") / "run" / "master.sock"
        luxi = target.step("luxi", {"socket": str(master_socket)}, nobody=True)
        target.values["host.luxi"] = int(luxi["usable"])
        target.details["luxi"] = luxi["detail"]

        progress(f"{target.label}: malformed requests, {BODY_MIB} MiB bodies..")
        certs = cluster.node_dir("node3") / "certs"
        malformed = target.step("malformed", {"host": extra_ip, "port": NODED_PORT},
                                nobody=True)["cases"]
        joined = target.step("malformed", {
            "host": cluster.ip(2), "port": NODED_PORT, "cert": str(certs / "node.pem"),
            "key": str(certs / "node-key.pem")})["cases"]
        outcomes = {f"unjoined: {k}": v for k, v in malformed.items()}
        outcomes.update({f"node2 (node3's cert): {k}": v for k, v in joined.items()})
        target.values["host.malformed"] = len(outcomes)
        target.values["host.malformed_no_4xx"] = sum(
            not re.match(r"4\d\d\b", outcome) for outcome in outcomes.values())
        target.details["malformed"] = outcomes

        before_rss, _ = rss_kib(extra)
        peak = [before_rss]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                rss, hwm = rss_kib(extra or 0)
                peak.append(max(rss, hwm))
                time.sleep(0.05)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            bodies = target.step("bodies", {"host": extra_ip, "port": NODED_PORT,
                                            "clients": BODY_CLIENTS, "mib": BODY_MIB},
                                 nobody=True, timeout=300)
        finally:
            stop.set()
            sampler.join()
        target.values["host.rss_before"] = round(before_rss / 1024, 1)
        target.values["host.rss_peak"] = round(max(peak) / 1024, 1)
        target.values["host.bodies_taken"] = sum(c["taken"] for c in bodies["clients"])
        target.details["bodies"] = bodies["clients"]
        target.values["host.noded_tracebacks"] = len(watch.new())

        progress(f"{target.label}: node calls with foreign and plain-node certificates..")
        foreign = target.step("rpc", {"foreign": True, "calls": [
            [cluster.ip(2), NODED_PORT, "version"], [cluster.ip(2), NODED_PORT, "config_dump"],
            [cluster.ip(1), NODED_PORT, "master_stop"]]}, nobody=True)["outcomes"]
        target.values["host.foreign_answered"] = sum(o.startswith("answered") for o in foreign)
        target.details["foreign_calls"] = foreign
        # node3 is a plain node now: with its own certificate it asks the candidate node2
        # for the configuration, then the master's node for master_stop
        plain = {"cert": str(certs / "node.pem"), "key": str(certs / "node-key.pem"),
                 "ca": str(certs / "ca.pem")}
        dump = target.step("rpc", {**plain, "calls": [
            [cluster.ip(2), NODED_PORT, "config_dump"]]})["outcomes"]
        target.values["host.plain_config_dump"] = int(dump[0] == "answered: private key")
        died = [name for name, pid in daemons.items() if pid is not None and not pid_alive(pid)]
        masterd = cluster.pid("node1", "masterd")
        stop_call = target.step("rpc", {**plain, "calls": [
            [cluster.ip(1), NODED_PORT, "master_stop"]]})["outcomes"]
        if masterd is not None:
            wait_for(lambda: not pid_alive(masterd), 5)
        stopped = masterd is not None and not pid_alive(masterd)
        target.values["host.plain_master_stop"] = int(stopped)
        target.details["plain_calls"] = {"config_dump": dump[0], "master_stop": stop_call[0]}
        died += [] if pid_alive(extra) else ["unjoined noded"]
        target.values["host.crashes"] = len(died)
        target.details["hostile_died"] = died
    finally:
        if extra is not None:
            stop_process_group(extra)
        cluster.down()
        shutil.rmtree(extra_root, ignore_errors=True)


def stop_process_group(pid: int) -> None:
    """SIGTERM a daemon this probe started (its own session), then SIGKILL its group."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), 10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# --- part 3: faults ------------------------------------------------------------------------

def probe_faults(target: Target) -> None:
    cluster = Cluster(target, "faults")
    cluster.up()
    try:
        kill_master_with_jobs(target, cluster)
        failover_with_jobs(target, cluster)
        kill_master_during_add(target, cluster)
        kill_noded_during_add(target, cluster)
    finally:
        for pid in processes_mentioning(str(cluster.os_marker_dir)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        cluster.down()


def submit_delay(cluster: Cluster, seconds: float) -> tuple[int, str]:
    result = cluster.gnt("gnt-debug", "delay", "--submit", f"{seconds:g}", timeout=30)
    return cluster.job_id(result), f"{seconds:g}"


def kill_master_with_jobs(target: Target, cluster: Cluster) -> None:
    progress(f"{target.label}: master SIGKILL with jobs queued and running..")
    cluster.must("gnt-cluster", "modify", "--max-running-jobs", "2")
    acked: dict[int, str] = {}  # id -> the delay it was given (in its summary)
    for index in range(8):
        job, shown = submit_delay(cluster, 1 + (index + 1) / 1000)
        acked[job] = shown
    stop = threading.Event()

    def keep_submitting() -> None:  # jobs still arriving when the master dies
        index = 0
        while not stop.is_set():
            index += 1
            result = cluster.gnt("gnt-debug", "delay", "--submit", f"{0.5 + index / 1000:g}",
                                 timeout=30)
            match = re.search(r"^JobID: (\d+)$", result.err, re.MULTILINE)
            if result.rc != 0 or not match:
                return
            acked[int(match.group(1))] = f"{0.5 + index / 1000:g}"
    submitter = threading.Thread(target=keep_submitting, daemon=True)
    submitter.start()
    time.sleep(0.5)  # a load for the kill to land in, not a wait for a condition
    masterd = cluster.pid("node1", "masterd")
    if masterd is None:
        raise ProbeError("no master daemon on node1")
    os.kill(masterd, signal.SIGKILL)
    stop.set()
    submitter.join(60)
    wait_for(lambda: not pid_alive(masterd), 10)
    cluster.up(fresh=False)
    jobs = cluster.jobs()
    lost = [job for job, shown in acked.items()
            if job not in jobs or f"({shown})" not in jobs[job][1]]
    target.values["fault.kill_acked"] = len(acked)
    target.values["fault.kill_lost"] = len(lost)
    target.details["kill_lost"] = {job: jobs.get(job) for job in lost}
    wait_for(lambda: not any(s in UNFINISHED for s, _ in cluster.jobs().values()), 60, 0.5)


def failover_with_jobs(target: Target, cluster: Cluster) -> None:
    progress(f"{target.label}: master failover and fail-back with jobs..")
    cluster.must("gnt-cluster", "modify", "--max-running-jobs", "1")
    add_vmq = ["gnt-instance", "add", "-t", "diskless", "-o", "dummy+default", "--no-start",
               "-n", "node2", "--no-name-check", "--no-ip-check", "vmq"]
    cluster.must(*add_vmq)
    finished = cluster.job_id(cluster.gnt("gnt-debug", "delay", "--submit", "0"))
    wait_for(lambda: cluster.jobs()[finished][0] == "success", 30)
    running = cluster.job_id(cluster.gnt("gnt-debug", "delay", "--submit", "3600"))
    wait_for(lambda: cluster.jobs()[running][0] == "running", 30)
    remove = cluster.job_id(cluster.gnt("gnt-instance", "remove", "-f", "--submit", "vmq"))
    tag = cluster.job_id(cluster.gnt("gnt-cluster", "add-tags", "--submit", "probe-queued"))
    cluster.job_id(cluster.gnt("gnt-debug", "delay", "--submit", "0.25"))
    before = cluster.jobs()
    target.values["fault.fo_acked"] = len(before)

    result = cluster.gnt("gnt-cluster", "master-failover", node="node2", timeout=180)
    if result.rc != 0:
        raise ProbeError(f"master-failover to node2: {result.shown()}")
    wait_for(lambda: cluster.master() == "node2", 30)
    # what the new master had to do: the queued jobs (if it has them) end
    wait_for(lambda: all(cluster.jobs().get(job, ("gone",))[0] not in UNFINISHED
                         for job in (remove, tag)), 20, 0.3)
    on_node2 = cluster.jobs()
    lost = [job for job, (_, summary) in before.items()
            if job not in on_node2 or on_node2[job][1] != summary]
    new_ids = [cluster.job_id(cluster.gnt("gnt-debug", "delay", "--submit", "0"))
               for _ in range(3)]
    wait_for(lambda: all(cluster.jobs().get(j, ("gone",))[0] not in UNFINISHED
                         for j in new_ids), 20, 0.3)
    reused = [job for job in new_ids if job in before]
    # the admin carries on on the new master: a new vmq, the tag taken away
    if "vmq" not in cluster.instances():
        cluster.must(*add_vmq)
    if "probe-queued" in cluster.must("gnt-cluster", "list-tags").out.split():
        cluster.must("gnt-cluster", "remove-tags", "probe-queued")
    known = cluster.jobs()

    result = cluster.gnt("gnt-cluster", "master-failover", node="node1", timeout=180)
    if result.rc != 0:
        raise ProbeError(f"master-failover back to node1: {result.shown()}")
    wait_for(lambda: cluster.master() == "node1", 30)
    wait_for(lambda: all(cluster.jobs().get(job, ("gone",))[0] not in UNFINISHED
                         for job in (remove, tag)), 20, 0.3)
    back = cluster.jobs()
    # what the admin saw on node2 must still be there on node1 (ids alone may clash)
    lost += [job for job, (_, summary) in known.items()
             if job not in back or back[job][1] != summary]
    another = cluster.job_id(cluster.gnt("gnt-debug", "delay", "--submit", "0"))
    if another in known or another in before:
        reused.append(another)
    twice = []
    if "vmq" not in cluster.instances():
        twice.append(f"job {remove} (gnt-instance remove vmq) removed the new vmq")
    if "probe-queued" in cluster.must("gnt-cluster", "list-tags").out.split():
        twice.append(f"job {tag} (gnt-cluster add-tags) added the tag again")
    target.values["fault.fo_lost"] = len(lost)
    target.values["fault.fo_reused"] = len(reused)
    target.values["fault.fo_twice"] = len(twice)
    target.details["failover"] = {"lost": lost, "reused": reused, "ran_again": twice}
    cluster.gnt("gnt-job", "cancel", str(running), timeout=30)
    cluster.must("gnt-cluster", "modify", "--max-running-jobs", "20")


def start_slow_add(cluster: Cluster, name: str, node: str) -> tuple[int, bytes]:
    """Submit a file-disk add whose OS create script sleeps 30 s; its job id and the marker
    in its processes' environment, once the script's sleep runs."""
    record = cluster.os_marker_dir / name
    result = cluster.gnt("gnt-instance", "add", "-t", "file", "--disk", "0:size=64m", "-o",
                         "dummy+default", "-O", f"flavour=sleep30,record={record}", "-n", node,
                         "--no-name-check", "--no-ip-check", "--submit", name)
    job = cluster.job_id(result)
    marker = f"OSP_RECORD={record}".encode()

    def sleeping() -> bool:
        return ["sleep", "30"] in processes_with(marker).values() and \
            any(p.parent.name == name for p in cluster.disk_files())
    if not wait_for(sleeping, 60):
        raise ProbeError(f"the OS create script of {name} did not start")
    return job, marker


def orphan_disks(cluster: Cluster) -> list[Path]:
    known = set(cluster.instances())
    return [path for path in cluster.disk_files() if path.parent.name not in known]


def kill_master_during_add(target: Target, cluster: Cluster) -> None:
    progress(f"{target.label}: master SIGKILL during an add's OS install..")
    job, _ = start_slow_add(cluster, "vmk", "node1")
    masterd = cluster.pid("node1", "masterd")
    if masterd is None:
        raise ProbeError("no master daemon on node1")
    os.kill(masterd, signal.SIGKILL)
    wait_for(lambda: not pid_alive(masterd), 10)
    cluster.up(fresh=False)
    wait_for(lambda: cluster.jobs().get(job, ("gone",))[0] not in UNFINISHED, 60, 0.5)
    # the restarted master undoes what the add made; give it the time the script has left
    wait_for(lambda: orphan_disks(cluster) == [], 20, 0.5)
    orphans = orphan_disks(cluster)
    verify = cluster.gnt("gnt-cluster", "verify", timeout=120)
    unreported = [p for p in orphans if p.parent.name not in verify.out + verify.err
                  and p.name not in verify.out + verify.err]
    target.values["fault.add_orphans"] = len(orphans)
    target.values["fault.add_unreported"] = len(unreported)
    target.details["add_orphans"] = [str(p.relative_to(cluster.root)) for p in orphans]


def kill_noded_during_add(target: Target, cluster: Cluster) -> None:
    progress(f"{target.label}: node daemon SIGKILL during an add's OS install..")
    job, marker = start_slow_add(cluster, "vmn", "node2")
    noded = cluster.pid("node2", "noded")
    if noded is None:
        raise ProbeError("no node daemon on node2")
    os.kill(noded, signal.SIGKILL)

    def loops() -> list[tuple[str, str]]:
        return [d for d in loop_devices_under(str(cluster.root)) if "/vmn/" in d[1]]
    wait_for(lambda: not processes_with(marker) and not loops(), 10, 0.2)
    orphans = processes_with(marker)
    target.values["fault.noded_procs"] = len(orphans)
    target.values["fault.noded_loops"] = len(loops())
    wait_for(lambda: cluster.jobs().get(job, ("gone",))[0] not in UNFINISHED, 60, 0.5)
    info = cluster.gnt("gnt-job", "info", str(job)).out
    reason = next((line.strip() for line in info.splitlines() if "node2" in line
                   and "connection" in line), "")
    target.details["noded_kill"] = {"processes": [" ".join(a) for a in orphans.values()],
                                    "loops": loops(), "job_error": reason[:300]}
    for pid in orphans:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    cluster.up(fresh=False)


# --- steps: run in a child process, under the probed version's src (some as uid 65534) ------


def step_start_noded(payload: dict[str, Any]) -> dict[str, Any]:
    from cardume import daemons
    from cardume.paths import NodePaths
    pid = daemons.start(NodePaths(payload["root"]), "noded",
                        ["--name", payload["name"], "--bind", payload["ip"],
                         "--port", str(payload["port"])])
    return {"pid": pid}


def step_walk(payload: dict[str, Any]) -> dict[str, Any]:
    """As the hostile user: every state file it can read that holds a key, a join token
    (or a known token's secret), or the configuration; then the CA key, if one of the keys
    signs one of the certificates found and that certificate is a CA's, and two node calls
    with a certificate made with it."""
    secrets = [s.encode() for s in payload["secrets"] if s]
    files = []
    keys: list[bytes] = []
    certs: list[bytes] = []
    for top in payload["roots"]:
        for dirpath, _, filenames in os.walk(top):
            for filename in filenames:
                path = os.path.join(dirpath, filename)
                data = _read_regular(path)
                if data is None:
                    continue
                kinds = []
                found_keys = [_unescape(m.group(0)) for m in _PEM_KEY.finditer(data)]
                if found_keys:
                    kinds.append("key")
                    keys += found_keys
                certs += [_unescape(m.group(0)) for m in _PEM_CERT.finditer(data)]
                if _TOKEN.search(data) or any(s in data for s in secrets):
                    kinds.append("token")
                if filename.startswith("config.db"):
                    kinds.append("config")
                if kinds:
                    files.append({"path": os.path.relpath(path, payload["base"]),
                                  "kinds": kinds,
                                  "mode": f"{os.stat(path).st_mode & 0o777:03o}"})
    ca = _find_ca(keys, certs)
    calls: dict[str, str] = {}
    if ca is not None:
        import tempfile as tmp

        from cardume import tls
        key = tls.new_private_key()
        cert = tls.sign_node_cert(ca[0], ca[1], tls.self_signed(payload["name"], key),
                                  payload["name"], [payload["ip"]])
        with tmp.TemporaryDirectory() as scratch:
            for name, data in (("cert.pem", cert), ("key.pem", key)):
                Path(scratch, name).write_bytes(data)
            host, port = payload["target"]
            outcomes = _rpc_calls(os.path.join(scratch, "cert.pem"),
                                  os.path.join(scratch, "key.pem"), None,
                                  [[host, port, "version"], [host, port, "config_dump"]])
        calls = {"version": outcomes[0], "config_dump": outcomes[1]}
    return {"files": files, "ca_key": ca is not None, "calls": calls}


def _read_regular(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        import stat
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            if len(chunks) > 256:  # 256 MiB: a disk image, not state
                break
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _unescape(pem: bytes) -> bytes:
    """A PEM block as found in a file; JSON strings hold its newlines as \\n."""
    return pem.replace(b"\\n", b"\n")


def _find_ca(keys: list[bytes], certs: list[bytes]) -> tuple[bytes, bytes] | None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    for cert_pem in dict.fromkeys(certs):
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        except Exception:  # noqa: BLE001 (a fragment, or a leaf certificate)
            continue
        if not constraints.value.ca:
            continue
        wanted = cert.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        for key_pem in dict.fromkeys(keys):
            try:
                key = serialization.load_pem_private_key(key_pem, None)
            except Exception:  # noqa: BLE001
                continue
            public = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            if public == wanted:
                return cert_pem, key_pem
    return None


def step_luxi(payload: dict[str, Any]) -> dict[str, Any]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    try:
        sock.connect(payload["socket"])
        sock.sendall(json.dumps({"method": "QueryClusterInfo", "args": [],
                                 "version": 1}).encode() + b"\x03")
        reply = b""
        while b"\x03" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        answer = json.loads(reply.partition(b"\x03")[0] or b"{}")
        return {"usable": bool(answer.get("success")), "detail": "answered"}
    except OSError as err:
        return {"usable": False, "detail": f"{type(err).__name__}: {err.strerror or err}"}
    finally:
        sock.close()


def _tls_context(cert: str | None, key: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the hostile user does not care who answers
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def _raw_request(host: str, port: int, data: bytes, ctx: ssl.SSLContext,
                 timeout: float = 5.0) -> str:
    """Send raw bytes over TLS; the reply's status code, or what happened instead."""
    try:
        with socket.create_connection((host, port), timeout) as raw, \
                ctx.wrap_socket(raw) as conn:
            conn.settimeout(timeout)
            try:
                conn.sendall(data)
            except OSError as err:
                sent_error = f"send failed: {type(err).__name__}"
            else:
                sent_error = ""
            reply = b""
            try:
                while b"\r\n" not in reply:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
            except TimeoutError:
                return "no reply (timed out)"
            except OSError as err:
                return f"no reply ({type(err).__name__})"
    except OSError as err:
        return f"no connection ({type(err).__name__}: {err})"
    status = reply.split(b"\r\n", 1)[0].split()
    if len(status) >= 2 and status[0].startswith(b"HTTP/"):
        return status[1].decode(errors="replace")
    return sent_error or ("connection closed without a reply" if not reply
                          else f"not HTTP: {reply[:40]!r}")


def malformed_requests() -> dict[str, bytes]:
    def post(headers: bytes, body: bytes = b"{}", target: bytes = b"/version") -> bytes:
        return (b"POST " + target + b" HTTP/1.1\r\nHost: node\r\n"
                b"Content-Type: application/json\r\n" + headers + b"\r\n" + body)

    def length(body: bytes) -> bytes:
        return b"Content-Length: %d\r\n" % len(body)
    deep = b"[" * 100000 + b"]" * 100000
    return {
        "Content-Length: \u00b2 (latin-1)": post(b"Content-Length: \xb2\r\n"),
        "Content-Length: \u00b2 (utf-8)": post(b"Content-Length: \xc2\xb2\r\n"),
        "Content-Length: arabic-indic 2": post("Content-Length: \u0662\r\n".encode()),
        "Content-Length: -1": post(b"Content-Length: -1\r\n"),
        "Content-Length: 5000 digits": post(b"Content-Length: " + b"9" * 5000 + b"\r\n"),
        "Content-Length: 0x2": post(b"Content-Length: 0x2\r\n"),
        "two different Content-Length": post(b"Content-Length: 2\r\nContent-Length: 3\r\n"),
        "Transfer-Encoding: chunked": post(b"Transfer-Encoding: chunked\r\n",
                                           b"2\r\n{}\r\n0\r\n\r\n"),
        "space in a header name": post(b"Bad Header: x\r\n" + length(b"{}")),
        "folded header line": post(b"X-A: a\r\n folded\r\n" + length(b"{}")),
        "NUL in a header": post(b"X-A: a\x00b\r\n" + length(b"{}")),
        "non-ASCII target": post(length(b"{}"), target="/v\u00e9rsion".encode()),
        "garbage request line": b"GARBAGE\r\n\r\n",
        "header line of 100 KiB": post(b"X-A: " + b"a" * 102400 + b"\r\n" + length(b"{}")),
        "JSON nested 100000 deep": post(length(deep), deep),
        "invalid JSON": post(length(b"{"), b"{"),
        "invalid UTF-8 body": post(length(b'{"a": "\xff"}'), b'{"a": "\xff"}'),
    }


def step_malformed(payload: dict[str, Any]) -> dict[str, Any]:
    ctx = _tls_context(payload.get("cert"), payload.get("key"))
    return {"cases": {name: _raw_request(payload["host"], payload["port"], data, ctx)
                      for name, data in malformed_requests().items()}}


def step_bodies(payload: dict[str, Any]) -> dict[str, Any]:
    """Clients without a certificate each send a body of payload['mib'] MiB to the public
    join call at once; for each, whether the daemon took it all and what it answered."""
    size = int(payload["mib"]) * MIB
    ctx = _tls_context(None, None)
    chunk = b" " * MIB

    def client(_: int) -> dict[str, Any]:
        sent = 0
        try:
            with socket.create_connection((payload["host"], payload["port"]), 30) as raw, \
                    ctx.wrap_socket(raw) as conn:
                conn.settimeout(60)
                conn.sendall(b"POST /join HTTP/1.1\r\nHost: node\r\nContent-Type: "
                             b"application/json\r\nContent-Length: %d\r\n\r\n" % size)
                try:
                    while sent < size:
                        conn.sendall(chunk)
                        sent += len(chunk)
                except OSError:
                    pass
                try:
                    reply = conn.recv(4096)
                except OSError:
                    reply = b""
        except OSError as err:
            return {"sent_mib": sent // MIB, "taken": False, "reply": f"{err}"}
        status = reply.split(b"\r\n", 1)[0].decode(errors="replace")
        return {"sent_mib": sent // MIB, "taken": sent >= size, "reply": status or "none"}
    with concurrent.futures.ThreadPoolExecutor(int(payload["clients"])) as pool:
        return {"clients": list(pool.map(client, range(int(payload["clients"]))))}


def step_rpc(payload: dict[str, Any]) -> dict[str, Any]:
    """Node calls with a certificate: a plain node's own (cert, key, ca), or one a foreign
    CA signed, named after the master (foreign)."""
    if payload.get("foreign"):
        import tempfile as tmp

        from cardume import tls
        ca_cert, ca_key = tls.create_ca("other.example")
        key = tls.new_private_key()
        cert = tls.sign_node_cert(ca_cert, ca_key, tls.self_signed("node1", key), "node1",
                                  ["127.0.0.1"])
        with tmp.TemporaryDirectory() as scratch:
            Path(scratch, "cert.pem").write_bytes(cert)
            Path(scratch, "key.pem").write_bytes(key)
            outcomes = _rpc_calls(os.path.join(scratch, "cert.pem"),
                                  os.path.join(scratch, "key.pem"), None, payload["calls"])
    else:
        outcomes = _rpc_calls(payload["cert"], payload["key"], payload.get("ca"),
                              payload["calls"])
    return {"outcomes": outcomes}


def _rpc_calls(cert: str, key: str, ca: str | None, calls: list[list[Any]]) -> list[str]:
    """'answered[: private key]' (the handler ran; its result held a private key),
    'refused: ...' (by the node-role rule) or 'no answer: ...' (TLS or the transport)."""
    from cardume import errors, tls
    from cardume.rpc.transport import RpcClient

    async def one(host: str, port: int, name: str) -> str:
        client = RpcClient(tls.client_context(cert, key, ca))
        try:
            result = await client.call(host, int(port), name, {}, 20.0)
        except errors.RpcError as err:
            if f"call '{name}' refused" in err.message:
                return "refused: " + err.message[:200]
            if err.message.startswith("node daemon at"):
                return "no answer: " + err.message[:200]
            return "answered (error): " + err.message[:200]
        except errors.CardumeError as err:
            return "answered (error): " + str(err)[:200]
        finally:
            await client.close()
        return "answered: private key" if "PRIVATE KEY" in json.dumps(result) else "answered"
    return [asyncio.run(one(*call)) for call in calls]


STEPS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "start-noded": step_start_noded, "walk": step_walk, "luxi": step_luxi,
    "malformed": step_malformed, "bodies": step_bodies, "rpc": step_rpc,
}


# --- the run -------------------------------------------------------------------------------


class Sweeper:
    """Everything the probe made, taken away again whatever happened."""

    def __init__(self) -> None:
        self.top = Path(tempfile.mkdtemp(prefix="cardume-secprobe-"))
        os.chmod(self.top, 0o755)  # uid 65534 may walk in: what it then reads is the code's
        self.worktrees: list[Path] = []

    def worktree(self, commit: str) -> Path:
        path = self.top / f"tree-{len(self.worktrees)}"
        proc = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach",
                               str(path), commit], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ProbeError(f"git worktree add {commit}: {proc.stderr.strip()}")
        self.worktrees.append(path)
        return path

    def clean(self) -> list[str]:
        """Stop what is left (processes of our directories, loop devices, mounts), remove
        worktrees and the directory. What had to be cleaned here, for the report."""
        notes = []
        top = str(self.top)
        for pid in processes_mentioning(top):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                notes.append(f"killed leftover process {pid}")
        for device, backing in loop_devices_under(top):
            subprocess.run(["losetup", "-d", device], capture_output=True)
            notes.append(f"detached {device} ({backing})")
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                point = line.split()[1]
                if point.startswith(top + "/"):
                    subprocess.run(["umount", "-l", point], capture_output=True)
                    notes.append(f"unmounted {point}")
        for path in self.worktrees:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(path)], capture_output=True)
        shutil.rmtree(self.top, ignore_errors=True)
        return notes


def probe(target: Target, parts: Sequence[str]) -> None:
    start = time.monotonic()
    target.check_import()
    for name, part in (("input", probe_bad_input), ("hostile", probe_hostile),
                       ("faults", probe_faults)):
        if name not in parts:
            continue
        try:
            part(target)
        except ProbeError as err:
            progress(f"{target.label}: part '{name}' failed: {err}")
            target.details.setdefault("failed", []).append(f"{name}: {err}")
        except Exception:  # noqa: BLE001 (the other parts still run)
            progress(f"{target.label}: part '{name}' crashed:\n{traceback.format_exc()}")
            target.details.setdefault("failed", []).append(
                f"{name}: {traceback.format_exc().strip().splitlines()[-1]}")
        finally:  # a part's leftovers must not reach the next part
            for pid in processes_mentioning(str(target.workdir)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for device, _ in loop_devices_under(str(target.workdir)):
                subprocess.run(["losetup", "-d", device], capture_output=True)
    target.values["probe.seconds"] = round(time.monotonic() - start)


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def print_details(target: Target) -> None:
    print(f"\n== {target.label} ({target.src})")
    for line in target.details.get("failed", []):
        print(f"  PROBE PART FAILED: {line}")
    shown = target.details.get("bad_input", [])
    if shown:
        print("  bad input not refused cleanly, or leaving something behind:")
    for item in shown:
        flags = [] if item["refused"] else ["NOT REFUSED"]
        flags += ["multi-line"] if item["multiline"] else []
        flags += ["internal_error"] if item["internal"] else []
        flags += [f"debris: {'; '.join(item['debris'])}"] if item["debris"] else []
        flags += [f"died: {', '.join(item['died'])}"] if item["died"] else []
        flags += [f"traceback: {'; '.join(item['tracebacks'])}"] if item["tracebacks"] else []
        print(f"    {item['command'][:160]}\n      -> {item['result']}\n"
              f"      [{' | '.join(flags)}]")
    for item in target.details.get("hostile_files", []):
        print(f"  readable by uid 65534: {item['path']} (mode {item['mode']}: "
              f"{', '.join(item['kinds'])})")
    for key in ("stolen_ca_calls", "luxi", "foreign_calls", "plain_calls", "hostile_died",
                "kill_lost", "failover", "add_orphans", "noded_kill"):
        if target.details.get(key):
            print(f"  {key}: {json.dumps(target.details[key], ensure_ascii=False)}")
    bad = {k: v for k, v in target.details.get("malformed", {}).items()
           if not re.match(r"4\d\d\b", v)}
    for name, outcome in bad.items():
        print(f"  malformed request without a 4xx: {name}: {outcome}")
    if target.details.get("bodies"):
        print(f"  bodies: {json.dumps(target.details['bodies'])}")


def print_table(targets: list[Target]) -> None:
    labels = [t.label for t in targets]
    width = max(len(label) for _, _, label, _ in FIGURES) + 2
    print("\n" + "figure".ljust(width) + "".join(f"{lab:>10}" for lab in labels) + "  want")
    section = ""
    for key, sect, label, want_zero in FIGURES:
        if sect != section:
            section = sect
            print(f"{sect}")
        cells = "".join(f"{fmt(t.values.get(key)):>10}" for t in targets)
        print(f"  {label}".ljust(width) + cells + ("     0" if want_zero else ""))
    last = targets[-1] if targets else None
    if last is not None:
        off = [label.strip(" .") for key, _, label, want_zero in FIGURES
               if want_zero and last.values.get(key)]
        print(f"\n{last.label}: not zero where it should be: "
              + ("; ".join(off) if off else "none"))


def write_json(path: Path, targets: list[Target], started: str, seconds: float) -> None:
    data = {"started": started, "seconds": round(seconds), "head": git_head(),
            "figures": [{"key": key, "section": sect, "label": label.strip(),
                         "want_zero": want, "values": {t.label: t.values.get(key)
                                                       for t in targets}}
                        for key, sect, label, want in FIGURES],
            "targets": [{"label": t.label, "src": str(t.src), "details": t.details}
                        for t in targets]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n")


def git_head() -> str | None:
    proc = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    return proc.stdout.strip() or None


@contextlib.contextmanager
def terminations_as_exit() -> Iterator[None]:
    """SIGTERM and SIGHUP end the run through the clean-up, as Ctrl-C does."""
    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)
    old = {sig: signal.signal(sig, leave) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path,
                        help="probe only this source tree (a directory holding cardume/)")
    parser.add_argument("--before", default=BEFORE_COMMIT,
                        help=f"the commit of the 'before' column (default {BEFORE_COMMIT})")
    parser.add_argument("--after", default="HEAD",
                        help="the commit of the 'after' column (default HEAD: what is "
                             "committed; --src src probes the working tree instead)")
    parser.add_argument("--only", choices=("before", "after"),
                        help="probe one of the two versions")
    parser.add_argument("--parts", default="input,hostile,faults",
                        help="comma-separated parts to run (default: input,hostile,faults)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        payload = json.loads(sys.stdin.read() or "{}")
        print(json.dumps(STEPS[args.step](payload)))
        return 0
    if os.geteuid() != 0:
        print("security_probe: run as root (it starts node daemons, loop devices, and runs "
              "parts as uid 65534)", file=sys.stderr)
        return 2
    if not (BIN / "gnt-cluster").exists():
        print(f"security_probe: {BIN}/gnt-cluster is missing: run with .venv/bin/python",
              file=sys.stderr)
        return 2
    parts = [p for p in args.parts.split(",") if p]
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    begin = time.monotonic()
    sweeper = Sweeper()
    targets: list[Target] = []
    try:
        with terminations_as_exit():
            if args.src:
                src = args.src.resolve()
                targets.append(Target("src", src, sweeper.top / "src-run"))
            else:
                if args.only in (None, "before"):
                    tree = sweeper.worktree(args.before)
                    targets.append(Target("before", tree / "src", sweeper.top / "before"))
                if args.only in (None, "after"):
                    tree = sweeper.worktree(args.after)
                    targets.append(Target("after", tree / "src", sweeper.top / "after"))
            for target in targets:
                target.workdir.mkdir()
                os.chmod(target.workdir, 0o755)
                progress(f"probing {target.label}: PYTHONPATH={target.src}")
                probe(target, parts)
    finally:
        notes = sweeper.clean()
        for note in notes:
            progress(f"clean-up: {note}")
    seconds = time.monotonic() - begin
    print(f"cardume security probe, {started}, HEAD {git_head()}, load "
          f"{os.getloadavg()[0]:.2f}, {seconds:.0f} s in all")
    for target in targets:
        print_details(target)
    print_table(targets)
    write_json(args.json, targets, started, seconds)
    print(f"\nfigures and details: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
