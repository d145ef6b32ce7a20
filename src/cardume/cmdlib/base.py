"""The logical-unit lifecycle, typed: check arguments → declare locks → check prerequisites
(no side effects) → execute. ``--dry-run`` stops before execute.

A logical unit (LU) implements one opcode. The runner (``run_opcode``) drives the
lifecycle, takes the LU's locks in level order for the job, and releases them whatever
happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from cardume import constants, errors, opcodes
from cardume.jobs import locks

if TYPE_CHECKING:
    from cardume.config.writer import ConfigWriter
    from cardume.jobs.queue import Job, JobQueue
    from cardume.masterd import MasterDaemon
    from cardume.resolver import Resolver
    from cardume.rpc.client import NodeRpc

ALL = locks.ALL_SET


@dataclass
class Context:
    """What every logical unit may use; built once by the master daemon."""

    cfg: ConfigWriter
    rpc: NodeRpc
    locks: locks.LockManager
    queue: JobQueue
    resolver: Resolver
    master: MasterDaemon


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
        await lu.check_prereq()
        if op.dry_run:
            return None
        return await lu.exec()
    finally:
        ctx.locks.release(owner)
