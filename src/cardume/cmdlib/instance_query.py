"""OP_INSTANCE_QUERY_DATA: an instance described as Ganeti's instance-info job answers it
(the REST API's ``GET /2/instances/NAME/info``; clients read the job's result).

The configuration gives most of the answer. Unless the opcode is static, the nodes give
the rest: each primary node is asked once which of its instances run
(``instance_info_all``), and each node holding disks once for the state of all of them
(``blockdev_info``). What a node does not report (a device's major number, a file's
minor) stays null; so does everything live from a node that is offline or does not
answer, with a warning in the job's log, rather than failing the whole description.
A drbd disk's shared secret never leaves the configuration.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cardume import constants, objects, opcodes
from cardume.cmdlib.base import ALL, LogicalUnit, register
from cardume.cmdlib.instance_common import node_disk
from cardume.jobs import locks
from cardume.rpc.wire import DiskSpec

# Ganeti's local-disk states (the last item of a disk status)
LDS_OKAY, LDS_SYNC, LDS_UNKNOWN, LDS_FAULTY = 1, 2, 3, 4

# what a drbd device's local disk state means for that status
_DRBD_LDISK = {"UpToDate": LDS_OKAY, "Diskless": LDS_FAULTY, "Failed": LDS_FAULTY}

# a disk and the node its status is asked for: (instance uuid, path of child indices, node)
StatusKey = tuple[str, tuple[int, ...], str]


def shown_logical_id(disk: objects.Disk) -> list[Any]:
    """The logical id as the answer shows it: a drbd disk's secret (its last item) null."""
    if disk.dev_type == constants.DT_DRBD8:
        return [*disk.logical_id[:5], None]
    return list(disk.logical_id)


def disk_status(dev_type: str, found: dict[str, Any] | None) -> list[Any] | None:
    """A disk's status on one node, in Ganeti's shape: ``[path, major, minor, sync
    percent, estimated seconds left, degraded, local disk state]``; None when the node
    has no such device (a drbd minor not set up there) or did not answer. The node
    reports no device numbers except a drbd minor, so those stay null."""
    if not found or not found.get("exists"):
        return None
    path = found.get("path")
    if dev_type != constants.DT_DRBD8:
        broken = bool(found.get("virtual"))  # an LV that lost its physical volume
        return [path, None, None, None, None, broken, LDS_FAULTY if broken else LDS_OKAY]
    proc = found.get("drbd")
    if not isinstance(proc, dict):  # its LVs are there, but the minor is not set up
        return None
    ldisk = _DRBD_LDISK.get(str(proc.get("disk")), LDS_UNKNOWN)
    if ldisk == LDS_UNKNOWN and proc.get("resyncing"):
        ldisk = LDS_SYNC
    return [path, None, found.get("minor"), proc.get("sync_percent"),
            proc.get("sync_finish_s"), bool(proc.get("degraded")), ldisk]


def run_state(inst: objects.Instance, info: dict[str, Any] | None) -> str:
    """What the primary node's answer says of the instance (``info``: its entry among
    the running ones, None when it does not run there)."""
    if info is not None:
        return "user down" if info.get("state") == constants.HV_STATE_USER_DOWN else "up"
    if inst.admin_state == "down" and inst.admin_state_source == "user":
        return "user down"
    return "down" if inst.admin_state in ("up", "down") else str(inst.admin_state)


@register
class LUInstanceQueryData(LogicalUnit):
    OP = opcodes.OpInstanceQueryData

    def _locking(self) -> bool:
        # live data is read under shared locks, so that no job changes the instance
        # between the configuration and the nodes' answers (Ganeti locks then too)
        return bool(self.op.use_locking or not self.op.static)

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        if not self._locking():
            return {}
        if not self.op.instances:
            return {locks.LEVEL_INSTANCE: (ALL, True), locks.LEVEL_NODE: (ALL, True)}
        names, nodes = [], []
        for name in self.op.instances:
            inst = self.cfg.find_instance(name)
            names.append(inst.name if inst else name)
            if inst is not None:
                nodes += [self.cfg.node_name(u)
                          for u in [inst.primary_node, *inst.secondary_nodes]]
        return {locks.LEVEL_INSTANCE: (names, True), locks.LEVEL_NODE: (nodes, True)}

    async def check_prereq(self) -> None:
        if self.op.instances:
            chosen = {}
            for name in self.op.instances:
                inst = self.cfg.expand_instance(name)
                chosen[inst.uuid] = inst
            self.instances = list(chosen.values())
        else:
            self.instances = sorted(self.cfg.instances.values(), key=lambda i: i.name)

    async def exec(self) -> dict[str, Any]:
        states: dict[str, str | None] = {}
        statuses: dict[StatusKey, list[Any] | None] = {}
        if not self.op.static:
            states, statuses = await asyncio.gather(self._run_states(), self._disk_statuses())
        return {inst.name: self._describe(inst, states.get(inst.uuid), statuses)
                for inst in self.instances}

    # --- the nodes' answers ------------------------------------------------------------

    def _online(self, uuid: str) -> objects.Node | None:
        node = self.cfg.nodes.get(uuid)
        return node if node is not None and not node.offline else None

    async def _run_states(self) -> dict[str, str | None]:
        by_node: dict[str, list[objects.Instance]] = {}
        for inst in self.instances:
            if self._online(inst.primary_node) is None:
                self.log_warning(f"primary node {self.cfg.node_name(inst.primary_node)} is "
                                 f"offline: static information only for instance "
                                 f"{inst.name}")
                continue
            by_node.setdefault(inst.primary_node, []).append(inst)
        nodes = [self.cfg.nodes[u] for u in by_node]
        hypervisors = {u: sorted({i.hypervisor for i in insts})
                       for u, insts in by_node.items()}
        answers = await self.ask_each(
            nodes, lambda node: self.rpc.instance_info_all(node, hypervisors[node.uuid]),
            "node {node} did not say what runs on it: {error}; run state left unknown")
        states: dict[str, str | None] = {}
        for node_uuid, answer in answers.items():
            running = answer if isinstance(answer, dict) else {}
            for inst in by_node[node_uuid]:
                states[inst.uuid] = run_state(inst, running.get(inst.name))
        return states

    def _wanted_specs(self) -> dict[str, list[tuple[StatusKey, str, DiskSpec]]]:
        """Per node uuid, each disk (and drbd child) whose status is asked there."""
        wanted: dict[str, list[tuple[StatusKey, str, DiskSpec]]] = {}

        def add(inst: objects.Instance, path: tuple[int, ...], disk: objects.Disk,
                node_uuid: str) -> None:
            if disk.dev_type == constants.DT_DRBD8:
                spec = node_disk(self.cfg, disk, node_uuid)
            else:
                spec = DiskSpec.of(disk)
            wanted.setdefault(node_uuid, []).append(
                ((inst.uuid, path, node_uuid), disk.dev_type, spec))
            for index, child in enumerate(disk.children):
                add(inst, (*path, index), child, node_uuid)

        for inst in self.instances:
            for index, disk in enumerate(inst.disks):
                for node_uuid in _status_nodes(inst, disk):
                    if self._online(node_uuid) is not None:
                        add(inst, (index,), disk, node_uuid)
        return wanted

    async def _disk_statuses(self) -> dict[StatusKey, list[Any] | None]:
        wanted = self._wanted_specs()
        nodes = [self.cfg.nodes[u] for u in wanted]
        unknown = "node {node} did not report its disks: {error}; their status left unknown"
        answers = await self.ask_each(nodes, lambda node: self.rpc.blockdev_info(
            node, [spec for _, _, spec in wanted[node.uuid]]), unknown)
        statuses: dict[StatusKey, list[Any] | None] = {}
        for node_uuid, found in answers.items():
            if not isinstance(found, list) or len(found) != len(wanted[node_uuid]):
                self.log_warning(unknown.format(node=self.cfg.node_name(node_uuid),
                                                error="a malformed answer"))
                continue
            for (key, dev_type, _), item in zip(wanted[node_uuid], found, strict=True):
                statuses[key] = disk_status(dev_type, item if isinstance(item, dict) else None)
        return statuses

    # --- the answer --------------------------------------------------------------------

    def _describe(self, inst: objects.Instance, state: str | None,
                  statuses: dict[StatusKey, list[Any] | None]) -> dict[str, Any]:
        cfg = self.cfg
        cluster = cfg.get_cluster()
        pnode = cfg.nodes.get(inst.primary_node)
        pgroup = cfg.groups.get(pnode.group) if pnode is not None else None
        snodes = inst.secondary_nodes
        sgroups = [cfg.groups.get(cfg.nodes[u].group) if u in cfg.nodes else None
                   for u in snodes]
        hv_actual = objects.fill_hvparams(cluster, pgroup, inst.hypervisor, inst.hvparams)
        for name in constants.HVC_GLOBALS.intersection(hv_actual):
            del hv_actual[name]  # cluster-wide only: not the instance's
        os_name = inst.os.split("+", 1)[0]
        return {
            "name": inst.name,
            "config_state": inst.admin_state,
            "run_state": state,
            "pnode": cfg.node_name(inst.primary_node),
            "pnode_group_uuid": pnode.group if pnode is not None else None,
            "pnode_group_name": pgroup.name if pgroup is not None else None,
            "snodes": [cfg.node_name(u) for u in snodes],
            "snodes_group_uuids": [g.uuid if g else None for g in sgroups],
            "snodes_group_names": [g.name if g else None for g in sgroups],
            "os": inst.os,
            "nics": [_nic(cluster, nic) for nic in inst.nics],
            "disk_template": inst.disk_template,
            "disks": [self._disk(inst, (index,), disk, None, statuses)
                      for index, disk in enumerate(inst.disks)],
            "hypervisor": inst.hypervisor,
            "network_port": inst.network_port,
            "hv_instance": dict(inst.hvparams),
            "hv_actual": hv_actual,
            "be_instance": dict(inst.beparams),
            "be_actual": objects.fill_beparams(cluster, pgroup, inst.beparams),
            "os_instance": dict(inst.osparams),  # the private ones never
            "os_actual": objects.fill_dict(cluster.osparams.get(os_name, {}), inst.osparams),
            "serial_no": inst.serial_no,
            "mtime": inst.mtime,
            "ctime": inst.ctime,
            "uuid": inst.uuid,
        }

    def _disk(self, inst: objects.Instance, path: tuple[int, ...], disk: objects.Disk,
              snode: str | None, statuses: dict[StatusKey, list[Any] | None],
              ) -> dict[str, Any]:
        """One disk; ``snode`` the secondary its parent drbd disk has (children are
        reported on both nodes, as their drbd disk is)."""
        drbd_info = None
        if disk.dev_type == constants.DT_DRBD8:
            snode = _peer(disk, inst.primary_node)
            mine, theirs = _minors(disk, inst.primary_node)
            drbd_info = {"primary_node": self.cfg.node_name(inst.primary_node),
                         "primary_minor": mine,
                         "secondary_node": self.cfg.node_name(snode),
                         "secondary_minor": theirs,
                         "port": disk.logical_id[2]}
        return {
            "iv_name": disk.iv_name,
            "dev_type": disk.dev_type,
            "logical_id": shown_logical_id(disk),
            "drbd_info": drbd_info,
            "pstatus": statuses.get((inst.uuid, path, inst.primary_node)),
            "sstatus": statuses.get((inst.uuid, path, snode)) if snode else None,
            "children": [self._disk(inst, (*path, index), child, snode, statuses)
                         for index, child in enumerate(disk.children)],
            "mode": disk.mode,
            "size": disk.size,
            "spindles": disk.spindles,
            "name": disk.name,
            "uuid": disk.uuid,
        }


def _peer(disk: objects.Disk, node_uuid: str) -> str:
    first, second = disk.logical_id[:2]
    return str(second if first == node_uuid else first)


def _minors(disk: objects.Disk, node_uuid: str) -> tuple[int, int]:
    """(this node's minor, its peer's) of a drbd disk."""
    first, _second, _port, first_minor, second_minor = disk.logical_id[:5]
    if first == node_uuid:
        return int(first_minor), int(second_minor)
    return int(second_minor), int(first_minor)


def _status_nodes(inst: objects.Instance, disk: objects.Disk) -> list[str]:
    """Where a top-level disk's status is asked: the primary, and a drbd disk's peer."""
    if disk.dev_type == constants.DT_DRBD8:
        return [inst.primary_node, _peer(disk, inst.primary_node)]
    return [inst.primary_node]


def _nic(cluster: objects.Cluster, nic: objects.NIC) -> list[Any]:
    """A NIC as Ganeti lists it: name, uuid, ip, mac, mode, link, vlan, network and the
    network's name (cardume has no network objects, so no name to give)."""
    params = objects.fill_nicparams(cluster, None, nic.nicparams)
    return [nic.name, nic.uuid, nic.ip, nic.mac, params.get("mode"), params.get("link"),
            params.get("vlan", ""), nic.network, None]
