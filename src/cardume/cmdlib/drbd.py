"""The master's side of the drbd template: what it allocates and how it drives two nodes.

A drbd disk is stored as Ganeti stores it: ``logical_id`` is ``[pnode, snode, port, pminor,
sminor, secret]`` (node UUIDs, the order fixed at creation even after failovers), its
children are the data LV and the 128 MiB metadata LV, present on both nodes. Each node gets
the disk as ``node_disk_spec`` builds it: the same ids plus ``dynamic_params`` giving its
own and its peer's replication address (secondary IP) and minor.

Ports (11000-14999) and minors are the lowest free ones. A job holds what it picked in
``Reservations`` until it ends, so two jobs creating disks at once never pick the same
ones before either has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from cardume import constants, errors, objects
from cardume.config.writer import ConfigWriter
from cardume.rpc.wire import DiskSpec

if TYPE_CHECKING:
    from cardume.cmdlib.base import LogicalUnit
    from cardume.rpc.calls import NodeCalls

PORT_FIRST, PORT_LAST = 11000, 14999
META_SIZE = 128  # MiB, as Ganeti's DRBD_META_SIZE
MINOR_MAX = (1 << 20) - 1
SYNC_TIMEOUT = 4 * 3600.0
SYNC_POLL = 1.0
CONNECT_TIMEOUT = 15.0  # for two live nodes, DRBD connects within a second or two


# --- allocation ------------------------------------------------------------------------------

def iter_drbd(disks: Iterable[objects.Disk]) -> Iterator[objects.Disk]:
    for disk in disks:
        if disk.dev_type == constants.DT_DRBD8:
            yield disk
        yield from iter_drbd(disk.children)


def used(cfg: ConfigWriter) -> tuple[set[int], dict[str, set[int]]]:
    """Ports and, per node UUID, minors the config's drbd disks use."""
    ports: set[int] = set()
    minors: dict[str, set[int]] = {}
    for inst in cfg.instances.values():
        for disk in iter_drbd(inst.disks):
            pnode, snode, port, pminor, sminor = disk.logical_id[:5]
            ports.add(int(port))
            minors.setdefault(pnode, set()).add(int(pminor))
            minors.setdefault(snode, set()).add(int(sminor))
    return ports, minors


class Reservations:
    """Ports and minors picked by running jobs and not committed yet (one per master)."""

    def __init__(self) -> None:
        self.ports: set[int] = set()
        self.minors: set[tuple[str, int]] = set()


def reservations(cfg: ConfigWriter) -> Reservations:
    found = getattr(cfg, "drbd_reservations", None)
    if found is None:
        found = Reservations()
        cfg.drbd_reservations = found  # type: ignore[attr-defined]
    return found


class Allocator:
    """Picks free ports and minors for one job; ``release`` gives back what it reserved."""

    def __init__(self, cfg: ConfigWriter) -> None:
        self.res = reservations(cfg)
        self.ports, self.minors = used(cfg)
        self.mine_ports: list[int] = []
        self.mine_minors: list[tuple[str, int]] = []

    def port(self) -> int:
        for port in range(PORT_FIRST, PORT_LAST + 1):
            if port not in self.ports and port not in self.res.ports:
                self.res.ports.add(port)
                self.mine_ports.append(port)
                return port
        raise errors.InsufficientResources(
            f"no free DRBD port left: all {PORT_LAST - PORT_FIRST + 1} ports of the pool "
            f"{PORT_FIRST}-{PORT_LAST} are in use", "remove drbd instances or disks first")

    def minor(self, node: objects.Node) -> int:
        taken = self.minors.get(node.uuid, set())
        for minor in range(MINOR_MAX + 1):
            if minor not in taken and (node.uuid, minor) not in self.res.minors:
                self.res.minors.add((node.uuid, minor))
                self.mine_minors.append((node.uuid, minor))
                return minor
        raise errors.InsufficientResources(f"no free DRBD minor left on node {node.name}")

    def release(self) -> None:
        self.res.ports.difference_update(self.mine_ports)
        self.res.minors.difference_update(self.mine_minors)
        self.mine_ports.clear()
        self.mine_minors.clear()


@contextlib.contextmanager
def allocating(cfg: ConfigWriter) -> Iterator[Allocator]:
    """An Allocator whose reservations last until the block ends (commit inside it)."""
    alloc = Allocator(cfg)
    try:
        yield alloc
    finally:
        alloc.release()


def volume_needs(disks: Iterable[objects.Disk]) -> dict[str, int]:
    """MiB each volume group must have for these drbd disks' data and metadata volumes."""
    needs: dict[str, int] = {}
    for disk in disks:
        for child in disk.children:
            vg = str(child.logical_id[0])
            needs[vg] = needs.get(vg, 0) + child.size
    return needs


async def require_loaded(rpc: NodeCalls, node: objects.Node) -> None:
    """Refuse a node whose kernel has no DRBD loaded (its drbd_status has no version)."""
    found = await rpc.drbd_status(node, [])
    if not found.get("version"):
        raise errors.WrongState(f"DRBD is not loaded on node {node.name}",
                                "modprobe drbd usermode_helper=/bin/true")


def new_secret() -> str:
    """A per-disk shared secret for DRBD's peer authentication (cram-hmac sha1)."""
    return secrets.token_hex(20)


def make_disk(alloc: Allocator, pnode: objects.Node, snode: objects.Node, *, size: int,
              vg: str, metavg: str | None, index: int, mode: str = "rw",
              name: str | None = None, params: dict[str, Any] | None = None) -> objects.Disk:
    """A new drbd disk object, its port and minors taken from ``alloc``."""
    disk = objects.Disk(name=name, dev_type=constants.DT_DRBD8, size=size, mode=mode,
                        iv_name=f"disk/{index}", nodes=[pnode.uuid, snode.uuid],
                        params=dict(params or {}))
    disk.logical_id = [pnode.uuid, snode.uuid, alloc.port(), alloc.minor(pnode),
                       alloc.minor(snode), new_secret()]
    disk.children = [
        objects.Disk(dev_type=constants.DT_PLAIN, size=size,
                     logical_id=[vg, f"{disk.uuid}.disk{index}_data"], nodes=list(disk.nodes)),
        objects.Disk(dev_type=constants.DT_PLAIN, size=META_SIZE,
                     logical_id=[metavg or vg, f"{disk.uuid}.disk{index}_meta"],
                     nodes=list(disk.nodes))]
    return disk


def drbd_disk_of(plain: objects.Disk, snode: objects.Node, alloc: Allocator,
                 pnode: objects.Node, index: int) -> objects.Disk:
    """The drbd disk a plain one becomes (conversion): its LV is the data child."""
    disk = make_disk(alloc, pnode, snode, size=plain.size, vg=plain.logical_id[0],
                     metavg=None, index=index, mode=plain.mode, name=plain.name,
                     params=plain.params)
    disk.uuid = plain.uuid
    disk.children[0].logical_id = list(plain.logical_id)
    disk.children[1].logical_id = [plain.logical_id[0], f"{plain.uuid}.disk{index}_meta"]
    return disk


# --- what each node gets ---------------------------------------------------------------------

def replication_ip(node: objects.Node) -> str:
    return node.secondary_ip or node.primary_ip


def peer_of(disk: objects.Disk, node_uuid: str) -> str:
    pnode, snode = disk.logical_id[:2]
    if node_uuid == pnode:
        return str(snode)
    if node_uuid == snode:
        return str(pnode)
    raise errors.InternalError(f"node {node_uuid} holds no side of disk {disk.iv_name}")


def node_disk_spec(cfg: ConfigWriter, disk: objects.Disk, node_uuid: str) -> DiskSpec:
    """A drbd disk as ``node_uuid`` gets it: its minor, its and its peer's addresses."""
    pnode, snode, _port, pminor, sminor, _secret = disk.logical_id
    local, remote = cfg.nodes.get(node_uuid), cfg.nodes.get(peer_of(disk, node_uuid))
    if local is None or remote is None:
        raise errors.InternalError(f"disk {disk.iv_name} names a node that is not in "
                                        "the cluster")
    mine, theirs = (pminor, sminor) if node_uuid == pnode else (sminor, pminor)
    spec = DiskSpec.of(disk)
    spec.params = filled_params(cfg, disk)
    spec.children = [DiskSpec.of(child) for child in disk.children]
    spec.dynamic_params = {"local_ip": replication_ip(local),
                           "remote_ip": replication_ip(remote),
                           "local_minor": int(mine), "remote_minor": int(theirs)}
    return spec


def filled_params(cfg: ConfigWriter, disk: objects.Disk) -> dict[str, Any]:
    """The DRBD parameters a disk runs with: built-in defaults, then the cluster's and its
    primary node group's ``-D drbd:...`` values, then the disk's own."""
    cluster = cfg.get_cluster()
    params = dict(constants.DISK_DT_DEFAULTS[constants.DT_DRBD8])
    params.update(cluster.diskparams.get(constants.DT_DRBD8, {}))
    node = cfg.nodes.get(disk.nodes[0]) if disk.nodes else None
    group = cfg.groups.get(node.group) if node else None
    if group is not None:
        params.update(group.diskparams.get(constants.DT_DRBD8, {}))
    params.update(disk.params)
    return params


def minor_on(disk: objects.Disk, node_uuid: str) -> int:
    pnode, _snode, _port, pminor, sminor = disk.logical_id[:5]
    return int(pminor if node_uuid == pnode else sminor)


def disks_for(cfg: ConfigWriter, inst: objects.Instance, node_uuid: str) -> list[DiskSpec]:
    """The drbd disks of ``inst`` as ``node_uuid`` gets them."""
    return [node_disk_spec(cfg, d, node_uuid) for d in inst.disks
            if d.dev_type == constants.DT_DRBD8]


# --- driving both nodes ----------------------------------------------------------------------

async def on_both(*steps: Awaitable[Any]) -> list[Any]:
    """Run the two sides' steps at once (each node works on its own disks); every step
    ends before this returns, and the first failure is raised, so the caller's cleanup
    sees everything either side did."""
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _node(lu: LogicalUnit, uuid: str) -> objects.Node:
    return lu.cfg.nodes[uuid]


async def status(lu: LogicalUnit, inst: objects.Instance,
                 node_uuid: str) -> list[dict[str, Any] | None]:
    """Each drbd disk's /proc/drbd entry on one node (None: not set up there)."""
    minors = [minor_on(d, node_uuid) for d in inst.disks if d.dev_type == constants.DT_DRBD8]
    reply = await lu.rpc.drbd_status(_node(lu, node_uuid), minors)
    found = reply.get("minors", {})
    return [found.get(str(m)) for m in minors]


def _describe(disk: objects.Disk, st: dict[str, Any] | None) -> str:
    if st is None:
        return f"{disk.iv_name}: not set up"
    text = f"{disk.iv_name}: {st['cstate']} {st['disk']}/{st['peer_disk']}"
    if st.get("sync_percent") is not None:
        text += f", {st['sync_percent']:.1f}% synced"
        if st.get("sync_finish_s") is not None:
            text += f", {st['sync_finish_s']} s left"
    return text


async def wait_for_sync(lu: LogicalUnit, inst: objects.Instance, node_uuid: str,
                        timeout: float = SYNC_TIMEOUT, quiet: bool = False) -> None:
    """Poll one node until every drbd disk of ``inst`` is connected and UpToDate on both
    sides, logging the progress into the job; a disk that stands alone (the peer refused
    it, or a split brain) fails at once."""
    deadline = time.monotonic() + timeout
    last_log = 0.0
    disks = [d for d in inst.disks if d.dev_type == constants.DT_DRBD8]
    if not disks:
        return
    if not quiet:
        lu.log_info(f"Waiting for the disks of {inst.name} to sync")
    while True:
        states = await status(lu, inst, node_uuid)
        pending = []
        for disk, st in zip(disks, states, strict=True):
            if st is None:
                raise errors.WrongState(f"disk {disk.iv_name} of {inst.name} is not set up "
                                        f"on {_node(lu, node_uuid).name}")
            if st["cstate"] == "StandAlone":
                raise errors.WrongState(
                    f"disk {disk.iv_name} of {inst.name} on {_node(lu, node_uuid).name} is "
                    "not connected to its peer (StandAlone)",
                    "the peer refused it or the data diverged (split brain): see "
                    "gnt-cluster verify-disks and the node's kernel log")
            if st["resyncing"] or st["degraded"]:
                pending.append((disk, st))
        if not pending:
            if not quiet:
                lu.log_info(f"Disks of {inst.name} are in sync")
            return
        now = time.monotonic()
        if now >= deadline:
            raise errors.ExecError(f"the disks of {inst.name} did not sync in {timeout:g} s: "
                                   + "; ".join(_describe(d, s) for d, s in pending))
        if not quiet and now - last_log >= 5.0:
            last_log = now
            lu.log_info("- " + "; ".join(_describe(d, s) for d, s in pending))
        await asyncio.sleep(SYNC_POLL)


async def wait_connected(lu: LogicalUnit, inst: objects.Instance, node_uuid: str,
                         timeout: float = 60.0) -> None:
    """Wait until every drbd disk on the node is connected (a resync may still run); the
    error names the replication addresses that did not reach each other."""
    deadline = time.monotonic() + timeout
    while True:
        states = await status(lu, inst, node_uuid)
        if all(st is not None and st["connected"] for st in states):
            return
        if time.monotonic() >= deadline:
            disks = [d for d in inst.disks if d.dev_type == constants.DT_DRBD8]
            local = _node(lu, node_uuid)
            peer = _node(lu, peer_of(disks[0], node_uuid))
            raise errors.ExecError(
                f"the disks of {inst.name} did not connect on {local.name} in "
                f"{timeout:g} s: " + "; ".join(_describe(d, s)
                                               for d, s in zip(disks, states, strict=True)),
                f"check that {local.name} ({replication_ip(local)}) and {peer.name} "
                f"({replication_ip(peer)}) reach each other on TCP port "
                f"{disks[0].logical_id[2]} (their secondary IPs)")
        await asyncio.sleep(0.2)


async def assemble(lu: LogicalUnit, inst: objects.Instance, primary: str | None,
                   ignore_secondaries: bool = False) -> list[tuple[str, str, str]]:
    """Bring the disks up on every node of the instance: secondaries first (so they are
    waiting for the primary's connection), then the primary, made primary. Returns
    ``(node, iv_name, path)`` per disk on the primary. A secondary that fails is only a
    warning when ``ignore_secondaries`` (the mirror runs degraded)."""
    primary = primary or inst.primary_node
    for node_uuid in inst.secondary_nodes:
        node = _node(lu, node_uuid)
        if node.offline:
            lu.log_warning(f"secondary node {node.name} is offline: the disks of "
                           f"{inst.name} run degraded")
            continue
        for disk in inst.disks:
            if disk.dev_type != constants.DT_DRBD8:
                continue
            try:
                await lu.rpc.blockdev_assemble(node, node_disk_spec(lu.cfg, disk, node_uuid))
            except errors.CardumeError as err:
                if not ignore_secondaries:
                    raise
                lu.log_warning(f"disk {disk.iv_name} on {node.name}: {err}")
    result = []
    node = _node(lu, primary)
    for disk in inst.disks:
        spec = (node_disk_spec(lu.cfg, disk, primary) if disk.dev_type == constants.DT_DRBD8
                else DiskSpec.of(disk))
        reply = await lu.rpc.blockdev_assemble(node, spec, True)
        result.append((node.name, disk.iv_name, str(reply["path"])))
    # return with the mirror running, not just requested; a peer that doesn't come is a
    # degraded mirror, which the admin hears about but which doesn't stop the instance
    try:
        await wait_connected(lu, inst, primary, timeout=CONNECT_TIMEOUT)
    except errors.CardumeError as err:
        lu.log_warning(f"the disks of {inst.name} run degraded: {err}")
    return result


async def shutdown(lu: LogicalUnit, inst: objects.Instance,
                   ignore_errors: bool = False) -> list[str]:
    """Take the drbd disks down on every node (primary first: it must let go before its
    peer does). Offline nodes are skipped; returns the problems it ignored."""
    problems: list[str] = []
    for node_uuid in [inst.primary_node, *inst.secondary_nodes]:
        node = _node(lu, node_uuid)
        if node.offline:
            continue
        for disk in inst.disks:
            if disk.dev_type != constants.DT_DRBD8:
                continue
            try:
                await lu.rpc.blockdev_shutdown(node, node_disk_spec(lu.cfg, disk, node_uuid))
            except errors.CardumeError as err:
                if not ignore_errors:
                    raise
                problems.append(f"disk {disk.iv_name} on {node.name}: {err}")
    return problems
