"""Placement: allocate, multi-allocate, relocate, node-evacuate and change-group.

Every choice is the feasible one with the lowest resulting cluster score (``score``). Groups
are tried by alloc_policy (preferred before last_resort, never unallocable), then score; an
instance's nodes are always in one group. A refusal names each node and why it was refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cardume.allocator.fit import as_primary, as_secondary
from cardume.allocator.model import SHARED_TEMPLATES, Cluster, Group, Instance
from cardume.allocator.score import Load, NodeState, ScoredNodes, Vector, build_states
from cardume.rules.ipolicy import InstanceSpec, violations

POLICY_RANK = {"preferred": 0, "last_resort": 1}
# Above this many (primary, secondary) pairs in a group, only the best primaries and
# secondaries taken one at a time are paired (the pair score is not separable, but the
# best pair is almost always among them); the search widens if none of them pair up.
FULL_PAIR_LIMIT = 4096
PRUNED_WIDTH = 24


@dataclass
class Placement:
    nodes: list[str]
    group: Group
    score: float


@dataclass
class Outcome:
    """One instance's answer: a placement, or the reasons (node -> why) nothing fitted."""
    placement: Placement | None = None
    reasons: dict[str, str] = field(default_factory=dict)
    note: str = ""

    def describe(self, name: str) -> str:
        if self.placement:
            p = self.placement
            return (f"instance {name}: group {p.group.name}, score {p.score:.8f}, "
                    f"node(s) {'/'.join(p.nodes)}")
        detail = "; ".join(f"{node}: {why}" for node, why in sorted(self.reasons.items()))
        return f"no placement for instance {name}: " + "; ".join(
            x for x in (self.note, detail) if x)


def op_migrate(instance: str, target: str | None = None) -> dict[str, Any]:
    """Ganeti's serialized OpInstanceMigrate as htools emits it (failover allowed)."""
    op: dict[str, Any] = {"OP_ID": "OP_INSTANCE_MIGRATE", "instance_name": instance}
    if target:
        op["target_node"] = target
    op.update(allow_runtime_changes=False, ignore_ipolicy=False, cleanup=False,
              allow_failover=True, ignore_hvversions=True)
    return op


def op_replace_secondary(instance: str, node: str) -> dict[str, Any]:
    """Ganeti's serialized OpInstanceReplaceDisks in replace_new_secondary mode."""
    return {"OP_ID": "OP_INSTANCE_REPLACE_DISKS", "instance_name": instance,
            "early_release": False, "ignore_ipolicy": False, "mode": "replace_new_secondary",
            "disks": [], "remote_node": node}


def spec_of(inst: Instance) -> InstanceSpec:
    return InstanceSpec(memory=inst.memory, cpus=inst.vcpus, disk_sizes=tuple(inst.disks),
                        nic_count=inst.nic_count, spindles=inst.spindle_use,
                        disk_template=inst.disk_template)


class Solver(ScoredNodes):
    """The cluster's state while requests are placed; commits update the score in O(1)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        states, self.loads = build_states(cluster)
        super().__init__(states)
        self.members: dict[str, list[NodeState]] = {g: [] for g in cluster.groups}
        for ns in self.states.values():
            self.members[ns.group].append(ns)

    # --- searches -----------------------------------------------------------------
    def _gate(self, ns: NodeState) -> str | None:
        if not ns.online:
            return self.cluster.nodes[ns.name].unusable_reason()
        return None

    def best_primary(self, nodes: list[NodeState], load: Load, template: str,
                     reasons: dict[str, str]) -> tuple[float, str] | None:
        best: tuple[float, str] | None = None
        for ns in nodes:
            why = self._gate(ns)
            vec = None
            if why is None:
                why, vec = as_primary(ns, load, template)
            if vec is None:
                reasons[ns.name] = why or "unusable"
                continue
            score = self.stats.score_with(((self.vecs[ns.name], vec),))
            if best is None or score < best[0]:
                best = (score, ns.name)
        return best

    def best_secondary(self, nodes: list[NodeState], load: Load, template: str, pnode: str,
                       reasons: dict[str, str]) -> tuple[float, str] | None:
        best: tuple[float, str] | None = None
        for ns in nodes:
            why = self._gate(ns)
            vec = None
            if why is None:
                why, vec = as_secondary(ns, load, template, pnode)
            if vec is None:
                reasons[ns.name] = why or "unusable"
                continue
            score = self.stats.score_with(((self.vecs[ns.name], vec),))
            if best is None or score < best[0]:
                best = (score, ns.name)
        return best

    def best_pair(self, nodes: list[NodeState], load: Load, template: str,
                  reasons: dict[str, str]) -> tuple[float, list[str]] | None:
        prims: list[tuple[float, NodeState, Vector]] = []
        secs: list[tuple[float, NodeState]] = []
        for ns in nodes:
            why = self._gate(ns)
            if why:
                reasons[ns.name] = why
                continue
            why_p, vec_p = as_primary(ns, load, template)
            why_s, vec_s = as_secondary(ns, load, template, "")
            if vec_p is not None:
                prims.append((self.stats.score_with(((self.vecs[ns.name], vec_p),)), ns, vec_p))
            if vec_s is not None:
                secs.append((self.stats.score_with(((self.vecs[ns.name], vec_s),)), ns))
            if vec_p is None and vec_s is None:
                reasons[ns.name] = why_p or "unusable"
            elif vec_p is None:
                reasons[ns.name] = f"{why_p} (could only be the secondary)"
            elif vec_s is None:
                reasons[ns.name] = f"as secondary: {why_s} (could only be the primary)"
        prims.sort(key=lambda x: x[0])
        secs.sort(key=lambda x: x[0])
        width = PRUNED_WIDTH
        while True:
            full = len(prims) * len(secs) <= FULL_PAIR_LIMIT or width >= max(len(prims),
                                                                              len(secs))
            p_list = prims if full else prims[:width]
            s_list = secs if full else secs[:width]
            best: tuple[float, list[str]] | None = None
            for _, pns, pvec in p_list:
                pchange = (self.vecs[pns.name], pvec)
                for _, sns in s_list:
                    if sns is pns:
                        continue
                    why, svec = as_secondary(sns, load, template, pns.name)
                    if svec is None:
                        continue
                    score = self.stats.score_with((pchange, (self.vecs[sns.name], svec)))
                    if best is None or score < best[0]:
                        best = (score, [pns.name, sns.name])
            if best is not None or full:
                break
            width *= 4
        if best is None:
            for _, ns, _ in prims:
                if len(secs) <= 1 and ns.name not in reasons:
                    reasons[ns.name] = "no other node in its group can hold the mirror"
                elif ns.name not in reasons:
                    reasons[ns.name] = "no secondary fits beside it (N+1 or capacity)"
        return best

    def best_in_group(self, group: Group, inst: Instance, load: Load, required: int,
                      reasons: dict[str, str], exclude: frozenset[str] = frozenset(),
                      ) -> Placement | None:
        nodes = [ns for ns in self.members[group.uuid] if ns.name not in exclude]
        if group.alloc_policy == "unallocable":
            for ns in nodes:
                reasons[ns.name] = f"its group {group.name} is unallocable"
            return None
        errors = violations(group.ipolicy, spec_of(inst))
        if errors:
            for ns in nodes:
                reasons[ns.name] = f"policy of group {group.name}: {', '.join(errors)}"
            return None
        if required == 2:
            found = self.best_pair(nodes, load, inst.disk_template, reasons)
            return Placement(found[1], group, found[0]) if found else None
        single = self.best_primary(nodes, load, inst.disk_template, reasons)
        return Placement([single[1]], group, single[0]) if single else None

    def choose_group(self, groups: list[Group], inst: Instance, load: Load, required: int,
                     reasons: dict[str, str], exclude: frozenset[str] = frozenset(),
                     ) -> Placement | None:
        found = [p for g in groups
                 if (p := self.best_in_group(g, inst, load, required, reasons, exclude))]
        if not found:
            return None
        return min(found, key=lambda p: (POLICY_RANK.get(p.group.alloc_policy, 9), p.score))

    # --- request types ------------------------------------------------------------
    def allocate(self, inst: Instance, required: int, group_name: str | None) -> Outcome:
        """Place a new instance and commit it (so later ones in a batch see it)."""
        groups = list(self.cluster.groups.values())
        if group_name is not None:
            groups = [g for g in groups if g.name == group_name or g.uuid == group_name]
            if not groups:
                return Outcome(note=f"node group {group_name} does not exist")
        load = Load(inst, self.cluster.exclusion_tags(inst))
        out = Outcome()
        out.placement = self.choose_group(groups, inst, load, required, out.reasons)
        if out.placement:
            self.place(load, out.placement.nodes)
            self.loads[inst.name] = load
        elif not self.states:
            out.note = "the cluster has no nodes"
        return out

    def relocate(self, name: str, relocate_from: list[str]) -> Outcome:
        """A new secondary for a DRBD instance (or a new primary for shared storage)."""
        inst = self.cluster.instances[name]
        if inst.mirrored:
            if len(inst.nodes) < 2 or relocate_from != [inst.nodes[1]]:
                return Outcome(note=f"relocate_from {relocate_from} is not the instance's "
                                    f"secondary node")
            return self.change_secondary(inst, frozenset(relocate_from))
        if inst.disk_template in SHARED_TEMPLATES:
            if relocate_from != inst.nodes[:1]:
                return Outcome(note=f"relocate_from {relocate_from} is not the instance's "
                                    f"primary node")
            return self.move_primary(inst, frozenset(relocate_from))
        return Outcome(note=f"instances of disk template {inst.disk_template} cannot be "
                            f"relocated (their disks live on one node)")

    def _group_of(self, inst: Instance) -> Group:
        return self.cluster.groups[self.states[inst.nodes[0]].group]

    def change_secondary(self, inst: Instance, exclude: frozenset[str]) -> Outcome:
        load = self.loads[inst.name]
        primary, old = inst.nodes[0], inst.nodes[1]
        self.states[old].remove_secondary(load)
        self._refresh(self.states[old])
        out = Outcome()
        group = self._group_of(inst)
        nodes = [ns for ns in self.members[group.uuid]
                 if ns.name not in exclude and ns.name not in (primary, old)]
        best = self.best_secondary(nodes, load, inst.disk_template, primary, out.reasons)
        if best is None:
            self.states[old].add_secondary(load, primary)
            self._refresh(self.states[old])
            if not nodes:
                out.note = f"no other node in group {group.name}"
            return out
        self.states[best[1]].add_secondary(load, primary)
        self._refresh(self.states[best[1]])
        inst.nodes = [primary, best[1]]
        out.placement = Placement([primary, best[1]], group, self.stats.score())
        return out

    def move_primary(self, inst: Instance, exclude: frozenset[str]) -> Outcome:
        """Shared storage: start the instance on another node of its group."""
        load = self.loads[inst.name]
        old = inst.nodes[0]
        group = self._group_of(inst)
        self.unplace(load, [old])
        out = Outcome()
        nodes = [ns for ns in self.members[group.uuid]
                 if ns.name not in exclude and ns.name != old]
        best = self.best_primary(nodes, load, inst.disk_template, out.reasons)
        if best is None:
            self.place(load, [old])
            if not nodes:
                out.note = f"no other node in group {group.name}"
            return out
        self.place(load, [best[1]])
        inst.nodes = [best[1]]
        out.placement = Placement([best[1]], group, self.stats.score())
        return out

    def failover(self, inst: Instance) -> Outcome:
        """DRBD: swap primary and secondary."""
        load = self.loads[inst.name]
        pri, sec = inst.nodes[0], inst.nodes[1]
        self.unplace(load, [pri, sec])
        out = Outcome()
        new_p, new_s = self.states[sec], self.states[pri]
        why = self._gate(new_p) or as_primary(new_p, load, inst.disk_template)[0]
        if why is None and new_s.online:
            why = as_secondary(new_s, load, inst.disk_template, sec)[0]
            why = f"{pri} cannot stay as secondary: {why}" if why else None
        elif why:
            why = f"{sec} cannot take over: {why}"
        if why:
            self.place(load, [pri, sec])
            out.note = why
            return out
        self.place(load, [sec, pri])
        inst.nodes = [sec, pri]
        out.placement = Placement([sec, pri], self._group_of(inst), self.stats.score())
        return out

    def move_drbd(self, inst: Instance, groups: list[Group],
                  exclude: frozenset[str]) -> Outcome:
        """DRBD: both nodes anew, in one of ``groups`` (its own group for evacuations)."""
        load = self.loads[inst.name]
        old = list(inst.nodes)
        self.unplace(load, old)
        out = Outcome()
        out.placement = self.choose_group(groups, inst, load, 2, out.reasons,
                                          exclude | frozenset(old))
        if out.placement is None:
            self.place(load, old)
            return out
        self.place(load, out.placement.nodes)
        inst.nodes = list(out.placement.nodes)
        return out
