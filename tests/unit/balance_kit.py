"""Clusters for the balancer and capacity tests, built from a placement, and an independent
check of a placement (memory, disk, N+1) computed from the raw figures."""

from __future__ import annotations

from typing import Any

import alloc_kit

from cardume.allocator import model

Placement = list[tuple[str, list[str], dict[str, Any]]]  # (instance, nodes, spec keywords)


def build(n_nodes: int, placement: Placement, **node_kw: Any) -> dict[str, Any]:
    """A one-group cluster of equal nodes holding the instances where ``placement`` says."""
    data = alloc_kit.cluster(n_nodes, **node_kw)
    for name, nodes, kw in placement:
        alloc_kit.add_instance(data, name, nodes, **kw)
    return data


def parse(data: dict[str, Any]) -> model.Cluster:
    doc = dict(data)
    doc["request"] = {"type": "allocate", "required_nodes": 1,
                      **alloc_kit.spec("probe", "diskless")}
    return model.parse(doc)[0]


def moved(placement: Placement, moves: list[Any]) -> Placement:
    """The placement after the moves, applied in order."""
    where = {name: nodes for name, nodes, _ in placement}
    for move in moves:
        assert where[move.instance] == move.old_nodes, (move, where[move.instance])
        where[move.instance] = list(move.new_nodes)
    return [(name, where[name], kw) for name, _, kw in placement]


def problems(data: dict[str, Any], placement: Placement) -> list[str]:
    """What an admin would find wrong: a node short of memory or disk, a secondary that
    could not start the instances of a failed primary, an instance on an unusable node."""
    nodes = data["nodes"]
    free_mem = {n: d["total_memory"] - d["reserved_memory"] for n, d in nodes.items()}
    free_disk = {n: d["total_disk"] for n, d in nodes.items()}
    takeover: dict[tuple[str, str], int] = {}
    found = []
    for name, where, kw in placement:
        spec = alloc_kit.instance(name, where, **kw)
        for node in where:
            d = nodes[node]
            if d["offline"] or d["drained"] or not d["vm_capable"]:
                found.append(f"{name} on unusable node {node}")
        if spec["admin_state"] == "up":
            free_mem[where[0]] -= spec["memory"]
        if spec["disk_template"] in ("plain", "drbd", "file"):
            for node in where:
                free_disk[node] -= spec["disk_space_total"]
        if spec["disk_template"] == "drbd":
            key = (where[0], where[1])
            takeover[key] = takeover.get(key, 0) + spec["memory"]
    for node, left in free_mem.items():
        if left <= 0:
            found.append(f"{node} short of memory ({left})")
        if free_disk[node] <= 0:
            found.append(f"{node} short of disk ({free_disk[node]})")
    for (pri, sec), need in takeover.items():
        if need >= free_mem[sec]:
            found.append(f"{sec} can't take over {pri} ({need} needed, {free_mem[sec]} free)")
    return found
