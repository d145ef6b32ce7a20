"""One watcher pass against the master, through its socket only: what the cluster looks like
(instances, nodes' boot ids, pending jobs), the decisions (watcher.decide), each action an
ordinary job (so it takes the instance's locks through the queue), and the jobs' ends.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from cardume import errors
from cardume.watcher import decide
from cardume.watcher.decide import Decision
from cardume.watcher.state import WatcherState

log = logging.getLogger("cardume.watcher")

REASON_SOURCE = "gnt:watcher"  # Ganeti's reason source of the watcher's opcodes
PRIO_LOW = 10  # verify-disks runs after the admin's jobs, as Ganeti's watcher asks
INSTANCE_FIELDS = ["name", "status", "admin_state", "disks_active", "pnode", "snodes",
                   "disk_template"]
NODE_FIELDS = ["name", "bootid", "offline"]


class MasterClient(Protocol):
    """What a pass asks of master.client.Client (tests give a fake)."""

    def call(self, method: str, *args: Any) -> Any: ...

    def submit(self, ops: list[dict[str, Any]]) -> int: ...


@dataclass
class Options:
    job_age: int = decide.JOB_AGE
    max_tries: int = decide.MAX_TRIES
    verify_disks: bool = True
    wait: float = 240.0
    """seconds the pass waits for its jobs (they go on after; the next pass sees them)"""


def _rows(client: MasterClient, what: str, fields: list[str], qfilter: Any = None) -> list[
        dict[str, Any]]:
    reply = client.call("Query", what, fields, None, qfilter)
    return [dict(zip(fields, row, strict=True)) for row in reply["data"]]


def look(client: MasterClient) -> tuple[list[decide.Instance], list[decide.Node],
                                        list[decide.Job]]:
    """The instances (with their live status), the nodes' boot ids, the pending jobs."""
    instances = [decide.Instance(
        name=r["name"], status=str(r["status"]), admin_state=str(r["admin_state"]),
        disks_active=bool(r["disks_active"]), pnode=str(r["pnode"] or ""),
        snodes=tuple(r["snodes"] or ()), disk_template=str(r["disk_template"]))
        for r in _rows(client, "instance", INSTANCE_FIELDS)]
    nodes = [decide.Node(r["name"], r["bootid"] if isinstance(r["bootid"], str) else None,
                         bool(r["offline"]))
             for r in _rows(client, "node", NODE_FIELDS)]
    pending = ["|", *(["=", "status", s] for s in decide.PENDING)]
    jobs = [decide.Job(int(r["id"]), str(r["status"]),
                       tuple(op for op in r["ops"] or () if isinstance(op, dict)))
            for r in _rows(client, "job", ["id", "status", "ops"], pending)]
    return instances, nodes, jobs


def _reason(text: str) -> list[list[Any]]:
    return [[REASON_SOURCE, text, time.time_ns()]]


def _submit(client: MasterClient, decision: Decision, op: dict[str, Any]) -> None:
    try:
        decision.job = client.submit([op])
    except errors.CardumeError as err:  # a drained queue, a refused opcode
        decision.outcome = f"not submitted: {err}"


def _outcome(change: dict[str, Any]) -> str:
    status = change["status"]
    if status == "success":
        return "success"
    for result in change.get("opresult") or ():
        if isinstance(result, dict) and result.get("message"):
            return f"{status}: {result['message']}"
    return status


def wait_jobs(client: MasterClient, decisions: list[Decision], deadline: float) -> None:
    """Each decision's job's end as its outcome, waiting until ``deadline`` (monotonic);
    a job that goes on longer is "still running" (the next pass sees its result)."""
    for decision in decisions:
        if decision.job is None or decision.outcome is not None:
            continue
        status: str | None = None
        serial = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                decision.outcome = f"still {status or 'pending'} after the pass"
                break
            change = client.call("WaitForJobChange", decision.job, status, serial,
                                 min(left, 30.0))
            if change == "nochange":
                continue
            status = change["status"]
            for entry in change.get("log") or ():
                serial = max(serial, int(entry[0]))
            if "opresult" in change:
                decision.outcome = _outcome(change)
                break


def run_pass(client: MasterClient, state: WatcherState, opts: Options) -> list[Decision]:
    """One pass; ``state`` is updated (restart counts, boot ids). Returns the decisions."""
    deadline = time.monotonic() + opts.wait
    decisions: list[Decision] = []
    archived = int(client.call("AutoArchiveJobs", float(opts.job_age)))
    if archived:
        decisions.append(Decision("jobs", "archive", f"{archived} job(s) ended more than "
                                  f"{opts.job_age}s ago"))
    instances, nodes, jobs = look(client)
    busy = decide.busy_instances(jobs, instances)

    plan = decide.plan_restarts(instances, state.restarts, busy, opts.max_tries)
    for decision in plan.decisions:
        if decision.action == "start":
            name = decision.subject
            _submit(client, decision, {"OP_ID": "OP_INSTANCE_STARTUP", "instance_name": name,
                                       "reason": _reason(f"Restarting instance {name}")})
    decisions.extend(plan.decisions)
    state.restarts = plan.restarts
    started = [d.subject for d in plan.decisions if d.action == "start" and d.job is not None]

    rebooted = decide.rebooted_nodes(nodes, state.nodes)
    for name in rebooted:
        decisions.append(Decision(f"node {name}", "rebooted", "its boot id changed since "
                                  "the last pass"))
    for node in nodes:
        if node.name not in state.nodes and node.bootid:
            log.debug("node %s: first seen, boot id %s remembered", node.name, node.bootid)
    names, disk_decisions, retry = decide.plan_disk_activations(
        instances, nodes, rebooted, started, busy)
    for decision in disk_decisions:
        if decision.action == "activate-disks":
            name = decision.subject
            _submit(client, decision, {
                "OP_ID": "OP_INSTANCE_ACTIVATE_DISKS", "instance_name": name,
                "reason": _reason(f"Activating disks for instance {name}")})
    decisions.extend(disk_decisions)
    state.nodes = decide.boot_ids_to_keep(nodes, state.nodes, retry)

    why = decide.wants_verify_disks(instances, rebooted) if opts.verify_disks else None
    if why:
        decision = Decision("cluster", "verify-disks", why)
        _submit(client, decision, {"OP_ID": "OP_CLUSTER_VERIFY_DISKS", "priority": PRIO_LOW,
                                   "reason": _reason("Verifying disks")})
        decisions.append(decision)

    wait_jobs(client, decisions, deadline)
    return decisions
