"""hspace's job: how many more instances of one spec fit, per node group and in total.

Instances of the spec are placed one by one with the allocator's own rules and choices
(``solve.Solver.allocate``: memory, disk, spindles, vcpu-ratio, N+1, exclusion tags, the
group's policy), each group on its own copy of the cluster, until none fits. Then each node
says what it lacks for one more (the first rule it fails), and each group's limit is the
reason most of its nodes give (hspace's "most likely failure reason"). Pure: no I/O.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cardume.allocator.fit import as_primary, as_secondary
from cardume.allocator.model import NODE_DISK_TEMPLATES, Cluster, Group, Instance
from cardume.allocator.score import Load, NodeState
from cardume.allocator.solve import Solver, spec_of
from cardume.rules.ipolicy import violations

MAX_PER_GROUP = 100000   # a spec that takes nothing (0 memory, diskless) must still end
DRBD_META = 128          # MiB of metadata per DRBD disk, as requests count it

# what runs out, as the report names it, and hspace's machine-readable reason
LIMITS = {"memory": "FAILMEM", "disk": "FAILDISK", "cpus": "FAILCPU", "N+1": "FAILN1",
          "spindles": "FAILSPINDLES", "tags": "FAILTAGS", "policy": "FAILPOLICY",
          "unusable": "FAILOFFLINE", "none": "FAILNONE"}


@dataclass(frozen=True)
class Spec:
    memory: int
    disk: int          # MiB, one disk (0: none)
    vcpus: int
    template: str
    spindle_use: int = 1
    nic_count: int = 1

    @property
    def required_nodes(self) -> int:
        return 2 if self.template == "drbd" else 1

    def instance(self, name: str) -> Instance:
        disks = [self.disk] if self.disk and self.template != "diskless" else []
        total = sum(d + (DRBD_META if self.template == "drbd" else 0) for d in disks)
        return Instance(name=name, memory=self.memory, vcpus=self.vcpus, disks=disks,
                        disk_space_total=total, disk_template=self.template,
                        spindle_use=self.spindle_use, nic_count=self.nic_count)

    def as_data(self) -> dict[str, Any]:
        return {"memory": self.memory, "disk": self.disk, "vcpus": self.vcpus,
                "disk_template": self.template, "spindle_use": self.spindle_use}


def std_spec(group: Group, template: str | None = None) -> Spec:
    """The group's policy's standard instance (its first allowed template by default)."""
    std = group.ipolicy.get("std") or {}
    templates = group.ipolicy.get("disk-templates") or ["drbd"]
    return Spec(memory=int(std.get("memory-size", 128)), disk=int(std.get("disk-size", 1024)),
                vcpus=int(std.get("cpu-count", 1)), template=template or templates[0],
                spindle_use=int(std.get("spindle-use", 1)),
                nic_count=int(std.get("nic-count", 1)))


def classify(reason: str) -> str:
    """A fit refusal (fit.py's words) as the resource that ran out."""
    text = reason.lower()
    for needle, limit in (("vcpu", "cpus"), ("spindle", "spindles"), ("policy", "policy"),
                          ("n+1", "N+1"), ("take over", "N+1"), ("secondary", "N+1"),
                          ("memory", "memory"), ("disk", "disk"), ("volume group", "disk"),
                          ("exclusion tag", "tags"), ("offline", "unusable"),
                          ("drained", "unusable"), ("vm_capable", "unusable"),
                          ("unallocable", "policy")):
        if needle in text:
            return limit
    return "none"


@dataclass
class NodeReport:
    name: str
    placed: int = 0          # new instances with this node as primary
    mirrors: int = 0         # new DRBD secondaries on it
    limit: str = "none"
    reason: str = ""


@dataclass
class GroupReport:
    name: str
    spec: Spec
    count: int
    limit: str
    initial_score: float
    final_score: float
    nodes: list[NodeReport] = field(default_factory=list)
    note: str = ""

    def as_data(self) -> dict[str, Any]:
        return {"group": self.name, "spec": self.spec.as_data(), "count": self.count,
                "limit": self.limit, "initial_score": self.initial_score,
                "final_score": self.final_score, "note": self.note,
                "nodes": [vars(n) for n in self.nodes]}


@dataclass
class Report:
    groups: list[GroupReport]
    cluster: dict[str, Any]          # totals before: memory, disk, cpus, nodes, instances
    final: dict[str, Any]            # free memory, disk, used cpus after the allocations

    @property
    def total(self) -> int:
        return sum(g.count for g in self.groups)

    def as_data(self) -> dict[str, Any]:
        return {"total": self.total, "groups": [g.as_data() for g in self.groups],
                "cluster": self.cluster, "final": self.final}


def _node_limit(solver: Solver, ns: NodeState, load: Load, spec: Spec,
                fallback: str) -> tuple[str, str]:
    if not ns.online:
        return "unusable", solver.cluster.nodes[ns.name].unusable_reason()
    why, _ = as_primary(ns, load, spec.template)
    if why is None and spec.required_nodes == 2:
        sec_why, _ = as_secondary(ns, load, spec.template, "")
        why = f"as secondary: {sec_why}" if sec_why else None
        if why is None:
            why = fallback or "no other node can hold the mirror"
            return "N+1", why
    if why is None:
        return "none", ""
    return classify(why), why


def group_capacity(cluster: Cluster, group_uuid: str, spec: Spec,
                   limit: int = MAX_PER_GROUP) -> GroupReport:
    """Fill one group with instances of ``spec`` (on a private copy of the cluster)."""
    cluster = copy.deepcopy(cluster)
    group = cluster.groups[group_uuid]
    solver = Solver(cluster)
    report = GroupReport(name=group.name, spec=spec, count=0, limit="none",
                         initial_score=_group_score(solver, group_uuid), final_score=0.0)
    nodes = {ns.name: NodeReport(ns.name) for ns in solver.members[group_uuid]}
    errors = violations(group.ipolicy, spec_of(spec.instance("probe")))
    last_reasons: dict[str, str] = {}
    if errors:
        report.limit, report.note = "policy", f"policy of group {group.name}: " \
            f"{', '.join(errors)}"
    elif group.alloc_policy == "unallocable":
        report.limit, report.note = "policy", f"group {group.name} is unallocable"
    else:
        while report.count < limit:
            inst = spec.instance(f"capacity-probe-{report.count}")
            out = solver.allocate(inst, spec.required_nodes, group_uuid)
            if out.placement is None:
                last_reasons, report.note = out.reasons, out.note
                break
            report.count += 1
            nodes[out.placement.nodes[0]].placed += 1
            if len(out.placement.nodes) > 1:
                nodes[out.placement.nodes[1]].mirrors += 1
    probe = spec.instance("capacity-probe-next")
    load = Load(probe, cluster.exclusion_tags(probe))
    for ns in solver.members[group_uuid]:
        entry = nodes[ns.name]
        if report.limit == "policy":
            entry.limit, entry.reason = "policy", report.note
        else:
            entry.limit, entry.reason = _node_limit(solver, ns, load, spec,
                                                    last_reasons.get(ns.name, ""))
    if report.limit != "policy":
        counted = Counter(n.limit for n in nodes.values() if n.limit != "unusable")
        report.limit = counted.most_common(1)[0][0] if counted else "unusable"
    report.nodes = sorted(nodes.values(), key=lambda n: n.name)
    report.final_score = _group_score(solver, group_uuid)
    return report


def _group_score(solver: Solver, group_uuid: str) -> float:
    from cardume.allocator.score import Stats
    return Stats({ns.name: ns for ns in solver.members[group_uuid]}).score()


def _totals(cluster: Cluster, groups: set[str]) -> dict[str, Any]:
    live = [n for n in cluster.nodes.values() if n.group in groups and n.usable]
    return {"nodes": len(live), "memory": sum(n.total_memory for n in live),
            "disk": sum(n.total_disk for n in live), "cpus": sum(n.total_cpus for n in live),
            "vcpus": int(sum(n.total_cpus * max(float(
                cluster.groups[n.group].ipolicy.get("vcpu-ratio", 1)), 0) for n in live)),
            "instances": sum(1 for i in cluster.instances.values()
                             if cluster.nodes[i.nodes[0]].group in groups),
            "free_memory": sum(n.free_memory for n in live),
            "free_disk": sum(n.free_disk for n in live)}


def capacity(cluster: Cluster, spec: dict[str, int] | None = None,
             template: str | None = None, group: str | None = None,
             limit: int = MAX_PER_GROUP) -> Report:
    """How many instances of ``spec`` ({memory-size, disk-size, cpu-count}, missing keys
    from each group's std spec) fit in each group (or in ``group``, a name or uuid)."""
    uuids = sorted(cluster.groups, key=lambda u: cluster.groups[u].name)
    if group is not None:
        uuids = [u for u in uuids if group in (u, cluster.groups[u].name)]
        if not uuids:
            raise ValueError(f"node group '{group}' not found")
    reports = []
    for uuid in uuids:
        base = std_spec(cluster.groups[uuid], template)
        given = spec or {}
        one = Spec(memory=int(given.get("memory-size", base.memory)),
                   disk=int(given.get("disk-size", base.disk)),
                   vcpus=int(given.get("cpu-count", base.vcpus)), template=base.template,
                   spindle_use=int(given.get("spindle-use", base.spindle_use)),
                   nic_count=base.nic_count)
        reports.append(group_capacity(cluster, uuid, one, limit))
    totals = _totals(cluster, set(uuids))
    final = _final(totals, reports)
    return Report(groups=reports, cluster=totals, final=final)


def _final(totals: dict[str, Any], reports: list[GroupReport]) -> dict[str, Any]:
    mem = sum(g.count * g.spec.memory for g in reports)
    disk = sum(g.count * g.spec.required_nodes * g.spec.instance("x").disk_space_total
               for g in reports if g.spec.template in NODE_DISK_TEMPLATES)
    cpus = sum(g.count * g.spec.vcpus for g in reports)
    return {"instances": totals["instances"] + sum(g.count for g in reports),
            "free_memory": totals["free_memory"] - mem, "free_disk": totals["free_disk"] - disk,
            "new_vcpus": cpus}


# --- output -------------------------------------------------------------------------------

def describe(data: dict[str, Any]) -> list[str]:
    """The report (``Report.as_data()``) for people."""
    c = data["cluster"]
    lines = [f"The cluster has {c['nodes']} usable nodes with memory {c['memory']} MiB, "
             f"disk {c['disk']} MiB, {c['cpus']} CPUs ({c['vcpus']} vCPUs by policy), and "
             f"{c['instances']} instances."]
    for g in data["groups"]:
        s = g["spec"]
        lines.append(f"Node group {g['group']}: instance spec memory {s['memory']} MiB, disk "
                     f"{s['disk']} MiB, {s['vcpus']} vCPU(s), template {s['disk_template']}")
        lines.append(f"  {g['count']} more instances fit; what runs out first: {g['limit']}")
        if g["note"]:
            lines.append(f"  ({g['note']})")
        lines.append(f"  score {g['initial_score']:.8f} now, {g['final_score']:.8f} when full")
        for n in g["nodes"]:
            mirror = f", {n['mirrors']} mirrors" if n["mirrors"] else ""
            why = f" ({n['reason']})" if n["reason"] and n["limit"] != "none" else ""
            lines.append(f"    {n['name']}: {n['placed']} new{mirror}; limit {n['limit']}{why}")
    lines.append(f"In total {data['total']} more instances fit.")
    return lines


def machine_lines(data: dict[str, Any]) -> list[str]:
    """hspace's --machine-readable key=value lines (the keys cardume computes)."""
    c, f, groups = data["cluster"], data["final"], data["groups"]
    spec = groups[0]["spec"] if groups else {"memory": 0, "disk": 0, "vcpus": 0,
                                              "disk_template": "", "spindle_use": 0}
    ini = min((g["initial_score"] for g in groups), default=0.0)
    fin = min((g["final_score"] for g in groups), default=0.0)
    reasons = Counter(g["limit"] for g in groups)
    top = reasons.most_common(1)[0][0] if reasons else "none"
    pairs: list[tuple[str, Any]] = [
        ("CLUSTER_MEM", c["memory"]), ("CLUSTER_DSK", c["disk"]), ("CLUSTER_CPU", c["cpus"]),
        ("CLUSTER_VCPU", c["vcpus"]), ("CLUSTER_NODES", c["nodes"]),
        ("INI_SCORE", f"{ini:.8f}"), ("INI_INST_CNT", c["instances"]),
        ("INI_MEM_FREE", c["free_memory"]), ("INI_DSK_FREE", c["free_disk"]),
        ("SPEC_MEM", spec["memory"]), ("SPEC_DSK", spec["disk"]), ("SPEC_CPU", spec["vcpus"]),
        ("SPEC_SPN", spec["spindle_use"]),
        ("SPEC_RQN", 2 if spec["disk_template"] == "drbd" else 1),
        ("SPEC_DISK_TEMPLATE", spec["disk_template"]),
        ("FIN_SCORE", f"{fin:.8f}"), ("FIN_INST_CNT", f["instances"]),
        ("FIN_MEM_FREE", f["free_memory"]), ("FIN_DSK_FREE", f["free_disk"]),
        ("ALLOC_INSTANCES", data["total"]), ("ALLOC_FAIL_REASON", LIMITS[top])]
    pairs += [(f"ALLOC_{LIMITS[r]}_CNT", n) for r, n in sorted(reasons.items())]
    pairs.append(("OK", 1))
    return [f"HTS_{key}={value}" for key, value in pairs]
