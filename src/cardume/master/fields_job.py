"""The job field table: Ganeti 3.0's names, titles and kinds (``gnt-job list-fields``), and
cardume's ``waiting_for``.

Values take Ganeti's shapes, so a RAPI client reads a job as it would from Ganeti: a time is
a ``[seconds, microseconds]`` pair, and the log is split per opcode, each line
``[serial, [seconds, microseconds], type, message]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cardume.master.fields import QField

if TYPE_CHECKING:
    from cardume.master.view import MasterView


class JobQuery:
    """Context of a job query: the lock manager (waiting_for) and, once asked, which jobs
    are archived (one look at the store per query, not per row)."""

    def __init__(self, daemon: MasterView) -> None:
        self.locks = daemon.locks
        self._queue = daemon.queue
        self._archived: set[int] | None = None

    def archived(self, job_id: int) -> bool:
        if self._archived is None:
            store = self._queue.store
            self._archived = set(store.ids(include_archived=True)) - set(store.ids())
        return job_id in self._archived


def pair(value: float | None) -> list[int] | None:
    """A time as Ganeti gives it: [seconds, microseconds] (None stays None)."""
    if value is None:
        return None
    seconds, micro = divmod(round(value * 1_000_000), 1_000_000)
    return [seconds, micro]


def per_opcode_log(job: Any) -> list[list[list[Any]]]:
    """The job's log lines, each under the opcode that was running when it was written
    (cardume logs per job; an opcode runs from its start time to the next one's)."""
    starts = job.op_start_ts
    logs: list[list[list[Any]]] = [[] for _ in job.ops]
    for serial, stamp, kind, message in job.log:
        index = 0
        for position, start in enumerate(starts):
            if start is not None and start <= stamp:
                index = position
        if logs:
            logs[index].append([serial, pair(stamp), kind, message])
    return logs


def job_fields() -> list[QField]:
    return [
        QField("id", "ID", "number", "the job's number", lambda q, j: j.id),
        QField("status", "Status", "text",
               "queued, waiting, running, canceling, canceled, success or error",
               lambda q, j: j.status),
        QField("priority", "Priority", "number",
               "priority the job runs at now (-20 first, 19 last)", lambda q, j: j.priority),
        QField("archived", "Archived", "bool", "true once the job is archived",
               lambda q, j: q.archived(j.id)),
        QField("summary", "Summary", "other", "one short line per opcode",
               lambda q, j: j.summary()),
        QField("received_ts", "Received", "other",
               "when the job was submitted, as [seconds, microseconds]",
               lambda q, j: pair(j.received_ts)),
        QField("start_ts", "Start", "other",
               "when the job started running, as [seconds, microseconds]",
               lambda q, j: pair(j.start_ts)),
        QField("end_ts", "End", "other", "when the job ended, as [seconds, microseconds]",
               lambda q, j: pair(j.end_ts)),
        QField("ops", "OpCodes", "other", "the job's opcodes with their parameters",
               lambda q, j: [op.to_dict(redact=True) for op in j.ops]),
        QField("opresult", "OpCode_result", "other", "what each opcode returned",
               lambda q, j: j.op_result),
        QField("opstatus", "OpCode_status", "other", "the status of each opcode",
               lambda q, j: j.op_status),
        QField("oplog", "OpCode_log", "other", "the log lines of each opcode",
               lambda q, j: per_opcode_log(j)),
        QField("opstart", "OpCode_start", "other",
               "when each opcode started (before taking its locks)",
               lambda q, j: [pair(t) for t in j.op_start_ts]),
        # cardume takes an opcode's locks inside its run and records no separate time for
        # it, so execution is said to start when the opcode does
        QField("opexec", "OpCode_exec", "other",
               "when each opcode began executing (its locks taken)",
               lambda q, j: [pair(t) for t in j.op_start_ts]),
        QField("opend", "OpCode_end", "other", "when each opcode ended",
               lambda q, j: [pair(t) for t in j.op_end_ts]),
        QField("oppriority", "OpCode_prio", "other", "the priority of each opcode",
               lambda q, j: [op.priority for op in j.ops]),
        QField("waiting_for", "WaitingFor", "text",
               "the lock a waiting job waits for, and who holds it",
               lambda q, j: (q.locks.waiting_for(j.id) or "-")
               if j.status == "waiting" else "-"),
    ]
