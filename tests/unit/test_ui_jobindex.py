"""Recent jobs found by probing ids and reading batches, never the whole queue."""

from __future__ import annotations

import asyncio
from typing import Any

from cardume import errors
from cardume.rapi.ui.jobindex import JobIndex


class Queue:
    """A master whose job Query loads only the jobs named (unknown: UnknownEntity)."""

    def __init__(self, count: int) -> None:
        self.jobs = {i: {"id": i, "status": "success", "summary": ["TEST_DELAY"],
                         "received_ts": i, "end_ts": i} for i in range(1, count + 1)}
        self.loaded = 0

    async def call(self, method: str, *args: Any) -> Any:
        assert method == "Query" and args[0] == "job"
        names = args[2]
        assert names, "the whole queue was asked for"
        rows = []
        for name in names:
            job = self.jobs.get(int(name))
            if job is None:
                raise errors.UnknownEntity(f"job {name} does not exist")
            rows.append([job[f] for f in args[1]])
        self.loaded += len(names)
        return {"data": rows}

    async def call_raw(self, method: str, *args: Any) -> bytes:
        raise NotImplementedError


def test_newest_by_probing() -> None:
    for count in (0, 1, 2, 7, 1000, 12345):
        queue = Queue(count)
        index = JobIndex(queue)
        assert asyncio.run(index.newest()) == count
        assert queue.loaded < 40
    queue = Queue(500)
    index = JobIndex(queue)
    asyncio.run(index.newest())
    for i in range(501, 520):
        queue.jobs[i] = {**queue.jobs[1], "id": i}
    assert asyncio.run(index.newest()) == 519


def test_find_reads_back_in_batches_and_keeps_finished_jobs() -> None:
    queue = Queue(10000)
    queue.jobs[9000]["summary"] = ["CLUSTER_VERIFY"]
    queue.jobs[9999]["status"] = "running"
    index = JobIndex(queue)
    found = asyncio.run(index.find(lambda r: "CLUSTER_VERIFY" in r["summary"], 5000))
    assert [r["id"] for r in found] == [9000]
    first = queue.loaded
    assert first < 1300  # five batches of 250 and the probes
    asyncio.run(index.find(lambda r: "CLUSTER_VERIFY" in r["summary"], 5000))
    assert queue.loaded - first < 40  # probes and the one running job only
    assert asyncio.run(index.find(lambda r: False, 300)) == []


def test_a_page_skips_jobs_gone_meanwhile() -> None:
    queue = Queue(50)
    del queue.jobs[45]
    rows = asyncio.run(JobIndex(queue).page(50, 10))
    assert [r["id"] for r in rows] == [50, 49, 48, 47, 46, 44, 43, 42, 41]
