"""The job field table."""

from __future__ import annotations

from cardume.master.fields import QField, ts


def job_fields() -> list[QField]:
    return [
        QField("id", "ID", "number", "job ID", lambda q, j: j.id),
        QField("status", "Status", "text", "job status", lambda q, j: j.status),
        QField("priority", "Priority", "number", "current job priority",
               lambda q, j: j.priority),
        QField("summary", "Summary", "list", "summary of the opcodes",
               lambda q, j: j.summary()),
        QField("received_ts", "Received", "timestamp", "time the job was received",
               lambda q, j: ts(j.received_ts)),
        QField("start_ts", "Start", "timestamp", "time the job started",
               lambda q, j: ts(j.start_ts)),
        QField("end_ts", "End", "timestamp", "time the job ended", lambda q, j: ts(j.end_ts)),
        QField("ops", "OpCodes", "other", "the opcodes",
               lambda q, j: [op.to_dict(redact=True) for op in j.ops]),
        QField("opresult", "OpCode_result", "other", "results of the opcodes",
               lambda q, j: j.op_result),
        QField("opstatus", "OpCode_status", "list", "statuses of the opcodes",
               lambda q, j: j.op_status),
        QField("oplog", "OpCode_log", "other", "log lines of the job",
               lambda q, j: [list(e) for e in j.log]),
        QField("opstart", "OpCode_start", "other", "start times of the opcodes",
               lambda q, j: j.op_start_ts),
        QField("opend", "OpCode_end", "other", "end times of the opcodes",
               lambda q, j: j.op_end_ts),
        QField("oppriority", "OpCode_prio", "list", "priorities of the opcodes",
               lambda q, j: [op.priority for op in j.ops]),
        QField("waiting_for", "WaitingFor", "text",
               "the lock a waiting job waits for, and who holds it",
               lambda q, j: (q.locks.waiting_for(j.id) or "-")
               if j.status == "waiting" else "-"),
    ]

