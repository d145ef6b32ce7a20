"""The watcher's decisions, as pure functions of what a pass saw: which instances to start,
which to leave alone and why, which nodes rebooted and whose disks to activate again.

Ganeti's rules (man ganeti-watcher): only an instance in ERROR_down (marked up, its primary
answers, no node runs it) is started, at most MAX_TRIES times until it is seen running
again; an instance whose primary is down or offline is in an unknown state and is left
alone, as are those an admin stopped (ADMIN_down), those running where they shouldn't
(ERROR_up, ERROR_wrongnode: the admin's to sort out) and those whose guest shut itself down
(USER_down). cardume adds: nothing is done to an instance a job is queued or running for
(a migration, a failover, a stop the admin started), so the watcher never queues a start
behind them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_TRIES = 5
"""Start attempts per instance before the watcher gives up on it (Ganeti's MAXTRIES)."""
JOB_AGE = 6 * 3600
"""Jobs that ended longer ago than this are archived (Ganeti's default, seconds)."""
PENDING = ("queued", "waiting", "running", "canceling")
HELPLESS = ("ERROR_nodedown", "ERROR_nodeoffline")
"""Statuses that say nothing of the instance itself: its primary can't be asked."""
DISKLESS = "diskless"
MIRRORED = ("drbd",)
"""Templates whose disks verify-disks looks at (mirrored over the network)."""
_LEFT_ALONE = {
    "USER_down": "its guest shut itself down (USER_down); it is not started again",
    "ERROR_nodedown": "its primary node does not answer (ERROR_nodedown): state unknown",
    "ERROR_nodeoffline": "its primary node is offline (ERROR_nodeoffline): state unknown",
    "ERROR_wrongnode": "it runs on a node other than its primary (ERROR_wrongnode); "
                       "for the admin: gnt-instance migrate --cleanup",
    "ERROR_up": "it runs though marked down (ERROR_up); for the admin",
}
_SUFFIXES = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class Instance:
    name: str
    status: str
    admin_state: str = "up"
    disks_active: bool = False
    pnode: str = ""
    snodes: tuple[str, ...] = ()
    disk_template: str = "file"

    @property
    def nodes(self) -> tuple[str, ...]:
        return (self.pnode, *self.snodes)


@dataclass(frozen=True)
class Node:
    name: str
    bootid: str | None
    offline: bool = False


@dataclass(frozen=True)
class Job:
    id: int
    status: str
    ops: tuple[Mapping[str, Any], ...]


@dataclass
class Decision:
    """One thing the watcher did or chose not to do, and why (logged, and kept in the
    state file for ``gnt-cluster watcher info``)."""

    target: str  # "instance vm1", "node node2", "jobs", "cluster"
    action: str  # start, activate-disks, verify-disks, archive, leave, give-up, reset, ...
    reason: str
    job: int | None = None
    outcome: str | None = None  # the job's end: success, error: ..., still running

    @property
    def subject(self) -> str:
        """The name in the target: "vm1" for "instance vm1"."""
        return self.target.partition(" ")[2] or self.target

    def line(self) -> str:
        text = f"{self.target}: {self.action} ({self.reason})"
        if self.job is not None:
            text += f"; job {self.job}"
        if self.outcome is not None:
            text += f": {self.outcome}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        return cls(str(data.get("target", "?")), str(data.get("action", "?")),
                   str(data.get("reason", "")), data.get("job"), data.get("outcome"))


@dataclass
class RestartPlan:
    start: list[str] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)
    """the attempt counts to keep after this pass"""
    decisions: list[Decision] = field(default_factory=list)


def parse_timespec(text: str) -> int:
    """Seconds in Ganeti's time specification: a whole number with an optional suffix s, m,
    h, d or w (``90``, ``30m``, ``1h``, ``2d``, ``1w``); ValueError with Ganeti's words."""
    if not text:
        raise ValueError("Empty time specification passed")
    value, factor = text, 1
    if text[-1] in _SUFFIXES:
        value, factor = text[:-1], _SUFFIXES[text[-1]]
        if not value:
            raise ValueError("Invalid time specification (only suffix passed)")
    try:
        return int(value, 10) * factor
    except ValueError:
        raise ValueError(f"Invalid time specification '{value}'") from None


def _matches(asked: Any, name: str) -> bool:
    """Whether a name in an opcode (perhaps short: "vm1" for "vm1.example.com") names
    ``name``."""
    return isinstance(asked, str) and bool(asked) and (
        asked == name or name.startswith(asked + "."))


def busy_instances(jobs: Iterable[Job], instances: Iterable[Instance]) -> dict[str, int]:
    """instance name -> a pending job acting on it: one naming it, or a node operation
    (evacuate, migrate, failover...) on one of its nodes."""
    insts = list(instances)
    busy: dict[str, int] = {}
    for job in sorted(jobs, key=lambda j: j.id):
        if job.status not in PENDING:
            continue
        for op in job.ops:
            named = [op.get("instance_name")]
            many = op.get("instances")
            if isinstance(many, list):
                named += [i.get("instance_name") if isinstance(i, Mapping) else i
                          for i in many]
            node = op.get("node_name") if str(op.get("OP_ID", "")).startswith("OP_NODE_") \
                else None
            for inst in insts:
                if inst.name in busy:
                    continue
                if any(_matches(n, inst.name) for n in named) or \
                        any(_matches(node, n) for n in inst.nodes if n):
                    busy[inst.name] = job.id
    return busy


def plan_restarts(instances: Iterable[Instance], restarts: Mapping[str, int],
                  busy: Mapping[str, int], max_tries: int = MAX_TRIES) -> RestartPlan:
    """Which instances to start, and the attempt counts to keep (Ganeti's notepad)."""
    plan = RestartPlan()
    for inst in sorted(instances, key=lambda i: i.name):
        tries = restarts.get(inst.name, 0)
        target = f"instance {inst.name}"
        if inst.status == "ERROR_down" and inst.name in busy:
            plan.decisions.append(Decision(
                target, "leave", f"marked up but not running, and job {busy[inst.name]} is "
                "pending on it: not queueing a start behind it"))
            if tries:
                plan.restarts[inst.name] = tries
        elif inst.status == "ERROR_down":
            if tries > max_tries:
                plan.decisions.append(Decision(
                    target, "leave", f"still down; gave up after {max_tries} start attempts"))
                plan.restarts[inst.name] = tries
            elif tries == max_tries:
                plan.decisions.append(Decision(
                    target, "give-up", f"still down after {max_tries} start attempts; not "
                    f"starting it again until it is seen running (gnt-instance startup "
                    f"{inst.name})"))
                plan.restarts[inst.name] = tries + 1
            else:
                plan.start.append(inst.name)
                plan.restarts[inst.name] = tries + 1
                plan.decisions.append(Decision(
                    target, "start", f"marked up but not running (ERROR_down); attempt "
                    f"{tries + 1} of {max_tries}"))
        elif inst.status in HELPLESS:
            plan.decisions.append(Decision(target, "leave", _LEFT_ALONE[inst.status]))
            if tries:
                plan.restarts[inst.name] = tries  # nothing learnt of it: count kept
        else:
            if tries:
                seen = "running again" if inst.status == "running" else \
                    f"no longer down ({inst.status})"
                plan.decisions.append(Decision(
                    target, "reset", f"{seen} after {min(tries, max_tries)} start "
                    "attempt(s)"))
            if inst.status in _LEFT_ALONE:
                plan.decisions.append(Decision(target, "leave", _LEFT_ALONE[inst.status]))
    return plan


def rebooted_nodes(nodes: Iterable[Node], known: Mapping[str, str]) -> list[str]:
    """Nodes whose boot id changed since the last pass. A node seen for the first time (no
    boot id kept) is remembered, not taken for rebooted; one that reports no boot id (down,
    offline) is skipped."""
    return sorted(n.name for n in nodes
                  if n.bootid and not n.offline and known.get(n.name) not in (None, n.bootid))


def boot_ids_to_keep(nodes: Iterable[Node], known: Mapping[str, str],
                     retry: Iterable[str] = ()) -> dict[str, str]:
    """The boot ids to remember: each answering node's current one, but the old one of the
    nodes in ``retry`` (a rebooted node whose disks could not all be seen to), so that
    the next pass sees its reboot again; nodes no longer in the cluster are forgotten."""
    again = set(retry)
    kept: dict[str, str] = {}
    for node in nodes:
        if node.name in again and node.name in known:
            kept[node.name] = known[node.name]
        elif node.bootid and not node.offline:
            kept[node.name] = node.bootid
        elif node.name in known:
            kept[node.name] = known[node.name]
    return kept


def plan_disk_activations(instances: Iterable[Instance], nodes: Iterable[Node],
                          rebooted: Iterable[str], started: Iterable[str],
                          busy: Mapping[str, int]) -> tuple[list[str], list[Decision],
                                                            set[str]]:
    """Instances whose disks to activate after their nodes rebooted: those that should be
    up (marked up, or disks activated) on a rebooted node, primary or secondary. Returns
    the names, the decisions, and the rebooted nodes to look at again next pass (an
    instance of theirs was busy)."""
    down = set(rebooted)
    done = set(started)
    offline = {n.name for n in nodes if n.offline}
    names: list[str] = []
    decisions: list[Decision] = []
    retry: set[str] = set()
    for inst in sorted(instances, key=lambda i: i.name):
        hit = [n for n in inst.nodes if n in down]
        if not hit or inst.disk_template == DISKLESS:
            continue
        if not (inst.admin_state == "up" or inst.disks_active):
            continue
        target = f"instance {inst.name}"
        why = f"node {', '.join(hit)} rebooted"
        if inst.name in done:
            decisions.append(Decision(target, "leave", f"{why}; its start activates its "
                                      "disks"))
        elif inst.name in busy:
            decisions.append(Decision(target, "leave", f"{why}, but job {busy[inst.name]} "
                                      "is pending on it; next pass"))
            retry.update(hit)
        elif inst.status in HELPLESS or any(n in offline for n in inst.nodes):
            decisions.append(Decision(target, "leave", f"{why}, but a node of it is down or "
                                      "offline"))
        else:
            names.append(inst.name)
            decisions.append(Decision(target, "activate-disks", f"{why}; it should be up, "
                                      "its disks reconnect"))
    return names, decisions, retry


def wants_verify_disks(instances: Iterable[Instance], rebooted: Iterable[str]) -> str | None:
    """Why to run verify-disks this pass (None: no need): after a reboot, or, as Ganeti's
    watcher every pass, while mirrored disks should be up."""
    if list(rebooted):
        return "after a node reboot"
    if any(i.disk_template in MIRRORED and (i.admin_state == "up" or i.disks_active)
           for i in instances):
        return "mirrored disks should be up"
    return None
