"""OP_NODE_QUERY_STORAGE: the storage units of nodes as rows of the fields asked for (the
job behind the REST API's ``GET /2/nodes/NAME/storage``; ``gnt-node list-storage`` reads
the same units through the master's QueryNodeStorage).

Each online node is asked once (``node_storage``) for the space of one storage type. A
node that does not answer is left out with a warning in the job's log, as Ganeti goes on
without it.
"""

from __future__ import annotations

from typing import Any

from cardume import constants, errors, objects, opcodes
from cardume.cmdlib.base import ALL, LogicalUnit, register
from cardume.jobs import locks
from cardume.rules import disk_templates

FIELDS = ("node", "type", "name", "size", "used", "free", "allocatable")
"""What a row may hold, as gnt-node list-storage names its columns."""

# lvm-pv reports the physical volumes under the volume groups the lvm templates use
_REPORTED_BY = {constants.ST_LVM_PV: constants.ST_LVM_VG}


def default_storage_type(cluster: objects.Cluster) -> str:
    """The storage of the first enabled disk template that has one (the same default as
    gnt-node list-storage's); lvm-vg when none has."""
    for name in cluster.enabled_disk_templates:
        template = disk_templates.TABLE.get(name)
        if template is not None and template.storage_type is not None:
            return template.storage_type
    return constants.ST_LVM_VG


def storage_row(node: str, kind: str, unit: dict[str, Any]) -> dict[str, Any]:
    return {"node": node, "type": kind, "name": str(unit.get("name", "")),
            "size": int(unit.get("size", 0)), "used": int(unit.get("used", 0)),
            "free": int(unit.get("free", 0)),
            "allocatable": bool(unit.get("allocatable", True))}


@register
class LUNodeQueryStorage(LogicalUnit):
    OP = opcodes.OpNodeQueryStorage

    def check_arguments(self) -> None:
        if not self.op.output_fields:
            raise errors.WrongInput(f"no output fields selected (expected some of "
                                    f"{', '.join(FIELDS)})")
        unknown = [f for f in self.op.output_fields if f not in FIELDS]
        if unknown:
            raise errors.WrongInput(f"Unknown output fields selected: {', '.join(unknown)} "
                                    f"(expected {', '.join(FIELDS)})")

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        # shared: the nodes' storage is not changed while it is being reported
        if not self.op.nodes:
            return {locks.LEVEL_NODE: (ALL, True)}
        names = [getattr(self.cfg.find_node(n), "name", n) for n in self.op.nodes]
        return {locks.LEVEL_NODE: (names, True)}

    async def check_prereq(self) -> None:
        cluster = self.cfg.get_cluster()
        self.kind = self.op.storage_type or default_storage_type(cluster)
        wanted = _REPORTED_BY.get(self.kind, self.kind)
        if not any(getattr(disk_templates.TABLE.get(t), "storage_type", None) == wanted
                   for t in cluster.enabled_disk_templates):
            raise errors.WrongInput(
                f"No disk template of storage type '{self.kind}' is enabled in this "
                f"cluster. Enabled disk templates are: "
                f"{','.join(cluster.enabled_disk_templates)}")
        if self.op.nodes:
            chosen = {n.uuid: n for n in (self.cfg.expand_node(name) for name in self.op.nodes)}
            self.nodes = sorted(chosen.values(), key=lambda n: n.name)
        else:
            self.nodes = self.cfg.sorted_nodes()

    async def exec(self) -> list[list[Any]]:
        online = []
        for node in self.nodes:
            if node.offline:
                self.log_warning(f"node {node.name} is offline: no storage data from it")
            else:
                online.append(node)
        answers = await self.ask_each(
            online, lambda node: self.rpc.node_storage(node, self.kind),
            "can't get storage data from node {node}: {error}")
        rows: list[list[Any]] = []
        for node in online:
            if node.uuid not in answers:
                continue
            units = [storage_row(node.name, self.kind, u) for u in answers[node.uuid] or []
                     if isinstance(u, dict)]
            for unit in sorted(units, key=lambda u: u["name"]):
                if self.op.name is None or unit["name"] == self.op.name:
                    rows.append([unit[f] for f in self.op.output_fields])
        return rows
