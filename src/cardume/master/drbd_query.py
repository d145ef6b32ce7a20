"""The master's view of DRBD replication: ``QueryDrbd`` for ``gnt-instance watch-disks``,
``gnt-node list-drbd`` and the DRBD lines of ``gnt-instance info``.

The config says where each drbd disk lives (its two nodes, port and minors); only the nodes
know how it is doing (``/proc/drbd``). The master asks every involved node once, in
parallel, for just the minors it needs (``drbd_status``), or for all of them on a node
named for ``list-drbd`` so that minors no disk of the config claims (orphans, left over
by a failed job or by hand) show up. A node that is offline or does not answer is
reported per side instead of failing the whole query. The disks' shared secrets are
never part of the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cardume import errors, objects
from cardume.cmdlib.drbd import iter_drbd, minor_on, used

if TYPE_CHECKING:
    from cardume.config.writer import ConfigWriter
    from cardume.rpc.calls import NodeCalls

# A watch redraws every 2 s: a hung node should show as an error soon, not hold the view
# for the 10 s of the "urgent" class.
STATUS_TIMEOUT = 5.0


@dataclass
class Plan:
    """What one query covers: the instances, and per node UUID the minors to ask
    (``None``: every minor, for a node named so its orphans are found)."""

    instances: list[objects.Instance]
    minors: dict[str, set[int] | None] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)  # node UUIDs named, in order


def has_drbd(inst: objects.Instance) -> bool:
    return next(iter_drbd(inst.disks), None) is not None


def _on_node(inst: objects.Instance, node_uuid: str) -> bool:
    return any(node_uuid in disk.logical_id[:2] for disk in iter_drbd(inst.disks))


def plan(cfg: ConfigWriter, instances: Iterable[str] | None,
         nodes: Iterable[str] | None) -> Plan:
    """Named instances (unknown names fail with their name); else, when nodes are named,
    the drbd instances with a side on them; else every drbd instance."""
    asked: list[str] = []
    for name in nodes or []:
        uuid = cfg.expand_node(str(name)).uuid
        if uuid not in asked:
            asked.append(uuid)
    if instances:
        chosen = {inst.uuid: inst for inst in (cfg.expand_instance(str(n)) for n in instances)}
        selected = list(chosen.values())
    else:
        selected = sorted((i for i in cfg.instances.values() if has_drbd(i)
                           and (not asked or any(_on_node(i, n) for n in asked))),
                          key=lambda i: i.name)
    result = Plan(instances=selected, asked=asked)
    for uuid in asked:
        result.minors[uuid] = None
    for inst in selected:
        for disk in iter_drbd(inst.disks):
            for uuid in disk.logical_id[:2]:
                wanted = result.minors.setdefault(uuid, set())
                if wanted is not None:
                    wanted.add(minor_on(disk, uuid))
    return result


async def fetch(cfg: ConfigWriter, rpc: NodeCalls, what: Plan) -> dict[str, dict[str, Any]]:
    """One ``drbd_status`` per node, in parallel: ``{node uuid: reply}``, where a failed
    node's reply is ``{"error": message}``."""

    async def one(uuid: str, minors: set[int] | None) -> dict[str, Any]:
        node = cfg.nodes.get(uuid)
        if node is None:
            return {"error": f"node {uuid} is not in the cluster"}
        if node.offline:  # no RPC: an offline node is not expected to answer
            return {"error": f"node {node.name} is marked offline"}
        try:
            reply = await rpc.timed(STATUS_TIMEOUT).drbd_status(
                node, None if minors is None else sorted(minors))
        except errors.CardumeError as err:
            return {"error": str(err)}
        if not isinstance(reply, dict):
            return {"error": f"node {node.name} sent a malformed DRBD status"}
        if reply.get("version") is None:
            return {"error": f"DRBD is not loaded on node {node.name}", "version": None,
                    "minors": {}}
        return reply

    uuids = list(what.minors)
    replies = await asyncio.gather(*(one(u, what.minors[u]) for u in uuids))
    return dict(zip(uuids, replies, strict=True))


def _side(cfg: ConfigWriter, inst: objects.Instance, disk: objects.Disk, uuid: str,
          reply: Mapping[str, Any]) -> dict[str, Any]:
    minor = minor_on(disk, uuid)
    status = None
    if reply.get("error") is None:
        status = (reply.get("minors") or {}).get(str(minor))
    return {"node": cfg.node_name(uuid),
            "role": "primary" if uuid == inst.primary_node else "secondary",
            "minor": minor, "status": status, "error": reply.get("error")}


def _disk(cfg: ConfigWriter, inst: objects.Instance, index: int, disk: objects.Disk,
          replies: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    # the primary's side first: logical_id keeps the creation order across failovers
    sides = sorted(disk.logical_id[:2], key=lambda u: u != inst.primary_node)
    return {"index": index, "iv_name": disk.iv_name, "name": disk.name, "uuid": disk.uuid,
            "size": disk.size, "port": int(disk.logical_id[2]),
            "sides": [_side(cfg, inst, disk, u, replies.get(u, {})) for u in sides]}


def _orphans(cfg: ConfigWriter, uuid: str, reply: Mapping[str, Any],
             in_use: Mapping[str, set[int]]) -> list[dict[str, Any]]:
    """Set-up minors on the node that no disk of the config claims, nor a running job has
    reserved (a disk being created is not in the config yet)."""
    claimed = set(in_use.get(uuid, set()))
    reserved = getattr(cfg, "drbd_reservations", None)
    if reserved is not None:
        claimed = claimed | {m for n, m in reserved.minors if n == uuid}
    found = []
    for key, status in (reply.get("minors") or {}).items():
        minor = int(key)
        if minor not in claimed and status.get("configured", True):
            found.append({"minor": minor, "status": status})
    return sorted(found, key=lambda o: o["minor"])


def assemble(cfg: ConfigWriter, what: Plan,
             replies: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON answer of ``QueryDrbd`` from the nodes' replies (see :func:`query_drbd`)."""
    instances = []
    for inst in what.instances:
        disks = [_disk(cfg, inst, index, disk, replies)
                 for index, top in enumerate(inst.disks) for disk in iter_drbd([top])]
        instances.append({"name": inst.name, "primary": cfg.node_name(inst.primary_node),
                          "secondaries": [cfg.node_name(u) for u in inst.secondary_nodes],
                          "disk_template": inst.disk_template, "disks": disks})
    nodes: dict[str, Any] = {}
    in_use = used(cfg)[1] if what.asked else {}
    for uuid, reply in replies.items():
        entry: dict[str, Any] = {"version": reply.get("version"), "error": reply.get("error"),
                                 "asked": uuid in what.asked, "orphans": None}
        if uuid in what.asked and reply.get("error") is None:
            entry["orphans"] = _orphans(cfg, uuid, reply, in_use)
        nodes[cfg.node_name(uuid)] = entry
    return {"instances": instances, "nodes": nodes,
            "asked": [cfg.node_name(u) for u in what.asked]}


async def query_drbd(cfg: ConfigWriter, rpc: NodeCalls, instances: list[str] | None = None,
                     nodes: list[str] | None = None) -> dict[str, Any]:
    """``{"instances": [...], "nodes": {...}, "asked": [node names]}``:

    * each instance: ``name, primary, secondaries, disk_template, disks``; each disk:
      ``index, iv_name, name, uuid, size, port, sides``; each side (primary first):
      ``node, role`` (primary/secondary in the config), ``minor``, ``status`` (the
      ``parse_proc_drbd`` dict, or None when the minor is not set up there) and ``error``
      (why the node gave no status: offline, unreachable, DRBD not loaded; else None);
    * each node contacted: ``version`` (of DRBD, None if not loaded), ``error``,
      ``asked`` (named in ``nodes``) and ``orphans`` (for asked nodes that answered: the
      set-up minors no disk claims, ``[{"minor", "status"}]``; else None).
    """
    what = plan(cfg, instances, nodes)
    replies = await fetch(cfg, rpc, what)
    return assemble(cfg, what, replies)
