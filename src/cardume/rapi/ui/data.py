"""The console's reads from the master: Query rows as dicts, jobs found by their summary."""

from __future__ import annotations

from typing import Any

from cardume.rapi.base import MasterLink
from cardume.rapi.query import plain


async def rows(master: MasterLink, resource: str, fields: list[str],
               names: list[str] | None = None, qfilter: Any = None) -> list[dict[str, Any]]:
    """One dict per object (a value the master could not give, such as a node's free memory
    while it is offline, is None). Column-wise: only ``fields`` are computed."""
    args: list[Any] = [resource, fields, names or []]
    if qfilter is not None:
        args.append(qfilter)
    reply = await master.call("Query", *args)
    return [{f: plain(v) for f, v in zip(fields, row, strict=True)} for row in reply["data"]]


def log_lines(oplog: Any) -> list[tuple[int, float, str, str]]:
    """A job's log, flat: (serial, time, type, message), oldest first."""
    entries: list[tuple[int, float, str, str]] = []

    def walk(items: Any) -> None:
        if not isinstance(items, list):
            return
        for item in items:
            if isinstance(item, list) and len(item) == 4 and isinstance(item[0], int):
                stamp = item[1]
                if isinstance(stamp, list) and stamp:  # Ganeti's [seconds, micros]
                    stamp = stamp[0] + (stamp[1] if len(stamp) > 1 else 0) / 1e6
                entries.append((item[0], float(stamp) if isinstance(stamp, int | float)
                                else 0.0, str(item[2]), _message(item[3])))
            elif isinstance(item, list):
                walk(item)
    walk(oplog)
    entries.sort(key=lambda e: e[0])
    return entries


def _message(value: Any) -> str:
    if isinstance(value, str):
        return value
    import json
    return json.dumps(value)
