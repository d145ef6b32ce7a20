"""hbal's cluster score (Ganeti 3.0 htools), kept incrementally over per-node states.

The score is a weighted sum over the online nodes of the population standard deviation of
per-node ratios, plus weighted counts:

  stddev of  free memory / total (0.5), the same counting stopped instances' memory as used
             (0.5, hbal's "forthcoming" copy), free disk / total (1.0 = hbal's 0.5 + 0.5),
             N+1 reserved memory / total (1.0), used vcpus / physical cpus / cpu_speed (1.0),
             primaries per node (3.0: hbal's cpu, memory and network load with the default
             per-instance load of 1), primaries + secondaries (1.0: disk load),
             spindles used / spindle limit (1.0)
  sum of     instances on nodes failing N+1 (1.0), primaries sharing an exclusion tag (2.0),
             reserved memory ratios (0.25)
  over offline nodes: instances (4.0) and primaries (16.0) still on them.

Nodes that are offline, drained or not vm_capable count as offline, as in htools.
"""

from __future__ import annotations

import math

from cardume.allocator.model import SPINDLE_TEMPLATES, Cluster, Instance

# weights of the per-node stddev components, in vector order (see NodeState.vector)
STD_WEIGHTS = (0.5, 1.0, 1.0, 1.0, 3.0, 1.0, 1.0, 0.5)
N_STD = len(STD_WEIGHTS)
N1_WEIGHT, TAGS_WEIGHT, RTOTAL_WEIGHT = 1.0, 2.0, 0.25
OFF_ALL_WEIGHT, OFF_PRI_WEIGHT = 4.0, 16.0

Vector = tuple[float, ...]


class Load:
    """What one instance puts on a node, precomputed once per instance."""

    __slots__ = ("name", "memory", "running", "cpu", "disk", "spindles", "sec_mem", "excl")

    def __init__(self, inst: Instance, excl: list[str]) -> None:
        self.name = inst.name
        self.memory = inst.memory
        self.running = inst.admin_state == "up"          # uses memory on its primary
        self.cpu = inst.vcpus if inst.admin_state != "offline" else 0
        self.disk = inst.disk_space_total if inst.uses_node_disk else 0
        self.spindles = inst.spindle_use if inst.disk_template in SPINDLE_TEMPLATES else 0
        # memory a secondary keeps free for a failover (hbal: not for offline instances)
        self.sec_mem = inst.memory if inst.admin_state != "offline" and inst.mirrored else 0
        self.excl = excl


class NodeState:
    """A node's resources as the score sees them; mutated as placements are committed."""

    __slots__ = ("name", "group", "online", "t_mem", "unalloc", "mem_forth", "t_dsk", "f_dsk",
                 "t_cpu", "u_cpu", "cpu_speed", "primaries", "secondaries", "peers", "r_mem",
                 "fail_n1", "inst_sp", "hi_sp", "ptags", "vcpu_ratio")

    def __init__(self, name: str, group: str, online: bool) -> None:
        self.name, self.group, self.online = name, group, online
        self.t_mem = self.unalloc = self.mem_forth = 0
        self.t_dsk = self.f_dsk = 0
        self.t_cpu, self.u_cpu, self.cpu_speed = 0.0, 0, 1.0
        self.primaries: dict[str, Load] = {}
        self.secondaries: dict[str, tuple[Load, str]] = {}
        self.peers: dict[str, int] = {}          # primary node -> memory to take over from it
        self.r_mem = 0
        self.fail_n1 = False
        self.inst_sp = 0
        self.hi_sp = 0.0
        self.ptags: dict[str, list[str]] = {}     # exclusion tag -> primaries carrying it
        self.vcpu_ratio = -1.0

    def conflicts(self) -> int:
        return sum(len(v) - 1 for v in self.ptags.values())

    def vector(self) -> Vector:
        if not self.online:
            return (float(len(self.primaries) + len(self.secondaries)), float(len(self.primaries)))
        return make_vector(self, self.unalloc, self.mem_forth, self.f_dsk, self.u_cpu,
                           len(self.primaries), len(self.secondaries), self.r_mem,
                           self.fail_n1, self.inst_sp, self.conflicts())

    # --- committed changes ----------------------------------------------------------
    def add_primary(self, load: Load) -> None:
        self.primaries[load.name] = load
        if load.running:
            self.unalloc -= load.memory
        self.mem_forth -= load.memory
        self.f_dsk -= load.disk
        self.u_cpu += load.cpu
        self.inst_sp += load.spindles
        for tag in load.excl:
            self.ptags.setdefault(tag, []).append(load.name)
        self.fail_n1 = self.unalloc <= self.r_mem

    def remove_primary(self, load: Load) -> None:
        del self.primaries[load.name]
        if load.running:
            self.unalloc += load.memory
        self.mem_forth += load.memory
        self.f_dsk += load.disk
        self.u_cpu -= load.cpu
        self.inst_sp -= load.spindles
        for tag in load.excl:
            owners = self.ptags[tag]
            owners.remove(load.name)
            if not owners:
                del self.ptags[tag]
        self.fail_n1 = self.unalloc <= self.r_mem

    def add_secondary(self, load: Load, pnode: str) -> None:
        self.secondaries[load.name] = (load, pnode)
        self.f_dsk -= load.disk
        self.inst_sp += load.spindles
        self.peers[pnode] = self.peers.get(pnode, 0) + load.sec_mem
        self.r_mem = max(self.r_mem, self.peers[pnode])
        self.fail_n1 = self.unalloc <= self.r_mem

    def remove_secondary(self, load: Load) -> None:
        _, pnode = self.secondaries.pop(load.name)
        self.f_dsk += load.disk
        self.inst_sp -= load.spindles
        left = self.peers.get(pnode, 0) - load.sec_mem
        if left > 0:
            self.peers[pnode] = left
        else:
            self.peers.pop(pnode, None)
        self.r_mem = max(self.peers.values(), default=0)
        self.fail_n1 = self.unalloc <= self.r_mem

    def peer_instances(self, pnode: str) -> list[str]:
        """The instances this node would have to start if ``pnode`` failed."""
        return sorted(n for n, (ld, p) in self.secondaries.items() if p == pnode and ld.sec_mem)


def make_vector(ns: NodeState, unalloc: int, mem_forth: int, f_dsk: int, u_cpu: int,
                n_pri: int, n_sec: int, r_mem: int, fail_n1: bool, inst_sp: int,
                conflicts: int) -> Vector:
    """An online node's score components for the given figures (ns gives the totals)."""
    t_mem = ns.t_mem or 1
    return (unalloc / t_mem,
            f_dsk / ns.t_dsk if ns.t_dsk else 1.0,
            r_mem / t_mem,
            u_cpu / ns.t_cpu / ns.cpu_speed if ns.t_cpu else 0.0,
            float(n_pri),
            float(n_pri + n_sec),
            inst_sp / ns.hi_sp if ns.hi_sp else 0.0,
            mem_forth / t_mem,
            float(n_pri + n_sec) if fail_n1 else 0.0,
            float(conflicts))


def build_states(cluster: Cluster) -> tuple[dict[str, NodeState], dict[str, Load]]:
    """The node states of the cluster as the request describes it, and each instance's load."""
    states: dict[str, NodeState] = {}
    for node in cluster.nodes.values():
        ns = NodeState(node.name, node.group, node.usable)
        policy = cluster.groups[node.group].ipolicy
        ns.t_mem = node.total_memory
        ns.t_dsk, ns.f_dsk = node.total_disk, node.free_disk
        ns.t_cpu, ns.u_cpu, ns.cpu_speed = float(node.total_cpus), node.reserved_cpus, \
            node.cpu_speed
        ns.hi_sp = float(policy.get("spindle-ratio", 32)) * node.spindle_count
        ns.vcpu_ratio = float(policy.get("vcpu-ratio", -1))
        states[node.name] = ns
    loads = {name: Load(inst, cluster.exclusion_tags(inst))
             for name, inst in cluster.instances.items()}
    used_mem = dict.fromkeys(states, 0)
    for name, inst in cluster.instances.items():
        load = loads[name]
        pri = states[inst.nodes[0]]
        pri.primaries[name] = load
        if load.running:
            used_mem[pri.name] += load.memory
        else:
            pri.mem_forth -= load.memory
        pri.u_cpu += load.cpu
        pri.inst_sp += load.spindles
        for tag in load.excl:
            pri.ptags.setdefault(tag, []).append(name)
        if inst.mirrored and len(inst.nodes) > 1:
            sec = states[inst.nodes[1]]
            sec.secondaries[name] = (load, pri.name)
            sec.inst_sp += load.spindles
            sec.peers[pri.name] = sec.peers.get(pri.name, 0) + load.sec_mem
    for node in cluster.nodes.values():
        ns = states[node.name]
        recorded = node.total_memory - node.reserved_memory - used_mem[node.name]
        # free memory is the smaller of what the node reports and what the records leave
        ns.unalloc = min(recorded, node.free_memory)
        ns.mem_forth += node.free_memory
        ns.r_mem = max(ns.peers.values(), default=0)
        ns.fail_n1 = node.free_memory < ns.r_mem
    return states, loads


class Stats:
    """Running sums over the node vectors, so one placement is scored in O(1)."""

    __slots__ = ("n", "sums", "sqs", "n1", "tags", "off_all", "off_pri")

    def __init__(self, states: dict[str, NodeState] | None = None) -> None:
        self.n = 0
        self.sums = [0.0] * N_STD
        self.sqs = [0.0] * N_STD
        self.n1 = self.tags = self.off_all = self.off_pri = 0.0
        for ns in (states or {}).values():
            self.add(ns.vector(), 1)

    def add(self, vec: Vector, sign: int) -> None:
        if len(vec) == 2:
            self.off_all += sign * vec[0]
            self.off_pri += sign * vec[1]
            return
        self.n += sign
        for i in range(N_STD):
            self.sums[i] += sign * vec[i]
            self.sqs[i] += sign * vec[i] * vec[i]
        self.n1 += sign * vec[N_STD]
        self.tags += sign * vec[N_STD + 1]

    def replace(self, old: Vector, new: Vector) -> None:
        self.add(old, -1)
        self.add(new, 1)

    def score(self) -> float:
        return self.score_with(())

    def score_with(self, changes: tuple[tuple[Vector, Vector], ...]) -> float:
        """The score if each (old, new) node vector pair were swapped in."""
        sums, sqs = self.sums, self.sqs
        n1, tags, off_all, off_pri = self.n1, self.tags, self.off_all, self.off_pri
        if changes:
            sums, sqs = list(sums), list(sqs)
            for old, new in changes:
                if len(old) == 2:
                    off_all += new[0] - old[0]
                    off_pri += new[1] - old[1]
                    continue
                for i in range(N_STD):
                    a, b = old[i], new[i]
                    if a != b:
                        sums[i] += b - a
                        sqs[i] += b * b - a * a
                n1 += new[N_STD] - old[N_STD]
                tags += new[N_STD + 1] - old[N_STD + 1]
        total = N1_WEIGHT * n1 + TAGS_WEIGHT * tags + OFF_ALL_WEIGHT * off_all \
            + OFF_PRI_WEIGHT * off_pri + RTOTAL_WEIGHT * sums[2]
        n = self.n
        if n:
            for i in range(N_STD):
                mean = sums[i] / n
                var = sqs[i] / n - mean * mean
                if var > 1e-15:
                    total += STD_WEIGHTS[i] * math.sqrt(var)
        return total


class ScoredNodes:
    """Node states with each one's score vector and the running sums kept in step, so a
    committed placement costs O(1) and a candidate is scored by ``stats.score_with``.
    The allocator's solver and the balancer both keep their nodes so."""

    def __init__(self, states: dict[str, NodeState]) -> None:
        self.states = states
        self.vecs: dict[str, Vector] = {n: ns.vector() for n, ns in states.items()}
        self.stats = Stats()
        for vec in self.vecs.values():
            self.stats.add(vec, 1)

    def _refresh(self, ns: NodeState) -> None:
        new = ns.vector()
        self.stats.replace(self.vecs[ns.name], new)
        self.vecs[ns.name] = new

    def place(self, load: Load, nodes: list[str]) -> None:
        """Put ``load`` on ``nodes`` (primary first; a secondary outside these nodes, as
        in another group, is left alone)."""
        pri = self.states[nodes[0]]
        pri.add_primary(load)
        self._refresh(pri)
        if len(nodes) > 1 and nodes[1] in self.states:
            sec = self.states[nodes[1]]
            sec.add_secondary(load, pri.name)
            self._refresh(sec)

    def unplace(self, load: Load, nodes: list[str]) -> None:
        if len(nodes) > 1 and nodes[1] in self.states \
                and load.name in self.states[nodes[1]].secondaries:
            self.states[nodes[1]].remove_secondary(load)
            self._refresh(self.states[nodes[1]])
        self.states[nodes[0]].remove_primary(load)
        self._refresh(self.states[nodes[0]])


def cluster_score(states: dict[str, NodeState]) -> float:
    """The score computed from scratch (two-pass stddev), for reports and checks."""
    online = [ns.vector() for ns in states.values() if ns.online]
    offline = [ns.vector() for ns in states.values() if not ns.online]
    total = sum(OFF_ALL_WEIGHT * v[0] + OFF_PRI_WEIGHT * v[1] for v in offline)
    if not online:
        return total
    n = len(online)
    for i, weight in enumerate(STD_WEIGHTS):
        mean = sum(v[i] for v in online) / n
        total += weight * math.sqrt(sum((v[i] - mean) ** 2 for v in online) / n)
    total += sum(N1_WEIGHT * v[N_STD] + TAGS_WEIGHT * v[N_STD + 1] + RTOTAL_WEIGHT * v[2]
                 for v in online)
    return total


def request_score(cluster: Cluster) -> float:
    """The cluster score of the cluster a request describes."""
    return cluster_score(build_states(cluster)[0])
