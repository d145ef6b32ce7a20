"""Whether one instance fits on one node, and the node's score vector if it does.

Each check returns ``(None, vector)`` when the node can take the instance, else
``(reason, None)`` with the reason in plain words for the operator ("not enough memory
(512 MiB short)"). The rules are htools' hard limits: memory strictly left over, disk
strictly left over, spindles under the policy's spindle-ratio, vcpus under its vcpu-ratio,
no N+1 breakage a node did not already have, no shared exclusion tag among primaries.
"""

from __future__ import annotations

from cardume.allocator.score import Load, NodeState, Vector, make_vector


def _disk_reason(ns: NodeState, load: Load, template: str) -> str | None:
    # a node reporting no disk at all for file storage has not measured it (Ganeti's
    # master sends total_disk 0 then): file disks are only checked where it reports some
    checked = ns.t_dsk > 0 or template in ("plain", "drbd")
    if load.disk and checked and ns.f_dsk - load.disk <= 0:
        what = "volume group full" if template in ("plain", "drbd") else \
            "not enough disk space"
        return f"{what} (needs {load.disk} MiB, {max(ns.f_dsk, 0)} free)"
    if load.spindles and ns.inst_sp + load.spindles > ns.hi_sp:
        return (f"spindles over the policy limit (would use {ns.inst_sp + load.spindles}, "
                f"spindle-ratio allows {ns.hi_sp:g})")
    return None


def n1_victims(ns: NodeState, pnode: str | None, extra: str | None = None) -> str:
    """Names of the instances whose failover a node could no longer take."""
    if pnode is None:
        pnode = max(ns.peers, key=lambda p: ns.peers[p]) if ns.peers else None
    names = ns.peer_instances(pnode) if pnode else []
    if extra:
        names.append(extra)
    label = "instance" if len(names) == 1 else "instances"
    return f"would break N+1 for {label} {', '.join(names)} (if {pnode} fails)"


def as_primary(ns: NodeState, load: Load, template: str) -> tuple[str | None, Vector | None]:
    """Can ``ns`` run ``load`` as its primary node?"""
    mem = load.memory if load.running else 0
    unalloc = ns.unalloc - mem
    if mem and unalloc <= 0:
        return f"not enough memory ({mem - ns.unalloc + 1} MiB short)", None
    reason = _disk_reason(ns, load, template)
    if reason:
        return reason, None
    fail_n1 = unalloc <= ns.r_mem
    if fail_n1 and not ns.fail_n1:
        return n1_victims(ns, None), None
    u_cpu = ns.u_cpu + load.cpu
    if ns.vcpu_ratio >= 0 and ns.t_cpu and u_cpu / ns.t_cpu > ns.vcpu_ratio:
        return (f"too many vcpus ({u_cpu} on {ns.t_cpu:g} cpus, policy vcpu-ratio "
                f"{ns.vcpu_ratio:g})"), None
    for tag in load.excl:
        if tag in ns.ptags:
            return (f"exclusion tag {tag} already used by instance "
                    f"{', '.join(ns.ptags[tag])}"), None
    vec = make_vector(ns, unalloc, ns.mem_forth - load.memory, ns.f_dsk - load.disk, u_cpu,
                      len(ns.primaries) + 1, len(ns.secondaries), ns.r_mem, fail_n1,
                      ns.inst_sp + load.spindles, ns.conflicts())
    return None, vec


def as_secondary(ns: NodeState, load: Load, template: str,
                 pnode: str) -> tuple[str | None, Vector | None]:
    """Can ``ns`` hold the DRBD mirror of ``load`` whose primary is ``pnode``?"""
    reason = _disk_reason(ns, load, template)
    if reason:
        return reason, None
    if load.sec_mem and load.sec_mem >= ns.unalloc:
        return (f"not enough memory to take over {load.name} ("
                f"{load.sec_mem - ns.unalloc + 1} MiB short)"), None
    peer = ns.peers.get(pnode, 0) + load.sec_mem
    r_mem = max(ns.r_mem, peer)
    fail_n1 = ns.unalloc <= r_mem
    if fail_n1 and not ns.fail_n1:
        return n1_victims(ns, pnode, load.name), None
    vec = make_vector(ns, ns.unalloc, ns.mem_forth, ns.f_dsk - load.disk, ns.u_cpu,
                      len(ns.primaries), len(ns.secondaries) + 1, r_mem, fail_n1,
                      ns.inst_sp + load.spindles, ns.conflicts())
    return None, vec
