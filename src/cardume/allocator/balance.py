"""hbal's job: moves that lower the cluster score (``score``), one node group at a time.

Each round takes the move with the lowest resulting score among, for every instance of the
group: DRBD failover (``f``), new secondary (``r:NODE``), failover then new secondary
(``f r:NODE``), new secondary then failover (``r:NODE f``); for shared storage (sharedfile,
diskless, ...) a move of the primary (``fa:NODE``). A target must take the instance as the
allocator's rules say (``fit``: memory, disk, spindles, vcpu-ratio, N+1, exclusion tags) and be
online, undrained and vm_capable. Rounds stop at ``max_moves``, when no move lowers the
score, or when the gain is under ``min_gain`` while the score is already under
``min_gain_limit`` (hbal's -g and --min-gain-limit). Offline nodes and N+1 failures weigh
heavily in the score, so moves that fix them come first.

Each round scores every move of every instance, as hbal does, up to ``EXACT_LIMIT`` (instance,
node) pairs. Larger groups are searched lazily: each instance keeps the gain found at its last
evaluation (those on the nodes a move touched are re-evaluated), and the instances are
re-evaluated best-first until one's fresh gain beats every stale one (gains mostly shrink as
the cluster evens out); when that finds nothing, a full pass confirms no move is left. Pure:
no I/O.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cardume.allocator.fit import as_primary, as_secondary
from cardume.allocator.model import SHARED_TEMPLATES, Cluster, Instance
from cardume.allocator.score import Load, ScoredNodes, build_states

MIN_GAIN = 0.01          # hbal's -g default
MIN_GAIN_LIMIT = 0.1     # hbal's --min-gain-limit default
MIN_SCORE = 1e-9         # hbal's -e default: a score this low is balanced
# Up to this many (instance, target node) pairs a group is searched in full every round, as
# hbal does; above it the lazy best-first search keeps a round well under a second.
EXACT_LIMIT = 40000


def op_migrate(instance: str, target: str | None = None) -> dict[str, Any]:
    """OpInstanceMigrate as hbal -X submits it (failover allowed)."""
    op: dict[str, Any] = {"OP_ID": "OP_INSTANCE_MIGRATE", "instance_name": instance}
    if target:
        op["target_node"] = target
    op.update(allow_runtime_changes=False, ignore_ipolicy=False, cleanup=False,
              allow_failover=True, ignore_hvversions=True)
    return op


def op_failover(instance: str, target: str | None = None) -> dict[str, Any]:
    """OpInstanceFailover, for instances that are not running."""
    op: dict[str, Any] = {"OP_ID": "OP_INSTANCE_FAILOVER", "instance_name": instance,
                          "ignore_consistency": False}
    if target:
        op["target_node"] = target
    return op


def op_replace_secondary(instance: str, node: str) -> dict[str, Any]:
    """OpInstanceReplaceDisks in replace_new_secondary mode."""
    return {"OP_ID": "OP_INSTANCE_REPLACE_DISKS", "instance_name": instance,
            "early_release": False, "ignore_ipolicy": False, "mode": "replace_new_secondary",
            "disks": [], "remote_node": node}


@dataclass
class Move:
    instance: str
    kind: str                   # hbal's notation: f, r:NODE, f r:NODE, r:NODE f, fa:NODE
    old_nodes: list[str]
    new_nodes: list[str]
    score_before: float
    score_after: float
    running: bool = True

    @property
    def nodes(self) -> set[str]:
        return set(self.old_nodes) | set(self.new_nodes)

    def _steps(self) -> list[tuple[str, str | None]]:
        """The move as (step, node) pairs: ('f', None), ('r', NODE), ('fa', NODE)."""
        steps: list[tuple[str, str | None]] = []
        for part in self.kind.split():
            head, _, node = part.partition(":")
            steps.append((head, node or None))
        return steps

    def opcodes(self) -> list[dict[str, Any]]:
        ops = []
        for step, node in self._steps():
            if step == "r":
                ops.append(op_replace_secondary(self.instance, str(node)))
            elif self.running:
                ops.append(op_migrate(self.instance, node))
            else:
                ops.append(op_failover(self.instance, node))
        return ops

    def commands(self) -> list[str]:
        """What an admin would type (hbal -C)."""
        verb = "migrate" if self.running else "failover"
        out = []
        for step, node in self._steps():
            if step == "r":
                out.append(f"gnt-instance replace-disks -n {node} {self.instance}")
            elif node:
                out.append(f"gnt-instance {verb} -f -n {node} {self.instance}")
            else:
                out.append(f"gnt-instance {verb} -f {self.instance}")
        return out

    def as_data(self) -> dict[str, Any]:
        return {"instance": self.instance, "kind": self.kind, "old_nodes": self.old_nodes,
                "new_nodes": self.new_nodes, "score_before": self.score_before,
                "score_after": self.score_after, "opcodes": self.opcodes(),
                "commands": self.commands()}


@dataclass
class Plan:
    """The moves for one node group, in order, and their job sets (indices into moves)."""
    group: str
    initial_score: float
    final_score: float
    moves: list[Move] = field(default_factory=list)
    job_sets: list[list[int]] = field(default_factory=list)

    def as_data(self) -> dict[str, Any]:
        return {"group": self.group, "initial_score": self.initial_score,
                "final_score": self.final_score, "moves": [m.as_data() for m in self.moves],
                "job_sets": self.job_sets}


def job_sets(moves: list[Move]) -> list[list[int]]:
    """Consecutive moves on disjoint nodes share a set and may run side by side (hbal -X)."""
    sets: list[list[int]] = []
    busy: set[str] = set()
    for index, move in enumerate(moves):
        if not sets or busy & move.nodes:
            sets.append([])
            busy = set()
        sets[-1].append(index)
        busy |= move.nodes
    return sets


Candidate = tuple[float, str, list[str]]  # (score, kind, new nodes)


class Balancer(ScoredNodes):
    """One group's nodes and instances, with the score kept incrementally."""

    def __init__(self, cluster: Cluster, group_uuid: str) -> None:
        self.cluster = cluster
        states, loads = build_states(cluster)
        super().__init__({n: ns for n, ns in states.items() if ns.group == group_uuid})
        self.loads = loads
        self.targets = [ns for ns in self.states.values() if ns.online]
        self.nodes = {name: list(inst.nodes) for name, inst in cluster.instances.items()
                      if inst.nodes[0] in self.states}

    def score(self) -> float:
        return self.stats.score()

    def movable(self, inst: Instance) -> bool:
        return inst.mirrored and len(inst.nodes) > 1 or \
            inst.disk_template in SHARED_TEMPLATES

    def best_for(self, name: str) -> Candidate | None:
        """The instance's best move (lowest score), or None if nothing fits."""
        inst = self.cluster.instances[name]
        load, nodes = self.loads[name], self.nodes[name]
        template = inst.disk_template
        self.unplace(load, nodes)
        try:
            if inst.mirrored:
                return self._best_drbd(load, template, nodes[0], nodes[1])
            return self._best_shared(load, template, nodes[0])
        finally:
            self.place(load, nodes)

    def _best_shared(self, load: Load, template: str, old: str) -> Candidate | None:
        best: Candidate | None = None
        vecs, score_with = self.vecs, self.stats.score_with
        for ns in self.targets:
            if ns.name == old:
                continue
            vec = as_primary(ns, load, template)[1]
            if vec is None:
                continue
            score = score_with(((vecs[ns.name], vec),))
            if best is None or score < best[0]:
                best = (score, f"fa:{ns.name}", [ns.name])
        return best

    def _best_drbd(self, load: Load, template: str, pri: str, sec: str) -> Candidate | None:
        best: Candidate | None = None
        vecs, score_with, states = self.vecs, self.stats.score_with, self.states
        p_ns, s_ns = states[pri], states.get(sec)
        # the two nodes as primary, and each as the secondary of the other
        p_vec = as_primary(p_ns, load, template)[1] if p_ns.online else None
        s_vec = as_primary(s_ns, load, template)[1] if s_ns and s_ns.online else None
        if s_vec is not None and p_ns.online:
            back = as_secondary(p_ns, load, template, sec)[1]
            if back is not None:
                score = score_with(((vecs[sec], s_vec), (vecs[pri], back)))
                best = (score, "f", [sec, pri])
        for ns in self.targets:
            if ns.name in (pri, sec):
                continue
            n = ns.name
            if p_vec is not None:   # r:n
                vec = as_secondary(ns, load, template, pri)[1]
                if vec is not None:
                    score = score_with(((vecs[pri], p_vec), (vecs[n], vec)))
                    if best is None or score < best[0]:
                        best = (score, f"r:{n}", [pri, n])
            if s_vec is not None:   # f r:n
                vec = as_secondary(ns, load, template, sec)[1]
                if vec is not None:
                    score = score_with(((vecs[sec], s_vec), (vecs[n], vec)))
                    if best is None or score < best[0]:
                        best = (score, f"f r:{n}", [sec, n])
            if p_ns.online:         # r:n f
                n_vec = as_primary(ns, load, template)[1]
                if n_vec is not None:
                    back = as_secondary(p_ns, load, template, n)[1]
                    if back is not None:
                        score = score_with(((vecs[n], n_vec), (vecs[pri], back)))
                        if best is None or score < best[0]:
                            best = (score, f"r:{n} f", [n, pri])
        return best

    def apply(self, name: str, new_nodes: list[str]) -> None:
        load = self.loads[name]
        self.unplace(load, self.nodes[name])
        self.place(load, new_nodes)
        self.nodes[name] = list(new_nodes)


def _accept(current: float, min_gain: float, min_gain_limit: float, new: float) -> bool:
    """hbal's rule: any gain while the score is above the limit, else at least min_gain."""
    return new < current and (current > min_gain_limit or current - new >= min_gain)


class _Queue:
    """Instances by the gain of their best move as last evaluated, best first."""

    def __init__(self, names: list[str]) -> None:
        self.version = dict.fromkeys(names, 0)
        self.heap = [(-float("inf"), 0, n) for n in names]
        heapq.heapify(self.heap)

    def push(self, name: str, gain: float) -> None:
        self.version[name] += 1
        heapq.heappush(self.heap, (-gain, self.version[name], name))

    def pop(self) -> str | None:
        while self.heap:
            _, version, name = heapq.heappop(self.heap)
            if version == self.version[name]:
                return name
        return None

    def top_gain(self) -> float:
        while self.heap and self.heap[0][1] != self.version[self.heap[0][2]]:
            heapq.heappop(self.heap)
        return -self.heap[0][0] if self.heap else -float("inf")


def _gain(current: float, cand: Candidate | None) -> float:
    return current - cand[0] if cand else -float("inf")


def _next_move(bal: Balancer, queue: _Queue, current: float, names: list[str],
               ok: Callable[[float], bool], exact: bool) -> tuple[str, Candidate] | None:
    """Lazy best-first: stale gains are re-evaluated best first until a fresh one leads; a
    full pass when that finds no acceptable move (or always, when ``exact``)."""
    fresh: dict[str, Candidate | None] = {}
    while not exact:
        name = queue.pop()
        if name is None:
            break
        if name in fresh:       # evaluated in this round and still in front: the winner
            cand = fresh[name]
            queue.push(name, _gain(current, cand))
            if cand is not None and ok(cand[0]):
                return name, cand
            break
        cand = fresh[name] = bal.best_for(name)
        gain = _gain(current, cand)
        queue.push(name, gain)
        if gain >= queue.top_gain() and cand is not None and ok(cand[0]):
            return name, cand
    best: tuple[str, Candidate] | None = None
    for name in names:
        cand = fresh[name] if name in fresh else bal.best_for(name)
        if name not in fresh:
            queue.push(name, _gain(current, cand))
        if cand is not None and (best is None or cand[0] < best[1][0]):
            best = (name, cand)
    if best is None or not ok(best[1][0]):
        return None
    return best


def balance_group(cluster: Cluster, group_uuid: str, max_moves: int | None = None,
                  min_gain: float = MIN_GAIN,
                  min_gain_limit: float = MIN_GAIN_LIMIT) -> Plan:
    """The greedy moves for one node group (on a private copy of its state)."""
    bal = Balancer(cluster, group_uuid)
    current = bal.score()
    plan = Plan(group=cluster.groups[group_uuid].name, initial_score=current,
                final_score=current)
    names = sorted(n for n in bal.nodes if bal.movable(cluster.instances[n]))
    queue = _Queue(names)
    exact = len(names) * len(bal.targets) <= EXACT_LIMIT
    while (max_moves is None or len(plan.moves) < max_moves) and current > MIN_SCORE:
        found = _next_move(bal, queue, current, names,
                           functools.partial(_accept, current, min_gain, min_gain_limit), exact)
        if found is None:
            break
        name, (_, kind, new_nodes) = found
        old = list(bal.nodes[name])
        bal.apply(name, new_nodes)
        after = bal.score()
        plan.moves.append(Move(name, kind, old, list(new_nodes), current, after,
                               running=cluster.instances[name].admin_state == "up"))
        current = after
        touched = set(old) | set(new_nodes)  # their instances' gains changed the most
        for other in names:
            if touched.intersection(bal.nodes[other]):
                queue.push(other, float("inf"))
    plan.final_score = current
    plan.job_sets = job_sets(plan.moves)
    return plan


def balance(cluster: Cluster, group: str | None = None, max_moves: int | None = None,
            min_gain: float = MIN_GAIN, min_gain_limit: float = MIN_GAIN_LIMIT) -> list[Plan]:
    """Plans for one group (name or uuid) or for every group holding instances."""
    if group is not None:
        uuids = [u for u, g in cluster.groups.items() if group in (u, g.name)]
        if not uuids:
            raise ValueError(f"node group '{group}' not found")
    else:
        used = {cluster.nodes[i.nodes[0]].group for i in cluster.instances.values()}
        uuids = sorted(used, key=lambda u: cluster.groups[u].name)
    plans = []
    left = max_moves
    for uuid in uuids:
        plan = balance_group(cluster, uuid, left, min_gain, min_gain_limit)
        plans.append(plan)
        if left is not None:
            left -= len(plan.moves)
    return plans
