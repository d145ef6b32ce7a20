"""Recent jobs without reading the whole queue.

The master answers a job Query by loading each job it names (all of them when none is
named): at 10,000 jobs that is most of a second. Job ids are given in order without gaps
(a refused submission takes no number), so the console finds the newest id by probing
(a few one-job queries), reads jobs in batches of ids going back from there, and keeps the
light rows (status, summary, times) of finished jobs, which never change again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cardume import constants, errors
from cardume.rapi.base import MasterLink
from cardume.rapi.ui import data

FIELDS = ["id", "status", "summary", "received_ts", "end_ts"]
BATCH = 250
MAX_CACHED = 50000


class JobIndex:
    def __init__(self, master: MasterLink) -> None:
        self.master = master
        self.top = 0          # the highest id known to exist
        self._done: dict[int, dict[str, Any]] = {}

    async def _exists(self, job_id: int) -> bool:
        try:
            return bool(await data.rows(self.master, "job", ["id"], [str(job_id)]))
        except errors.UnknownEntity:
            return False

    async def newest(self) -> int:
        """The newest job's id (0: none), found from the last one known by doubling steps,
        then halving."""
        low = self.top if self.top and await self._exists(self.top) else 0
        step = 1
        while await self._exists(low + step):
            low += step
            step *= 2
        high = low + step  # does not exist; everything up to low does
        while high - low > 1:
            middle = (low + high) // 2
            if await self._exists(middle):
                low = middle
            else:
                high = middle
        self.top = low
        return low

    async def rows(self, ids: list[int]) -> list[dict[str, Any]]:
        """The light rows of those of ``ids`` that exist, in the order given."""
        wanted = [i for i in ids if i not in self._done]
        fresh: dict[int, dict[str, Any]] = {}
        if wanted:
            try:
                found = await data.rows(self.master, "job", FIELDS, [str(i) for i in wanted])
            except errors.UnknownEntity:  # archived away meanwhile: one by one
                found = []
                for job_id in wanted:
                    try:
                        found += await data.rows(self.master, "job", FIELDS, [str(job_id)])
                    except errors.UnknownEntity:
                        continue
            for row in found:
                job_id = int(row["id"])
                fresh[job_id] = row
                if row["status"] in constants.JOBS_FINALIZED:
                    self._remember(job_id, row)
        result = []
        for job_id in ids:
            known = self._done.get(job_id) or fresh.get(job_id)
            if known is not None:
                result.append(known)
        return result

    def _remember(self, job_id: int, row: dict[str, Any]) -> None:
        if len(self._done) >= MAX_CACHED:
            for old in sorted(self._done)[:MAX_CACHED // 10]:
                del self._done[old]
        self._done[job_id] = row

    async def page(self, start: int, count: int) -> list[dict[str, Any]]:
        """Jobs ``start`` down to ``start - count + 1`` (newest first)."""
        ids = list(range(start, max(0, start - count), -1))
        return await self.rows(ids)

    async def find(self, match: Callable[[dict[str, Any]], bool], limit: int,
                   count: int = 1) -> list[dict[str, Any]]:
        """Up to ``count`` of the newest jobs (looking back ``limit`` ids at most) that
        ``match``, newest first."""
        top = await self.newest()
        found: list[dict[str, Any]] = []
        start = top
        while start > 0 and top - start < limit and len(found) < count:
            batch = await self.page(start, min(BATCH, limit - (top - start)))
            found += [row for row in batch if match(row)]
            start -= BATCH
        return found[:count]
