"""A cardume cluster made from the installed package, as README's "Install on three
servers" tells an admin (the systemd QA nodes of vm_systemd.py).

On every node: the volume group, every node's name in ``/etc/hosts``, the node daemon's
address in ``/etc/cardume/daemons.env`` (``NODED_ARGS="--bind IP"``) and ``systemctl restart
cardume-noded``, DRBD loaded now and at boot (``/etc/modules-load.d``). Then ``gnt-cluster
init`` on node1 with its DRBD address as secondary IP and a master IP of its own, and
``gnt-node add --join-token TOKEN -s IP2`` for the others, each token printed by
``cardume node join-token`` on the node that joins. Everything runs in the guests through
the command agent. The daemons are systemd's from then on: nothing here starts them.
"""

from __future__ import annotations

import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .cardume import DRBD_PARAMS, OS_DIR, OS_FILES, OS_NAME, QA_IPOLICY_BOUNDS, VG
from .vm import AgentError, Cluster, Node
from .vm_systemd import DOMAIN, SystemdNode

CLUSTER_NAME = f"qa-cluster.{DOMAIN}"
MASTER_IP = "192.168.77.100"
__all__ = ["OS_NAME", "PkgCluster", "cluster_up"]


@dataclass
class PkgCluster:
    vms: Cluster
    master_index: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def nodes(self) -> list[SystemdNode]:
        return self.vms.nodes  # type: ignore[return-value]

    @property
    def master(self) -> SystemdNode:
        return self.nodes[self.master_index]

    def node(self, fqdn: str) -> SystemdNode:
        return next(n for n in self.nodes if n.fqdn == fqdn)

    def run(self, node: Node, cmd: str, timeout: float = 300.0, check: bool = True) -> str:
        res = node.run(cmd, timeout=timeout)
        if check and not res.ok:
            raise AgentError(f"{node.name}: {cmd!r} exited {res.rc}:\n{res.out}{res.err}\n"
                             f"--- journal\n{journal(node)}")
        return res.out

    def gnt(self, cmd: str, timeout: float = 300.0, check: bool = True) -> str:
        """A command on the current master; its standard output."""
        return self.run(self.master, cmd, timeout, check)


def journal(node: Node, lines: int = 40) -> str:
    return node.run(f"journalctl -b --no-pager -n {lines} -u 'cardume-*'").out


def hosts_file(nodes: list[SystemdNode]) -> str:
    lines = ["127.0.0.1 localhost"]
    lines += [f"{n.ip} {n.fqdn} {n.name}" for n in nodes]
    lines.append(f"{MASTER_IP} {CLUSTER_NAME}")
    return "".join(line + "\n" for line in lines)


def prepare_node(node: SystemdNode, hosts: str) -> None:
    """README's step 2 and 3 on one node (the package is in the image already)."""
    node.wait_booted()
    node.run(f"vgs {VG} >/dev/null 2>&1 || "
             f"{{ pvcreate -q /dev/qa-data && vgcreate -q {VG} /dev/qa-data; }}", check=True)
    node.put("/etc/hosts", hosts.encode())
    for name, (data, mode) in OS_FILES.items():
        node.put(f"{OS_DIR}/{name}", data, mode)
    node.run(f"sed -i '/^NODED_ARGS=/d' /etc/cardume/daemons.env && "
             f"echo 'NODED_ARGS=\"--bind {node.ip}\"' >>/etc/cardume/daemons.env && "
             "systemctl restart cardume-noded && "
             "modprobe drbd && echo drbd >/etc/modules-load.d/drbd.conf", check=True)


def cluster_up(vms: Cluster) -> PkgCluster:
    nodes: list[SystemdNode] = vms.nodes  # type: ignore[assignment]
    pc = PkgCluster(vms)
    hosts = hosts_file(nodes)
    t0 = time.monotonic()
    with ThreadPoolExecutor(len(nodes)) as pool:
        for future in [pool.submit(prepare_node, n, hosts) for n in nodes]:
            future.result()
    t1 = time.monotonic()
    pc.timings["node preparation (vg, hosts, daemons.env, noded restart)"] = t1 - t0
    first = nodes[0]
    pc.gnt("gnt-cluster init --enabled-hypervisors=fake "
           "--enabled-disk-templates=drbd,plain,diskless "
           f"-D {shlex.quote(DRBD_PARAMS)} --ipolicy-bounds-specs {QA_IPOLICY_BOUNDS} "
           f"--vg-name {VG} --master-netdev eth0 -s {first.ip2} {CLUSTER_NAME}")
    t2 = time.monotonic()
    pc.timings["gnt-cluster init"] = t2 - t1
    for node in nodes[1:]:
        token = pc.run(node, "cardume node join-token").strip()
        pc.gnt(f"gnt-node add --join-token {shlex.quote(token)} -s {node.ip2} {node.fqdn}")
    pc.timings["gnt-node add of the others"] = time.monotonic() - t2
    return pc
