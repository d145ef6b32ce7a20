"""The metrics page's text: what prometheus_client's parser reads back from it (label values
with quotes, backslashes and newlines; histogram buckets), and the job queue's counters."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from cardume.jobs.metrics import BUCKETS, JobMetrics
from cardume.master.metrics import Family


def parsed(family: Family) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value)
            for f in text_string_to_metric_families(family.text() + "\n") for s in f.samples]


def test_label_values_come_back_as_they_were() -> None:
    family = Family("cardume_instance_status", "gauge", "status")
    odd = 'vm "quoted" \\ back\nslash'
    family.add(1, instance=odd, status="running")
    family.add(0.25, instance="plain", status="ADMIN_down")
    assert parsed(family) == [("cardume_instance_status", {"instance": odd, "status": "running"},
                               1.0),
                              ("cardume_instance_status",
                               {"instance": "plain", "status": "ADMIN_down"}, 0.25)]


def test_job_durations_are_cumulative_histograms_per_operation() -> None:
    metrics = JobMetrics()

    def job(status: str, *runs: tuple[str, float | None]) -> SimpleNamespace:
        ops = [SimpleNamespace(OP_ID=op_id) for op_id, _ in runs]
        starts = [0.0 if took is not None else None for _, took in runs]
        ends = [took for _, took in runs]
        return SimpleNamespace(status=status, ops=ops, op_start_ts=starts, op_end_ts=ends)

    metrics.job_ended(job("success", ("OP_TEST_DELAY", 0.05), ("OP_TEST_DELAY", 7.0)))
    metrics.job_ended(job("error", ("OP_INSTANCE_CREATE", 4000.0), ("OP_TEST_DELAY", None)))
    assert metrics.ended == {"success": 1, "error": 1}
    delay = metrics.durations["OP_TEST_DELAY"]
    assert delay.count == 2 and delay.total == 7.05  # the one that never ran is not counted
    cumulative = dict(delay.cumulative())
    assert cumulative[0.1] == 1 and cumulative[5.0] == 1 and cumulative[10.0] == 2
    create = metrics.durations["OP_INSTANCE_CREATE"]
    assert create.cumulative()[-1] == (BUCKETS[-1], 0) and create.count == 1  # only +Inf
