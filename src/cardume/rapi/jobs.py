"""/2/jobs, /2/jobs/ID (GET, DELETE = cancel) and /2/jobs/ID/wait (long poll).

Job ids are the master's: its queue is replicated to the master candidates, so every id a
client was given stays readable here after a master failover. Replies take Ganeti's shapes:
times as ``[seconds, microseconds]``, the log per opcode as ``[serial, time, type,
message]``, and a failed opcode's result as ``[error class, [message, code]]``.
"""

from __future__ import annotations

from typing import Any

from cardume import constants
from cardume.rapi import query
from cardume.rapi.base import Call, RapiError

J_FIELDS_BULK = ["id", "ops", "status", "summary", "opstatus", "received_ts", "start_ts",
                 "end_ts"]
J_FIELDS = [*J_FIELDS_BULK, "oplog", "opresult"]
"""Ganeti's job keys: a bulk listing's, and one job's."""

WAIT_TIMEOUT = 10.0
"""How long one /wait request waits for a change before answering null (Ganeti's)."""

_TS_FIELDS = {"received_ts", "start_ts", "end_ts"}
_TS_LIST_FIELDS = {"opstart", "opend"}

# cardume's error classes as Ganeti's job results name them; what is not listed failed
# while executing (OpExecError)
_PREREQ = {"WrongInput", "WrongState", "UnknownEntity", "AlreadyExists",
           "InsufficientResources", "ResolverError"}


def ganeti_ts(value: Any) -> Any:
    """A time as Ganeti gives it, ``[seconds, microseconds]`` (already a pair: as is)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    seconds = int(value)
    return [seconds, int(round((value - seconds) * 1_000_000))]


def _log_entry(entry: Any) -> Any:
    if isinstance(entry, list) and len(entry) == 4:
        return [entry[0], ganeti_ts(entry[1]), entry[2], entry[3]]
    return entry


def _is_entry(item: Any) -> bool:
    return isinstance(item, list) and bool(item) and isinstance(item[0], int)


def per_opcode_log(log: Any, starts: Any, count: int) -> list[list[Any]]:
    """The log split by opcode, as Ganeti's ``oplog``; a flat log (one list of entries)
    goes to the opcode running when each line was written (the last one started)."""
    if not isinstance(log, list):
        return [[] for _ in range(count)]
    if log and not _is_entry(log[0]):  # already one list per opcode
        return [[_log_entry(e) for e in op_log] for op_log in log]
    result: list[list[Any]] = [[] for _ in range(max(count, 1))]
    starts = starts if isinstance(starts, list) else []
    for entry in log:
        stamp = entry[1] if _is_entry(entry) and len(entry) > 1 else None
        index = 0
        for i, start in enumerate(starts):
            if isinstance(start, int | float) and isinstance(stamp, int | float) \
                    and start <= stamp:
                index = i
        result[min(index, len(result) - 1)].append(_log_entry(entry))
    return result[:count] if count else result


def ganeti_result(result: Any, status: Any) -> Any:
    """A failed opcode's result as Ganeti encodes an error; other results as they are."""
    if status != constants.JOB_STATUS_ERROR or not isinstance(result, dict) \
            or "message" not in result:
        return result
    message = str(result.get("message"))
    if result.get("hint"):
        message += f" ({result['hint']})"
    if result.get("type") in _PREREQ:
        return ["OpPrereqError", [message, result.get("code")]]
    return ["OpExecError", [message]]


def shape(row: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One job's values in Ganeti's forms (``extra``: fields read only for the conversion,
    such as opstart for splitting a flat log)."""
    extra = extra or {}
    out = dict(row)
    for key in _TS_FIELDS & out.keys():
        out[key] = ganeti_ts(out[key])
    for key in _TS_LIST_FIELDS & out.keys():
        if isinstance(out[key], list):
            out[key] = [ganeti_ts(v) for v in out[key]]
    count = len(row.get("ops") or extra.get("ops") or []) or \
        len(row.get("opstatus") or extra.get("opstatus") or [])
    if "oplog" in out:
        out["oplog"] = per_opcode_log(out["oplog"], extra.get("opstart", row.get("opstart")),
                                      count)
    if "opresult" in out and isinstance(out["opresult"], list):
        statuses = row.get("opstatus") or extra.get("opstatus") or []
        out["opresult"] = [ganeti_result(r, statuses[i] if i < len(statuses) else None)
                           for i, r in enumerate(out["opresult"])]
    return out


def _job_id(call: Call) -> str:
    value = call.params["job_id"]
    if not (value.isascii() and value.isdigit()):
        raise RapiError(400, f"invalid job id {value!r}: expected a number")
    return value


_HELPERS = ["ops", "opstatus", "opstart"]


async def _job(call: Call, keys: list[str], job_id: str) -> dict[str, Any]:
    helpers = [k for k in _HELPERS if k not in keys]
    row = await query.one_row(call.master, "job", [*keys, *helpers], job_id)
    extra = {k: row.pop(k) for k in helpers}
    return shape(row, extra)


async def list_jobs(call: Call) -> Any:
    if call.flag("bulk"):  # (reshaped: a job's bulk row nests its opcodes' results)
        rows = await query.rows(call.master, "job", J_FIELDS_BULK)
        return [shape(row) for row in rows]
    return await query.listing(call, "job", J_FIELDS_BULK, "/2/jobs")


async def get_job(call: Call) -> Any:
    return await _job(call, J_FIELDS, _job_id(call))


async def cancel(call: Call) -> Any:
    return await call.master.call("CancelJob", int(_job_id(call)))


def _wait_body(call: Call) -> tuple[list[str], list[Any] | None, int]:
    body = call.body if call.body is not None else {}
    if not isinstance(body, dict):
        raise RapiError(400, "Invalid body: expected a JSON object with fields, "
                             "previous_job_info and previous_log_serial")
    fields = body.get("fields")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise RapiError(400, f"The 'fields' parameter should be a list of field names, "
                             f"not {fields!r}")
    previous = body.get("previous_job_info")
    if previous is not None and not isinstance(previous, list):
        raise RapiError(400, f"The 'previous_job_info' parameter should be a list, "
                             f"not {previous!r}")
    serial = body.get("previous_log_serial")
    if serial is None:
        serial = 0
    if isinstance(serial, bool) or not isinstance(serial, int):
        raise RapiError(400, f"The 'previous_log_serial' parameter should be a number, "
                             f"not {serial!r}")
    return fields, previous, serial


def _new_entries(row: dict[str, Any], serial: int) -> list[Any]:
    return [entry for op_log in row["oplog"] for entry in op_log
            if _is_entry(entry) and entry[0] > serial]


async def wait(call: Call) -> Any:
    """Ganeti's WaitForJobChange: ``{job_info, log_entries}`` as soon as the job's
    ``fields`` differ from ``previous_job_info``, a log line newer than
    ``previous_log_serial`` exists or the job has ended; null after WAIT_TIMEOUT
    seconds without a change."""
    job_id = _job_id(call)
    fields, previous, serial = _wait_body(call)
    keys = [*fields, *(k for k in ("status", "oplog") if k not in fields)]
    row = await _job(call, keys, job_id)
    entries = _new_entries(row, serial)
    info = [row[f] for f in fields]
    if previous is None or info != previous or entries or \
            row["status"] in constants.JOBS_FINALIZED:
        return {"job_info": info, "log_entries": entries}
    change = await call.master.call("WaitForJobChange", int(job_id), row["status"], serial,
                                    WAIT_TIMEOUT)
    if change == "nochange" or change is None:
        return None
    row = await _job(call, keys, job_id)
    return {"job_info": [row[f] for f in fields],
            "log_entries": _new_entries(row, serial)}
