"""Helpers of the integration tests: a local cluster made with ``cardume vcluster`` and the
real ``gnt-*`` commands that drive it (the fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from cardume.vcluster import loopback

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
FIXTURE_OS = REPO / "tests" / "fixtures" / "os" / "dummy"
"""The tests' OS definition (OS API 20): records its environment, flavours fail/sleepN."""
PORT = 1811
CMD_TIMEOUT = 120.0

# Node daemons of one cluster listen on BASE, BASE+1, ... ten addresses per range, in
# 127.0.0.0/24 first, then 127.0.2-5.0/24 (127.0.9.* names the tests' instances). The
# ranges .11 (the README's default cluster), .41 (benchmarks) and .71 (bench's security
# probe) are left to the developer; a range somebody else listens on is skipped.
_RANGES = [f"127.0.{net}.{last}" for net in (0, 2, 3, 4, 5) for last in range(21, 250, 10)
           if last not in (11, 41, 71)]
_taken: set[str] = set()
# Test runs on one machine at once (several sessions, or a developer's run beside CI) would
# otherwise pick the same free range and race for its addresses ("address already in use"
# at start-up): each range is claimed by an exclusive lock on a file, held by this process
# until it ends (the kernel drops it then, even after a crash).
_CLAIMS = Path(tempfile.gettempdir()) / "cardume-test-ranges"
_claimed: list[int] = []


def _claim(base: str) -> bool:
    """Whether this process now holds ``base`` (no other live test run does)."""
    _CLAIMS.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(_CLAIMS / base, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _claimed.append(fd)
    return True

Gnt = Callable[..., tuple[int, str, str]]


def free_base_ip(count: int = 4) -> str:
    """A loopback range no cluster of this run used, no other test run holds and nobody
    listens on."""
    for base in _RANGES:
        if base in _taken or not _claim(base):
            continue
        _taken.add(base)  # claimed for good: kept even when somebody else listens there
        if any(loopback.free_ranges([base], count, PORT)):
            return base
    raise RuntimeError("no free loopback range left for a test cluster")


def run(argv: list[str], env: dict[str, str], check: bool = True,
        timeout: float = CMD_TIMEOUT) -> tuple[int, str, str]:
    proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc.returncode, proc.stdout, proc.stderr


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition",
             interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def job_id_of(stderr: str) -> int:
    """The id in the ``JobID: N`` line that ``--submit`` prints (on stderr, as Ganeti)."""
    match = re.search(r"^JobID: (\d+)$", stderr, re.MULTILINE)
    assert match, f"no 'JobID: N' line in {stderr!r}"
    return int(match.group(1))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rpartition(")")[2].split()[:1] != ["Z"]
    except OSError:
        return False


class VCluster:
    """A local cluster made with ``cardume vcluster``, and the commands that drive it."""

    def __init__(self, root: Path, base_ip: str, nodes: int = 3) -> None:
        self.root = root
        self.base_ip = base_ip
        self.nodes = nodes

    # --- addresses and files ------------------------------------------------------------

    def ip(self, index: int) -> str:
        net, first = self.base_ip.rsplit(".", 1)
        return f"{net}.{int(first) + index - 1}"

    def node_dir(self, name: str) -> Path:
        return self.root / "nodes" / name

    def pid(self, name: str, daemon: str) -> int | None:
        try:
            pid = int((self.node_dir(name) / "run" / f"{daemon}.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def all_pids(self) -> list[int]:
        pids = []
        for node_dir in sorted((self.root / "nodes").glob("*")):
            for daemon in ("noded", "masterd", "rapi"):
                pid = self.pid(node_dir.name, daemon)
                if pid is not None:
                    pids.append(pid)
        return pids

    # --- commands ---------------------------------------------------------------------------

    def env(self, node: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARDUME_")}
        env["CARDUME_ROOT"] = str(self.root)
        if node is not None:
            env["CARDUME_NODE"] = node
        return env

    def gnt(self, *args: str, node: str | None = None, check: bool = True,
            timeout: float = CMD_TIMEOUT) -> tuple[int, str, str]:
        """Run ``gnt-xxx ARGS`` (args[0] is the command name) against this cluster."""
        command, *rest = args
        return run([str(BIN / command), *rest], self.env(node), check=check, timeout=timeout)

    def cardume(self, *args: str, check: bool = True) -> tuple[int, str, str]:
        return run([str(BIN / "cardume"), *args], self.env(), check=check)

    def up(self) -> str:
        return self.cardume("vcluster", "up", "--nodes", str(self.nodes), "--root",
                            str(self.root), "--base-ip", self.base_ip)[1]

    def down(self, purge: bool = True) -> None:
        args = ["vcluster", "down", "--root", str(self.root)]
        self.cardume(*args, *(["--purge"] if purge else []), check=False)

    def join_token(self, name: str) -> str:
        return self.cardume("node", "join-token", "--root", str(self.node_dir(name)))[1].strip()

    # --- what an admin looks at -------------------------------------------------------------

    def roles(self) -> dict[str, str]:
        out = self.gnt("gnt-node", "list", "--no-headers", "-o", "name,role")[1]
        return dict(line.split() for line in out.splitlines())

    def master(self) -> str:
        return self.gnt("gnt-cluster", "getmaster")[1].strip()

    def snapshot(self) -> dict[str, str]:
        """What a refused command must leave exactly as it was (serial numbers included)."""
        from cardume.master.client import Client
        from cardume.paths import NodePaths
        socket = NodePaths(str(self.node_dir(self.master()))).master_socket
        with Client(socket) as client:  # Ganeti's cluster info has no line for it
            serial = client.call("QueryConfigValues", ["config_serial"])[0]
        return {
            "config serial": str(serial),
            "info": self.gnt("gnt-cluster", "info")[1],
            "nodes": self.gnt("gnt-node", "list", "-o",
                              "name,role,pip,group,master_candidate,drained,offline,"
                              "serial_no")[1],
            "groups": self.gnt("gnt-group", "list", "-o", "name,node_list,serial_no")[1],
        }


class NetnsCluster(VCluster):
    """A local cluster whose node daemons run their kvm networking and QEMUs in network
    namespace ``netns`` (``CARDUME_KVM_NETNS``): the host's own interfaces are never
    touched."""

    def __init__(self, root: Path, base_ip: str, netns: str) -> None:
        super().__init__(root, base_ip)
        self.netns = netns

    def env(self, node: str | None = None) -> dict[str, str]:
        env = super().env(node)
        env["CARDUME_KVM_NETNS"] = self.netns
        return env


@contextlib.contextmanager
def netns_cluster(root: Path, netns: str, bridge: str = "",
                  bridge_ip: str = "") -> Iterator[NetnsCluster]:
    """A started NetnsCluster in a network namespace created for it (loopback up, and a
    bridge with an optional address/prefix), stopped and deleted at the end with the
    namespace; ``vcluster down --purge`` kills the instances' QEMUs. Skips the test when
    no namespace can be made."""
    made = subprocess.run(["ip", "netns", "add", netns], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"can't create a network namespace: {made.stderr.strip()}")
    vc = NetnsCluster(root, free_base_ip(4), netns)

    def ns(*argv: str) -> None:
        subprocess.run(["ip", "netns", "exec", netns, *argv], check=True, timeout=30)
    try:
        ns("ip", "link", "set", "lo", "up")
        if bridge:
            ns("ip", "link", "add", bridge, "type", "bridge")
            if bridge_ip:
                ns("ip", "addr", "add", bridge_ip, "dev", bridge)
            ns("ip", "link", "set", bridge, "up")
        vc.up()
        yield vc
    finally:
        try:
            stop_cluster(vc)
        finally:
            for pid in qemus(vc):  # one without a runtime file (a failed test's), if any
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)


def qemus(cluster: VCluster, name: str = "") -> dict[int, str]:
    """pid -> node of every QEMU process of instance name (all instances without one) in
    this cluster, found by its command line: the instance's process name and a file in the
    node's directory."""
    found = {}
    nodes = re.compile(re.escape(str(cluster.root / "nodes")) + r"/([^/]+)/")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        node = nodes.search(argv)
        if node and re.search(f"process=kvm:{re.escape(name) or '[^,]+'}\0", argv) \
                and pid_alive(int(entry)):
            found[int(entry)] = node.group(1)
    return found


def start_cluster(tmp_root: Path, nodes: int = 3) -> VCluster:
    cluster = VCluster(tmp_root / "vc", free_base_ip(nodes + 1), nodes)
    try:
        cluster.up()
    except BaseException:
        cluster.down()
        raise
    return cluster


def stop_cluster(cluster: VCluster) -> None:
    pids = cluster.all_pids()
    cluster.down(purge=True)
    for pid in pids:  # down must have stopped them; make sure nothing outlives the module
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            print(f"warning: daemon {pid} survived 'vcluster down'", file=sys.stderr)
    shutil.rmtree(cluster.root, ignore_errors=True)


def install_dummy_os(cluster: VCluster, names: Mapping[str, str] | None = None) -> None:
    """The tests' OS as ``dummy`` in the cluster's OS directory, and instance names in its
    hosts file (each resolving to an address nobody listens on)."""
    shutil.copytree(FIXTURE_OS, cluster.root / "os" / "dummy")
    if names:
        with open(cluster.root / "hosts", "a", encoding="ascii") as hosts:
            hosts.writelines(f"{ip} {name}\n" for name, ip in names.items())


@contextlib.contextmanager
def os_cluster(tmp_root: Path, names: Mapping[str, str] | None = None) -> Iterator[VCluster]:
    """A started cluster with the tests' OS installed (see install_dummy_os), stopped and
    deleted at the end."""
    cluster = start_cluster(tmp_root)
    try:
        install_dummy_os(cluster, names)
        yield cluster
    finally:
        stop_cluster(cluster)
