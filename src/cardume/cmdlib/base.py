"""The logical-unit lifecycle, typed: check arguments → declare locks → check prerequisites
(no side effects) → execute. ``--dry-run`` stops before execute.

A logical unit (LU) implements one opcode. The runner (``run_opcode``) drives the
lifecycle, takes the LU's locks in level order for the job, and releases them whatever
happens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from cardume import constants, errors, objects, opcodes
from cardume.jobs import locks
from cardume.rpc import wire

if TYPE_CHECKING:
    from cardume.config.writer import ConfigWriter
    from cardume.jobs.queue import Job, JobQueue
    from cardume.resolver import Resolver
    from cardume.rpc.client import NodeRpc

ALL = locks.ALL_SET


class ClusterDuties(Protocol):
    """The few things a logical unit asks of the master as a whole: node membership and
    roles change what every node keeps (ssconf, replicas), and destroy ends the daemon.
    The master daemon provides them; logical units never see the daemon itself."""

    async def redistribute(self, full: bool) -> dict[str, str]:
        """Push ssconf to every online node (and the config where needed); failures by
        node name."""

    def ssconf_data(self, extra: objects.Node | None = None) -> dict[str, Any]:
        """The summary every node keeps, optionally with a node about to join."""

    def client_tls_files(self) -> tuple[str, str]:
        """The master's client certificate and key, for calls to a node not yet joined."""

    def schedule_destroy(self) -> None:
        """Stop the master daemon and remove its state once the current job ended."""


@dataclass
class Context:
    """What every logical unit may use (configuration, node calls, locks, the job queue for
    its log, name resolution and the cluster duties); built once by the master daemon."""

    cfg: ConfigWriter
    rpc: NodeRpc
    locks: locks.LockManager
    queue: JobQueue
    resolver: Resolver
    master: ClusterDuties


class LogicalUnit:
    """Base of all logical units. Subclasses set OP and override the phases they need."""

    OP: ClassVar[type[opcodes.OpCode]]
    # Every LU takes the cluster-wide lock shared unless it says otherwise; changes that
    # must see the cluster still (destroy, redistribution) take it exclusively.
    BGL_SHARED: ClassVar[bool | None] = True

    def __init__(self, ctx: Context, op: Any, job: Job | None) -> None:
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.rpc = ctx.rpc
        self.op = op
        self.job = job
        self._undo: list[dict[str, Any]] = []  # without a job (tests): kept here

    # --- phases ------------------------------------------------------------------------

    def check_arguments(self) -> None:
        """Validate the opcode's values among themselves; no config, no I/O."""

    def declare_locks(self) -> dict[str, tuple[Any, bool]]:
        """Locks below the cluster level: {level: (names or ALL, shared)}."""
        return {}

    async def check_prereq(self) -> None:
        """Check the cluster is in a state where exec can succeed; change nothing."""

    async def exec(self) -> Any:
        raise NotImplementedError

    # --- feedback ------------------------------------------------------------------------

    def log_info(self, message: str) -> None:
        if self.job is not None:
            self.ctx.queue.feedback(self.job, message)

    def log_warning(self, message: str) -> None:
        self.log_info(f"WARNING: {message}")

    async def ask_each(self, nodes: list[objects.Node],
                       one: Callable[[objects.Node], Awaitable[Any]],
                       failed: str) -> dict[str, Any]:
        """``one(node)`` on every node in parallel, answers by node uuid. For a report that
        goes on without the nodes that fail: each is left out, with ``failed`` (formatted
        with ``node`` and ``error``) as a warning in the job's log."""
        results = await self.rpc.each(nodes, one)
        answers: dict[str, Any] = {}
        for node in nodes:
            result = results[node.name]
            if result.error is not None:
                self.log_warning(failed.format(node=node.name, error=result.error))
            else:
                answers[node.uuid] = result.value
        return answers

    # --- undoing what a failed execution made ----------------------------------------------
    # Before exec makes something (a disk on a node), it records how to take it away. A
    # failure undoes it at once; should the master die first, or a node be down just then,
    # the record stays in the job and the master daemon undoes it later (at start-up, then
    # from its housekeeping). Once the work is the cluster's (committed), undo_done().

    def undo_later(self, node: objects.Node, call: str, args: dict[str, Any], what: str,
                   unless_instance: str | None = None) -> None:
        """Record that ``call(args)`` on ``node`` undoes ``what`` (not needed any more, and
        never run, once the config holds ``unless_instance``). The record is kept in the
        job, so typed structures in ``args`` are kept as their dicts (the generic path of
        NodeRpc sends them as they are)."""
        entry = {"node": node.uuid, "call": call, "args": wire.plain(args), "what": what,
                 "unless_instance": unless_instance}
        if self.job is None:
            self._undo.append(entry)
        else:
            self.ctx.queue.note_undo(self.job, entry)

    async def undo_now(self) -> None:
        """Undo what was recorded, newest first; what fails stays recorded for later."""
        entries = self.job.undo if self.job is not None else self._undo
        left = await run_undo(self.ctx, entries, self.log_warning)
        self._set_undo(left)

    def undo_done(self) -> None:
        """What was recorded belongs to the cluster now: nothing to undo."""
        self._set_undo([])

    def _set_undo(self, entries: list[dict[str, Any]]) -> None:
        if self.job is None:
            self._undo = entries
        else:
            self.ctx.queue.set_undo(self.job, entries)

    # --- helpers -------------------------------------------------------------------------

    async def push_node_state(self) -> None:
        """Nodes or roles changed: every node gets the new ssconf, new candidates a replica.
        A node that can't be reached is reported, not fatal: verify and redist-conf fix it."""
        failed = await self.ctx.master.redistribute(full=False)
        for name, err in sorted(failed.items()):
            self.log_warning(f"could not update node {name}: {err}")

    def lock_plan(self) -> list[tuple[str, Any, bool]]:
        plan: list[tuple[str, Any, bool]] = []
        if self.BGL_SHARED is not None:
            plan.append((locks.LEVEL_CLUSTER, [locks.BGL], self.BGL_SHARED))
        declared = self.declare_locks()
        for level in locks.LEVELS:
            if level in declared:
                names, shared = declared[level]
                if names is not ALL:
                    names = sorted(set(names))
                    if not names:
                        continue
                plan.append((level, names, shared))
        return plan


async def run_undo(ctx: Context, entries: list[dict[str, Any]],
                   report: Callable[[str], None]) -> list[dict[str, Any]]:
    """Run undo records newest first; returns those that could not be run (their node did
    not answer). A record whose node left the cluster, or whose instance the configuration
    holds after all, is dropped."""
    left: list[dict[str, Any]] = []
    for entry in reversed(entries):
        owner = entry.get("unless_instance")
        node = ctx.cfg.nodes.get(str(entry.get("node")))
        if (owner and owner in ctx.cfg.instances) or node is None:
            continue
        try:
            await ctx.rpc.call(node, str(entry["call"]), dict(entry.get("args") or {}))
        except errors.CardumeError as err:
            report(f"could not undo {entry.get('what')}: {err} (cardume tries again later; "
                   "gnt-cluster verify shows it meanwhile)")
            left.insert(0, entry)
    return left


async def undo_interrupted(ctx: Context) -> int:
    """Undo what ended jobs left (the master died during them, or a node was down when
    they failed). Each result goes to the job's own log. Returns the jobs still pending."""
    queue = ctx.queue
    for job_id in sorted(queue.undo_pending):
        job = queue.load(job_id)
        if job is None or not job.undo:
            queue.undo_pending.discard(job_id)
            continue
        before = len(job.undo)

        def report(text: str, job: Job = job) -> None:
            queue.feedback(job, text)
        left = await run_undo(ctx, job.undo, report)
        if len(left) < before:
            done = [e["what"] for e in job.undo if e not in left]
            queue.feedback(job, "Cleaned up after the job: undid " + ", ".join(done))
        queue.set_undo(job, left)
    return len(queue.undo_pending)


LU_FOR: dict[str, type[LogicalUnit]] = {}


def register(cls: type[LogicalUnit]) -> type[LogicalUnit]:
    LU_FOR[cls.OP.OP_ID] = cls
    return cls


def check_opcode(ctx: Context, op: opcodes.OpCode) -> None:
    """The argument checks of an opcode's logical unit, without running it."""
    lu_cls = LU_FOR.get(op.OP_ID)
    if lu_cls is None:
        raise errors.WrongInput(f"opcode {op.OP_ID} is not supported by this cluster")
    lu_cls(ctx, op, None).check_arguments()


async def run_opcode(ctx: Context, job: Job | None, op: opcodes.OpCode) -> Any:
    """Run one opcode through its logical unit's lifecycle, holding its locks."""
    lu_cls = LU_FOR.get(op.OP_ID)
    if lu_cls is None:
        raise errors.WrongInput(f"opcode {op.OP_ID} is not supported by this cluster")
    lu = lu_cls(ctx, op, job)
    lu.check_arguments()
    owner = job.id if job is not None else id(lu)
    priority = job.priority if job is not None else constants.OP_PRIO_NORMAL
    try:
        for level, names, shared in lu.lock_plan():
            await ctx.locks.acquire(owner, level, names, shared=shared, priority=priority)
        if job is not None:
            ctx.queue.mark_running(job)
            await ctx.queue.wait_durable()
        await lu.check_prereq()
        if op.dry_run:
            return None
        return await lu.exec()
    finally:
        ctx.locks.release(owner)
