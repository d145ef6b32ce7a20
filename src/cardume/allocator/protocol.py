"""Ganeti's iallocator protocol answered by the built-in allocator, in process or as a program.

``answer(request)`` takes the version 2 request dict and returns ``{"success", "info",
"result"}``; ``main`` is the ``cardume-iallocator REQUEST_FILE`` console script, which prints
that answer as JSON (exit 0 whenever it could answer, 1 with one line on stderr when the file
cannot be read or is not a valid request).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from cardume.allocator import model
from cardume.allocator.solve import (
    Outcome,
    Solver,
    op_migrate,
    op_replace_secondary,
)


def _fail(info: str) -> dict[str, Any]:
    return {"success": False, "info": info, "result": []}


def _allocate(solver: Solver, req: model.Request) -> dict[str, Any]:
    inst, required, group = req.new[0]
    out = solver.allocate(inst, required, group)
    if out.placement is None:
        return _fail("Request failed: " + out.describe(inst.name))
    return {"success": True, "info": "Request successful: " + out.describe(inst.name),
            "result": out.placement.nodes}


def _multi_allocate(solver: Solver, req: model.Request) -> dict[str, Any]:
    done: list[list[Any]] = []
    failed: list[str] = []
    notes: list[str] = []
    for inst, required, group in req.new:
        out = solver.allocate(inst, required, group)
        if out.placement:
            done.append([inst.name, out.placement.nodes])
        else:
            failed.append(inst.name)
            notes.append(out.describe(inst.name))
    info = (f"Request successful: {len(failed)} instances failed to allocate and "
            f"{len(done)} were allocated successfully")
    if notes:
        info += "; " + "; ".join(notes)
    return {"success": True, "info": info, "result": [done, failed]}


def _relocate(solver: Solver, req: model.Request) -> dict[str, Any]:
    inst = solver.cluster.instances[req.name]
    old = list(inst.nodes)
    out = solver.relocate(req.name, req.relocate_from)
    if out.placement is None:
        return _fail("Request failed: " + out.describe(req.name))
    new = [n for n in out.placement.nodes if n not in old]
    return {"success": True, "info": "Request successful: " + out.describe(req.name),
            "result": new}


def _evac_targets(solver: Solver, names: list[str], mode: str) -> frozenset[str]:
    """The nodes an evacuation empties (htools: per instance and mode), plus offline ones."""
    nodes: set[str] = set()
    for name in names:
        inst = solver.cluster.instances[name]
        if mode in ("primary-only", "all"):
            nodes.add(inst.nodes[0])
        if mode in ("secondary-only", "all") and inst.mirrored and len(inst.nodes) > 1:
            nodes.add(inst.nodes[1])
    nodes.update(n for n, ns in solver.states.items() if not ns.online)
    return frozenset(nodes)


def _evacuate_one(solver: Solver, inst: model.Instance, mode: str,
                  exclude: frozenset[str]) -> tuple[Outcome, list[dict[str, Any]]]:
    name, template = inst.name, inst.disk_template
    if template in ("plain", "file"):
        return Outcome(note=f"Instances of type {template} cannot be relocated"), []
    if not inst.mirrored:
        if mode == "secondary-only":
            return Outcome(note=f"Instances with disk template '{template}' can't execute "
                                "change secondary"), []
        out = solver.move_primary(inst, exclude)
        return out, [op_migrate(name, out.placement.nodes[0])] if out.placement else []
    if mode == "secondary-only":
        out = solver.change_secondary(inst, exclude)
        return out, [op_replace_secondary(name, out.placement.nodes[1])] \
            if out.placement else []
    if mode == "primary-only":
        return solver.failover(inst), [op_migrate(name)]
    old_primary = inst.nodes[0]
    group = solver.cluster.groups[solver.states[old_primary].group]
    out = solver.move_drbd(inst, [group], exclude)
    if out.placement is None:
        return out, []
    return out, _drbd_move_ops(solver, name, old_primary, out.placement.nodes)


def _drbd_move_ops(solver: Solver, name: str, old_primary: str,
                   nodes: list[str]) -> list[dict[str, Any]]:
    # new primary as secondary, fail over to it, then the final secondary (htools' r:p f r:s)
    ops = [] if solver.states[old_primary].online else [op_migrate(name)]
    return ops + [op_replace_secondary(name, nodes[0]), op_migrate(name),
                  op_replace_secondary(name, nodes[1])]


def _evac_answer(moved: list[list[Any]], failed: list[list[str]],
                 jobs: list[list[dict[str, Any]]]) -> dict[str, Any]:
    info = (f"Request successful: {len(failed)} instances failed to move and {len(moved)} "
            "were moved successfully")
    return {"success": True, "info": info, "result": [moved, failed, jobs]}


def _node_evacuate(solver: Solver, req: model.Request) -> dict[str, Any]:
    exclude = _evac_targets(solver, req.instances, req.evac_mode)
    moved, failed, jobs = [], [], []
    for name in req.instances:
        inst = solver.cluster.instances[name]
        out, ops = _evacuate_one(solver, inst, req.evac_mode, exclude)
        if out.placement is None:
            failed.append([name, out.describe(name)])
            continue
        moved.append([name, out.placement.group.name, out.placement.nodes])
        jobs.append(ops)
    return _evac_answer(moved, failed, jobs)


def _change_group(solver: Solver, req: model.Request) -> dict[str, Any]:
    cluster = solver.cluster
    current = {solver.states[cluster.instances[n].nodes[0]].group for n in req.instances}
    targets = [cluster.groups[g] for g in req.target_groups] if req.target_groups else \
        [g for u, g in cluster.groups.items() if u not in current]
    moved, failed, jobs = [], [], []
    offline = frozenset(n for n, ns in solver.states.items() if not ns.online)
    for name in req.instances:
        inst = cluster.instances[name]
        old_primary = inst.nodes[0]
        groups = [g for g in targets if g.uuid != solver.states[old_primary].group]
        if not groups:
            failed.append([name, f"no target group for instance {name}: no node group "
                                 "other than its own was given or exists"])
            continue
        if inst.disk_template in ("plain", "file"):
            failed.append([name, f"Instances of type {inst.disk_template} cannot be "
                                 "relocated"])
            continue
        if inst.mirrored:
            out = solver.move_drbd(inst, groups, offline)
            ops = _drbd_move_ops(solver, name, old_primary, out.placement.nodes) \
                if out.placement else []
        else:
            load = solver.loads[name]
            solver.unplace(load, [old_primary])
            out = Outcome()
            out.placement = solver.choose_group(groups, inst, load, 1, out.reasons, offline)
            if out.placement:
                solver.place(load, out.placement.nodes)
                inst.nodes = list(out.placement.nodes)
            else:
                solver.place(load, [old_primary])
            ops = [op_migrate(name, out.placement.nodes[0])] if out.placement else []
        if out.placement is None:
            failed.append([name, out.describe(name)])
            continue
        moved.append([name, out.placement.group.name, out.placement.nodes])
        jobs.append(ops)
    return _evac_answer(moved, failed, jobs)


HANDLERS = {"allocate": _allocate, "multi-allocate": _multi_allocate, "relocate": _relocate,
            "node-evacuate": _node_evacuate, "change-group": _change_group}


def _evacuation_orders(cluster: model.Cluster, names: list[str]) -> list[list[str]]:
    """The orders an evacuation is tried in: one instance at a time is greedy, and which
    goes first changes where the others fit (the biggest first often packs best)."""
    by_size = sorted(names, key=lambda n: (-cluster.instances[n].memory,
                                           -cluster.instances[n].disk_space_total, n))
    orders = [list(names), by_size, list(reversed(names))]
    return [order for i, order in enumerate(orders) if order not in orders[:i]]


def _best_evacuation(request: dict[str, Any], cluster: model.Cluster,
                     req: model.Request) -> dict[str, Any]:
    """The evacuation that moves the most instances, then leaves the lowest score, of
    those tried in each order (each on a fresh copy of the cluster)."""
    best: tuple[int, float] | None = None
    chosen: dict[str, Any] = {}
    for index, order in enumerate(_evacuation_orders(cluster, req.instances)):
        if index:
            cluster, req = model.parse(request)
        req.instances = order
        solver = Solver(cluster)
        result = _node_evacuate(solver, req)
        rank = (-len(result["result"][0]), solver.stats.score())
        if best is None or rank < best:
            best, chosen = rank, result
    return chosen


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """Answer one iallocator request; raises model.RequestError if it is malformed."""
    cluster, req = model.parse(request)
    if req.type == "node-evacuate":
        return _best_evacuation(request, cluster, req)
    return HANDLERS[req.type](Solver(cluster), req)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: cardume-iallocator REQUEST_FILE", file=sys.stderr)
        return 2
    try:
        with open(args[0], encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as err:
        print(f"cannot read request file {args[0]}: {err.strerror}", file=sys.stderr)
        return 1
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        print(f"request file {args[0]} is not valid JSON: {err}", file=sys.stderr)
        return 1
    try:
        result = answer(data)
    except model.RequestError as err:
        print(f"invalid iallocator request in {args[0]}: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
