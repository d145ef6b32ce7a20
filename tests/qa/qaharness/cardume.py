"""A real cardume cluster on booted QA nodes (second QA stage).

``cluster_up`` prepares every node (the ``xenvg`` volume group on ``/dev/qa-data``, a hosts
file naming all nodes, a tiny OS definition), starts ``cardume-noded`` in each guest as a
detached process with its output in a log file, runs ``gnt-cluster init`` on the first node
and adds the others with the join token each prints. Everything runs inside the guests
through the command agent; the host only drives it. ``restart_node`` brings a killed node
back (see ``vm.Node.kill``/``restart``) with the state it kept.
"""

from __future__ import annotations

import ast
import shlex
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .vm import AgentError, Cluster, Node

ROOT = "/var/lib/cardume"
PORT = 1811
HOSTS_FILE = "/etc/cardume-hosts"
CLUSTER_NAME = "qa-cluster.test"
VG = "xenvg"
NODED_LOG = "/var/log/cardume-noded.out"
OS_NAME = "qa-os"
DRBD_PARAMS = "drbd:net-custom=--ping-int=2 --ping-timeout=10"
OS_DIR = f"/srv/ganeti/os/{OS_NAME}"
# The QA nodes' volume groups hold a few hundred MiB and the guests need no network: the
# instance policy allows their small disks and no NICs (Ganeti's defaults ask 1 GiB, 1 NIC)
QA_IPOLICY_BOUNDS = ("min:memory-size=1,cpu-count=1,disk-count=0,disk-size=1,nic-count=0,"
                     "spindle-use=0/max:memory-size=32768,cpu-count=8,disk-count=16,"
                     "disk-size=1048576,nic-count=8,spindle-use=12")

# An API-20 OS definition whose scripts only succeed: enough to add, rename and remove
# instances (the QA nodes have no package archive to install a real OS from).
_OS_SCRIPT = b"#!/bin/sh\n# cardume QA OS: does nothing, successfully\nexit 0\n"
OS_FILES: dict[str, tuple[bytes, int]] = {
    "ganeti_api_version": (b"20\n", 0o644),
    "variants.list": (b"default\n", 0o644),
    "parameters.list": (b"", 0o644),
    **{script: (_OS_SCRIPT, 0o755)
       for script in ("create", "import", "export", "rename", "verify")},
}

# Waits until the node daemon accepts TCP connections on its address (run in the guest).
_WAIT_PORT = """
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[3])
while True:
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("nothing listens on %s:%s" % (sys.argv[1], sys.argv[2]))
        time.sleep(0.1)
"""


@dataclass
class CardumeCluster:
    """The QA VMs with a cardume cluster on them; ``master`` is where gnt-* commands run."""

    vms: Cluster
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def nodes(self) -> list[Node]:
        return self.vms.nodes

    @property
    def master(self) -> Node:
        return self.vms.nodes[0]

    def gnt(self, cmd: str, timeout: float = 300.0, check: bool = True) -> str:
        """Run a gnt-* (or any) command on the master; returns its standard output."""
        res = self.master.run(cmd, timeout=timeout)
        if check and not res.ok:
            raise AgentError(f"{self.master.name}: {cmd!r} exited {res.rc}:\n{res.out}{res.err}"
                             f"\n--- noded log\n{noded_log(self.master)}")
        return res.out

    def disk_uuids(self, instance: str) -> list[str]:
        """The instance's disk UUIDs, from ``gnt-instance list -o disk.uuids``, which
        prints them as Ganeti does: a Python list (``['uuid0', 'uuid1']``)."""
        out = self.gnt(f"gnt-instance list --no-headers -o disk.uuids {instance}").strip()
        uuids = ast.literal_eval(out)
        assert isinstance(uuids, list) and all(isinstance(u, str) for u in uuids), out
        return uuids


def noded_log(node: Node, lines: int = 30) -> str:
    # a node with root /var/lib/cardume logs in the FHS place (cardume.paths)
    return node.run(f"tail -n {lines} {NODED_LOG} /var/log/cardume/*.log 2>/dev/null").out


def hosts_file(nodes: list[Node]) -> str:
    lines = [f"{node.ip} {node.name}" for node in nodes]
    lines.append(f"{nodes[0].ip} {CLUSTER_NAME}")
    return "".join(line + "\n" for line in lines)


def prepare_node(node: Node, hosts: str) -> None:
    """Volume group, hosts file and OS definition; safe to repeat."""
    node.run(f"vgs {VG} >/dev/null 2>&1 || "
             f"{{ pvcreate -q /dev/qa-data && vgcreate -q {VG} /dev/qa-data; }}", check=True)
    node.put(HOSTS_FILE, hosts.encode())
    for name, (data, mode) in OS_FILES.items():
        node.put(f"{OS_DIR}/{name}", data, mode)


def start_noded(node: Node, timeout: float = 60.0) -> None:
    """Start cardume-noded detached (new session, no ties to the agent's pipes)."""
    argv = ["cardume-noded", "--root", ROOT, "--name", node.name, "--bind", node.ip,
            "--port", str(PORT)]
    node.run(f"mkdir -p {ROOT} && setsid {shlex.join(argv)} </dev/null >>{NODED_LOG} 2>&1 &",
             check=True)
    res = node.run(f"python3 - {node.ip} {PORT} {timeout}", input=_WAIT_PORT,
                   timeout=timeout + 10)
    if not res.ok:
        raise AgentError(f"{node.name}: cardume-noded did not start: {res.out}{res.err}\n"
                         f"{noded_log(node)}")


def restart_node(cc: CardumeCluster, node: Node, timeout: float = 180.0) -> float:
    """Boot a (killed) node again and bring back what its root image lost: its volume group
    is on the kept data disk and its cardume state on the kept state disk, so only the
    hosts file and OS definition are written again and the node daemon started; the node
    is back in the cluster without joining it again. Returns the seconds it took."""
    if node is cc.master:
        raise ValueError("restart_node: the master runs the gnt-* commands; not restarted")
    t0 = time.monotonic()
    node.restart(timeout)
    # LVM runs without udev here: nothing activates the volume group at boot
    node.run(f"vgscan -q >/dev/null 2>&1; vgchange -q -ay {VG}", check=True)
    prepare_node(node, hosts_file(cc.nodes))
    # what makes it a member: its identity and certificate, kept on the state disk
    node.run(f"test -s {ROOT}/node.json && test -s {ROOT}/certs/node.pem", check=True)
    start_noded(node)
    return time.monotonic() - t0


def _each(nodes: list[Node], func: Callable[[Node], None]) -> None:
    """``func`` on every node at once (one thread per node; each node's agent serves many)."""
    with ThreadPoolExecutor(len(nodes)) as pool:
        for future in [pool.submit(func, node) for node in nodes]:
            future.result()


def cluster_up(vms: Cluster) -> CardumeCluster:
    """Turn booted QA nodes into a cardume cluster (node1 master, the others added)."""
    cc = CardumeCluster(vms)
    hosts = hosts_file(vms.nodes)
    t0 = time.monotonic()
    _each(vms.nodes, lambda node: prepare_node(node, hosts))
    t1 = time.monotonic()
    cc.timings["node preparation (vg, hosts, OS)"] = t1 - t0
    _each(vms.nodes, start_noded)
    t2 = time.monotonic()
    cc.timings["node daemons start"] = t2 - t1
    # DRBD notices a dead peer after ping-int seconds (10 by default): 2 keeps the
    # failover tests that kill a node short
    cc.gnt("gnt-cluster init --enabled-hypervisors=fake "
           "--enabled-disk-templates=drbd,plain,diskless,file "
           f"-D {shlex.quote(DRBD_PARAMS)} --ipolicy-bounds-specs {QA_IPOLICY_BOUNDS} "
           f"--vg-name {VG} --hosts-file {HOSTS_FILE} --master-netdev eth0 {CLUSTER_NAME}")
    t3 = time.monotonic()
    cc.timings["gnt-cluster init"] = t3 - t2
    for node in vms.nodes[1:]:
        token = node.run("cardume node join-token", check=True).out.strip()
        cc.gnt(f"gnt-node add --join-token {shlex.quote(token)} {node.name}")
    cc.timings["gnt-node add of the others"] = time.monotonic() - t3
    return cc
