"""What the job queue counts for the metrics page: jobs ended by status, and how long each
operation took, as cumulative histograms (Prometheus' shape: counts only go up, from the
master daemon's start).

No job id is kept: the label sets stay bounded (statuses and operation names).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class EndedJob(Protocol):
    """What is read of a job that ended (jobs.queue.Job has it)."""

    @property
    def status(self) -> str: ...
    @property
    def ops(self) -> Sequence[Any]: ...
    @property
    def op_start_ts(self) -> Sequence[float | None]: ...
    @property
    def op_end_ts(self) -> Sequence[float | None]: ...

BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
           3600.0)
"""Upper bounds (seconds) of the duration histogram: from a query-like opcode to an OS
install or a DRBD resync that waits for sync."""


class Histogram:
    __slots__ = ("counts", "total", "count")

    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)  # per bucket (not cumulative; summed when shown)
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        for index, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.counts[index] += 1
                break
        self.total += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or under it) per bucket; +Inf is ``count``."""
        running, result = 0, []
        for bound, count in zip(BUCKETS, self.counts, strict=True):
            running += count
            result.append((bound, running))
        return result


class JobMetrics:
    def __init__(self) -> None:
        self.ended: dict[str, int] = {}          # job status -> jobs that ended so
        self.durations: dict[str, Histogram] = {}  # OP_ID -> how long its runs took

    def job_ended(self, job: EndedJob) -> None:
        self.ended[job.status] = self.ended.get(job.status, 0) + 1
        for op, start, end in zip(job.ops, job.op_start_ts, job.op_end_ts, strict=True):
            if start is None or end is None:
                continue  # never ran (canceled, or an earlier opcode failed)
            found = self.durations.get(op.OP_ID)
            if found is None:
                found = self.durations[op.OP_ID] = Histogram()
            found.observe(max(0.0, end - start))
