"""The job queue: submission, scheduling by priority, execution, waiting and cancelation.

A job is a list of opcodes run in order; the first failure ends it. Statuses follow
Ganeti: queued → waiting (for locks) → running → success | error, and canceling →
canceled. Each job runs as one asyncio task; at most ``max_running_jobs`` run at once,
the rest wait in a heap ordered by (priority, id). Every state change is written to the
job store before anyone is told about it, so a job a client saw never disappears.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cardume import constants, errors, opcodes
from cardume.jobs.metrics import JobMetrics
from cardume.jobs.store import DiskFull, JobStore

log = logging.getLogger(__name__)

# Runs one opcode of a job; given the job (for logging) and the opcode. Installed by the
# master daemon; keeps this module free of logical-unit imports.
OpRunner = Callable[["Job", opcodes.OpCode], Awaitable[Any]]

RECOVERED_MESSAGE = ("the master daemon stopped while this job was running; "
                     "its effects may be partial, check the objects it touched")


def _recovery_hint(job: Job) -> str | None:
    """What to run after a job the master's death cut short, where cardume knows: an
    interrupted live migration may have left the guest on either node."""
    for op, status in zip(job.ops, job.op_status, strict=False):
        if status != constants.JOB_STATUS_RUNNING:
            continue
        if op.OP_ID == "OP_INSTANCE_MIGRATE" and not getattr(op, "cleanup", False):
            target = getattr(op, "target_node", None)
            where = f" -n {target}" if target else ""
            return (f"gnt-instance migrate --cleanup{where} {op.instance_name} "
                    "finds where it runs")
    return None


def _unrunnable(job: Job) -> errors.CardumeError | None:
    """Why a queued job read back from the store can't run, if it can't."""
    if any(op.unchecked for op in job.ops):
        return errors.WrongInput("this job's opcodes no longer pass the checks of this "
                                 "version of cardume; it was not run", "submit it again")
    for op in job.ops:
        for name in op.SECRETS:
            if getattr(op, name, None) == opcodes.REDACTED:
                return errors.WrongState(
                    f"this job's {name.replace('_', ' ')} was not kept across the master "
                    "daemon's restart (secrets are never written to disk); it was not run",
                    f"submit it again: {op.summary()}")
    return None


def _forget_secrets(job: Job) -> None:
    for op in job.ops:
        for name in op.SECRETS:
            if getattr(op, name, None) is not None:
                setattr(op, name, opcodes.REDACTED)


class Job:
    __slots__ = ("id", "ops", "status", "priority", "received_ts", "start_ts", "end_ts",
                 "op_status", "op_result", "op_start_ts", "op_end_ts", "log", "changed",
                 "task", "current_op", "undo")

    def __init__(self, job_id: int, ops: list[opcodes.OpCode], priority: int) -> None:
        self.id = job_id
        self.ops = ops
        self.status = constants.JOB_STATUS_QUEUED
        self.priority = priority
        self.received_ts: float = time.time()
        self.start_ts: float | None = None
        self.end_ts: float | None = None
        self.op_status = [constants.JOB_STATUS_QUEUED] * len(ops)
        self.op_result: list[Any] = [None] * len(ops)
        self.op_start_ts: list[float | None] = [None] * len(ops)
        self.op_end_ts: list[float | None] = [None] * len(ops)
        self.log: list[tuple[int, float, str, str]] = []
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.current_op = -1
        # What to undo should the job stop half way (see cmdlib/base.py undo_later): written
        # before each thing it creates, cleared once the thing is the cluster's.
        self.undo: list[dict[str, Any]] = []

    def to_data(self, redact: bool = False) -> dict[str, Any]:
        """The job as stored; ``redact`` hides the opcodes' secrets (a join token)."""
        return {"id": self.id, "ops": [op.to_dict(redact) for op in self.ops],
                "status": self.status, "priority": self.priority,
                "received_ts": self.received_ts, "start_ts": self.start_ts,
                "end_ts": self.end_ts, "op_status": self.op_status,
                "op_result": self.op_result, "op_start_ts": self.op_start_ts,
                "op_end_ts": self.op_end_ts, "undo": self.undo}

    @classmethod
    def from_data(cls, data: dict[str, Any],
                  log_lines: list[tuple[int, float, str, str]]) -> Job:
        ops = [opcodes.OpCode.from_stored(op) for op in data["ops"]]
        job = cls(int(data["id"]), ops, int(data["priority"]))
        job.status = data["status"]
        job.received_ts = data["received_ts"]
        job.start_ts = data["start_ts"]
        job.end_ts = data["end_ts"]
        job.op_status = list(data["op_status"])
        job.op_result = list(data["op_result"])
        job.op_start_ts = list(data["op_start_ts"])
        job.op_end_ts = list(data["op_end_ts"])
        job.log = list(log_lines)
        job.undo = list(data.get("undo") or [])
        return job

    @property
    def finalized(self) -> bool:
        return self.status in constants.JOBS_FINALIZED

    def summary(self) -> list[str]:
        return [op.summary() for op in self.ops]

    def notify(self) -> None:
        """Wake everyone waiting for a change, and arm a fresh event for the next one."""
        self.changed.set()
        self.changed = asyncio.Event()


def _never_ran(job: Job) -> bool:
    """A waiting job whose opcodes all still wait: it holds no result and changed nothing."""
    pending = (constants.JOB_STATUS_QUEUED, constants.JOB_STATUS_WAITING)
    return (job.status == constants.JOB_STATUS_WAITING
            and all(status in pending for status in job.op_status))


class JobQueue:
    def __init__(self, store: JobStore, runner: OpRunner, max_running: int,
                 validator: Callable[[opcodes.OpCode], None] | None = None) -> None:
        self.store = store
        self.runner = runner
        # Checks an opcode's arguments at submission, so bad input is refused before any
        # job exists (as Ganeti's client-side checks do), instead of leaving an error job.
        self.validator = validator
        self.max_running = max_running
        self._next_id = store.next_id()
        self._jobs: dict[int, Job] = {}  # unfinished jobs and a window of recent ones
        self._recent: list[int] = []
        self._ready: list[tuple[int, int]] = []  # heap of (priority, id)
        self._running = 0
        self.drained = store.get_meta("drained") == "1"
        self._closing = False
        # jobs whose newest state could not be written (the disk was full even after the
        # store gave up its reserve): written again by flush_unsaved()
        self._unsaved: set[int] = set()
        self._held = False
        self.undo_pending: set[int] = set()
        """Ended jobs that left things to undo (the master died, or a node was down)."""
        self.durable: Callable[[], Awaitable[None]] | None = None
        """Waits until what the store holds is on the master candidates (the master daemon
        sets it; see wait_durable)."""
        self.metrics = JobMetrics()

    # --- start-up and recovery ----------------------------------------------------------

    def recover(self, reason: str = RECOVERED_MESSAGE) -> tuple[int, int]:
        """Requeue queued jobs; end the ones that were running when the master died (or
        when the master role moved: ``reason`` says which)."""
        requeued = failed = 0
        for job_id in self.store.unfinished():
            job = self.load(job_id)
            if job is None:
                continue
            if _never_ran(job):
                # still waiting for the locks of its first opcode: nothing was done, so it
                # runs again from the start (Ganeti requeues waiting jobs too)
                job.status = constants.JOB_STATUS_QUEUED
                job.op_status = [constants.JOB_STATUS_QUEUED] * len(job.ops)
                job.start_ts = None
                job.op_start_ts = [None] * len(job.ops)
                self._persist(job)
            unrunnable = _unrunnable(job) if job.status == constants.JOB_STATUS_QUEUED \
                else None
            if unrunnable is not None:
                self._finish(job, constants.JOB_STATUS_ERROR, unrunnable.to_dict())
                failed += 1
            elif job.status == constants.JOB_STATUS_QUEUED:
                self._jobs[job.id] = job
                heapq.heappush(self._ready, (job.priority, job.id))
                requeued += 1
            elif job.status == constants.JOB_STATUS_CANCELING:
                self._finish(job, constants.JOB_STATUS_CANCELED, "job canceled")
            else:
                error = errors.ExecError(reason, _recovery_hint(job))
                self._append_log(job, "message", f"job failed: {error}")
                self._finish(job, constants.JOB_STATUS_ERROR, error.to_dict())
                failed += 1
        self.undo_pending.update(self.store.with_undo())
        self._schedule()
        return requeued, failed

    # --- submission -----------------------------------------------------------------------

    def _check_submittable(self, count: int) -> None:
        if self.drained:
            raise errors.WrongState("the job queue is drained and accepts no new jobs",
                                    "run 'gnt-cluster queue undrain'")
        if self._closing:
            raise errors.WrongState("the master daemon is shutting down")
        if self.store.full and not self.store.restore_reserve():
            # what space is left belongs to the jobs already running
            raise self.store._full_error()

    def _build(self, op_dicts: list[dict[str, Any]], job_id: int) -> Job:
        if not isinstance(op_dicts, list) or not op_dicts:
            raise errors.WrongInput("a job needs a non-empty list of opcodes")
        if not all(isinstance(d, dict) for d in op_dicts):
            raise errors.WrongInput("a job's opcodes must be objects with an OP_ID")
        ops = [opcodes.OpCode.from_dict(d) for d in op_dicts]
        if self.validator is not None:
            for op in ops:
                self.validator(op)
        priority = min(op.priority for op in ops)
        return Job(job_id, ops, priority)

    def submit(self, op_dicts: list[dict[str, Any]]) -> int:
        self._check_submittable(1)
        job = self._build(op_dicts, self._next_id)
        self.store.insert(job.id, job.status, job.to_data(redact=True))
        # the id is taken only once the job is stored: a refused write skips no number
        self._next_id += 1
        self._enqueue(job)
        return job.id

    def submit_many(self, jobs: list[list[dict[str, Any]]]) -> list[tuple[bool, Any]]:
        """Ganeti's SubmitManyJobs: one (success, id-or-error) per job, one transaction."""
        self._check_submittable(len(jobs))
        built: list[Job | errors.CardumeError] = []
        next_id = self._next_id
        for op_dicts in jobs:
            try:
                built.append(self._build(op_dicts, next_id))
                next_id += 1
            except errors.CardumeError as err:
                built.append(err)
        good = [j for j in built if isinstance(j, Job)]
        self.store.insert_many([(j.id, j.status, j.to_data(redact=True)) for j in good])
        self._next_id = next_id
        for job in good:
            self._enqueue(job)
        return [(True, j.id) if isinstance(j, Job) else (False, str(j)) for j in built]

    def _enqueue(self, job: Job) -> None:
        self._jobs[job.id] = job
        heapq.heappush(self._ready, (job.priority, job.id))
        self._schedule()

    # --- scheduling and execution ----------------------------------------------------------

    def hold(self) -> None:
        """Start no job until :meth:`release` (a new master first tells the nodes)."""
        self._held = True

    def release(self) -> None:
        self._held = False
        self._schedule()

    def _schedule(self) -> None:
        if self._held:
            return
        while self._ready and self._running < self.max_running and not self._closing:
            _, job_id = heapq.heappop(self._ready)
            job = self._jobs.get(job_id)
            if job is None or job.status != constants.JOB_STATUS_QUEUED:
                continue
            self._running += 1
            job.task = asyncio.get_running_loop().create_task(self._run(job))

    async def _run(self, job: Job) -> None:
        try:
            await self._run_ops(job)
        finally:
            self._running -= 1
            job.task = None
            self._schedule()

    async def _run_ops(self, job: Job) -> None:
        job.start_ts = time.time()
        for index, op in enumerate(job.ops):
            job.current_op = index
            job.op_start_ts[index] = time.time()
            self._set_status(job, constants.JOB_STATUS_WAITING, index)
            try:
                result = await self.runner(job, op)
            except asyncio.CancelledError:
                if self._closing:  # left as running: the next start ends it as error
                    raise
                self._cancel_rest(job, index)
                return
            except errors.CardumeError as err:
                self._fail(job, index, err)
                return
            except Exception as err:  # a bug: report it with its place, keep the queue alive
                log.exception("job %d opcode %s crashed", job.id, op.OP_ID)
                self._fail(job, index, errors.InternalError(
                    f"internal error in {op.OP_ID}: {type(err).__name__}: {err}"))
                return
            job.op_result[index] = result
            job.op_status[index] = constants.JOB_STATUS_SUCCESS
            job.op_end_ts[index] = time.time()
        self._finish(job, constants.JOB_STATUS_SUCCESS)

    def mark_running(self, job: Job) -> None:
        """Called by the runner once the opcode holds its locks."""
        self._set_status(job, constants.JOB_STATUS_RUNNING, job.current_op)

    async def wait_durable(self) -> None:
        """Until the candidates hold what the store holds now. Before an opcode changes
        anything its job is 'running' there too: a master failover then ends the job as an
        error instead of running it a second time from the start."""
        if self.durable is not None:
            await self.durable()

    def _set_status(self, job: Job, status: str, index: int) -> None:
        job.status = status
        job.op_status[index] = status
        self._persist(job)
        job.notify()

    def _persist(self, job: Job) -> None:
        """Write the job's state. Secrets (a join token) are never written: a store's old
        pages and WAL frames would keep them long after the job; they live in memory while
        the job may need them, and leave it once the job ended. Should even the store's
        reserve be used up, the job goes on and its state is written once there is room."""
        if job.finalized:
            _forget_secrets(job)
        try:
            self.store.update(job.id, job.status, job.to_data(redact=True),
                              job.end_ts if job.finalized else None)
        except DiskFull as err:
            if job.id not in self._unsaved:
                log.error("job %d: state not written: %s", job.id, err)
            self._unsaved.add(job.id)
            return
        self._unsaved.discard(job.id)

    @property
    def has_unsaved(self) -> bool:
        return bool(self._unsaved)

    def flush_unsaved(self) -> int:
        """Write the jobs whose state a full disk held back; how many are still unsaved."""
        for job_id in sorted(self._unsaved):
            job = self._jobs.get(job_id)
            if job is None:
                self._unsaved.discard(job_id)
                continue
            try:
                for serial, ts, kind, message in job.log:
                    self.store.append_log(job.id, serial, ts, kind, message)
            except DiskFull:
                break
            self._persist(job)
            if job_id in self._unsaved:
                break
        return len(self._unsaved)

    def _fail(self, job: Job, index: int, err: errors.CardumeError) -> None:
        job.op_status[index] = constants.JOB_STATUS_ERROR
        job.op_result[index] = err.to_dict()
        job.op_end_ts[index] = time.time()
        for rest in range(index + 1, len(job.ops)):
            job.op_status[rest] = constants.JOB_STATUS_ERROR
            job.op_result[rest] = errors.ExecError(
                "not run: an earlier opcode of the job failed").to_dict()
        self._finish(job, constants.JOB_STATUS_ERROR)

    def _cancel_rest(self, job: Job, index: int) -> None:
        for rest in range(index, len(job.ops)):
            job.op_status[rest] = constants.JOB_STATUS_CANCELED
            job.op_result[rest] = errors.JobCanceled("job canceled by request").to_dict()
        self._finish(job, constants.JOB_STATUS_CANCELED)

    def _finish(self, job: Job, status: str, result: Any = None) -> None:
        job.status = status
        job.end_ts = time.time()
        if result is not None:
            for index, op_status in enumerate(job.op_status):
                if op_status not in constants.JOBS_FINALIZED:
                    job.op_status[index] = status
                    job.op_result[index] = result
        self._persist(job)
        if job.undo:
            self.undo_pending.add(job.id)
        self._remember(job)
        self.metrics.job_ended(job)
        job.notify()

    def _remember(self, job: Job) -> None:
        """Keep finished jobs in memory for a while so watchers and queries stay cheap."""
        self._jobs[job.id] = job
        self._recent.append(job.id)
        if len(self._recent) > 1000:
            old = self._recent.pop(0)
            stale = self._jobs.get(old)
            if stale is not None and stale.finalized and old not in self._unsaved:
                del self._jobs[old]

    # --- logging from logical units -------------------------------------------------------

    def _append_log(self, job: Job, kind: str, message: str) -> None:
        serial = (job.log[-1][0] + 1) if job.log else 1
        entry = (serial, time.time(), kind, message)
        job.log.append(entry)
        try:
            self.store.append_log(job.id, serial, entry[1], kind, message)
        except DiskFull:
            self._unsaved.add(job.id)  # flush_unsaved() writes the lines it holds

    def note_undo(self, job: Job, entry: dict[str, Any]) -> None:
        """Record, durably, something to undo should the job not get to finish."""
        job.undo.append(entry)
        self._persist(job)

    def set_undo(self, job: Job, entries: list[dict[str, Any]]) -> None:
        """What is left to undo (an empty list: nothing, the work is the cluster's now)."""
        if entries == job.undo:
            return
        job.undo = list(entries)
        self._persist(job)
        if entries and job.finalized:
            self.undo_pending.add(job.id)
        elif not entries:
            self.undo_pending.discard(job.id)

    def feedback(self, job: Job, message: str, kind: str = constants.ELOG_MESSAGE) -> None:
        self._append_log(job, kind, message)
        job.notify()

    # --- queries, waiting, cancelation -------------------------------------------------------

    def load(self, job_id: int) -> Job | None:
        job = self._jobs.get(job_id)
        if job is not None:
            return job
        row = self.store.load(job_id)
        if row is None:
            return None
        return Job.from_data(*row)

    def get(self, job_id: int) -> Job:
        job = self.load(job_id)
        if job is None:
            raise errors.UnknownEntity(f"job {job_id} does not exist", "see 'gnt-job list'")
        return job

    def job_ids(self) -> list[int]:
        return self.store.ids()

    async def wait_for_change(self, job_id: int, prev_status: str | None,
                              prev_log_serial: int, timeout: float) -> dict[str, Any] | None:
        """Return the job's status and new log lines once either changed, or None on timeout."""
        job = self.get(job_id)
        deadline = time.monotonic() + timeout
        while True:
            last_serial = job.log[-1][0] if job.log else 0
            if job.status != prev_status or last_serial > prev_log_serial:
                return {"status": job.status,
                        "log": [list(e) for e in job.log if e[0] > prev_log_serial]}
            if job.finalized:
                return {"status": job.status, "log": []}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(job.changed.wait(), remaining)
            except TimeoutError:
                return None

    def cancel(self, job_id: int) -> tuple[bool, str]:
        job = self.get(job_id)
        if job.finalized:
            return False, f"Job {job_id} is no longer running (status {job.status})"
        if job.status == constants.JOB_STATUS_QUEUED:
            self._cancel_rest(job, 0)
            return True, f"Job {job_id} canceled"
        if job.status == constants.JOB_STATUS_WAITING or self._interruptible(job):
            job.status = constants.JOB_STATUS_CANCELING
            self._persist(job)
            job.notify()
            if job.task is not None:
                job.task.cancel()
            return True, f"Job {job_id} will be canceled"
        return False, f"Job {job_id} is already running and can't be canceled"

    @staticmethod
    def _interruptible(job: Job) -> bool:
        op = job.ops[job.current_op] if 0 <= job.current_op < len(job.ops) else None
        return bool(op is not None and (op.CANCELABLE or getattr(op, "interruptible", False)))

    def archive(self, job_ids: list[int]) -> int:
        finished = [i for i in job_ids if (j := self.load(i)) is not None and j.finalized]
        return self.store.archive(finished)

    def autoarchive(self, age: float) -> int:
        """Archive the jobs that ended more than ``age`` seconds ago (Ganeti: 6 hours)."""
        return self.store.archive(self.store.finished_before(time.time() - age))

    def set_drained(self, drained: bool) -> None:
        self.drained = drained
        self.store.set_meta("drained", "1" if drained else None)

    def stats(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job in self._jobs.values():
            counts[job.status] = counts.get(job.status, 0) + 1
        return counts

    async def shutdown(self) -> None:
        """Stop scheduling; running jobs are interrupted (they end as error at next start)."""
        self._closing = True
        tasks = [j.task for j in self._jobs.values() if j.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
