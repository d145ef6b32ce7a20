"""Ganeti's shapes on the master's socket, for Ganeti's own LUXI clients.

Ganeti's tools that read a cluster over LUXI (htools with ``-L``: hbal, hspace, hinfo, hscan,
hcheck, hroller, hsqueeze) send requests without cardume's ``"version"``. For them:

- ``Query`` takes Ganeti's arguments ``[what, fields, qfilter]`` (no names list), and every
  cell is a ``[status, value]`` pair: 0 normal, 1 unknown field, 2 no data (the node did not
  answer), 3 unavailable, 4 node offline. A field cardume lacks is reported as Ganeti
  reports one it lacks (kind ``unknown``, status 1 in every row), not refused.
- ``QueryClusterInfo``'s ``ipolicy`` is the whole policy, filled with the defaults, as
  Ganeti's cluster always holds one.
- A failed request's result is ``[error type, [message, code]]``.

cardume's own clients (master.client, rapi.master_link) send ``"version": 1`` and keep
cardume's shapes: plain cells with marks, which the CLI and REST daemon format.
"""

from __future__ import annotations

from typing import Any

from cardume import errors
from cardume.master.client import PROTOCOL_VERSION

CARDUME_VERSION = PROTOCOL_VERSION  # (master.client's, which rapi's link sends too)

# Ganeti's result statuses of a query cell
RS_NORMAL = 0
RS_UNKNOWN = 1
_MARK_STATUS = {"nodata": 2, "unavail": 3, "offline": 4}

# Ganeti's exception names the error codes travel under; its Haskell clients decode these
_ERROR_TYPES = {
    "wrong_input": "OpPrereqError",
    "wrong_state": "OpPrereqError",
    "unknown_entity": "OpPrereqError",
    "already_exists": "OpPrereqError",
    "insufficient_resources": "OpPrereqError",
    "resolver_error": "OpPrereqError",
    "environment_error": "OpPrereqError",
}


def is_ganeti_request(request: dict[str, Any]) -> bool:
    """A request from one of Ganeti's clients (no cardume version in it)."""
    return request.get("version") != CARDUME_VERSION


def cell(value: Any) -> list[Any]:
    """One query cell as Ganeti's ``[status, value]``: a mark becomes its status."""
    if isinstance(value, dict) and len(value) == 1 and "_rs" in value:
        return [_MARK_STATUS.get(value["_rs"], RS_UNKNOWN), None]
    return [RS_NORMAL, value]


def unknown_field(name: str) -> dict[str, str]:
    """The definition Ganeti gives a field it does not have."""
    return {"name": name, "title": name, "kind": "unknown", "doc": f"Unknown field '{name}'"}


def query_result(fields: list[str], known: set[str],
                 answer: dict[str, Any]) -> dict[str, Any]:
    """Ganeti's Query result for ``fields``, from cardume's ``answer`` for those of them in
    ``known`` (in the same order): unknown fields get status 1 in every row."""
    definitions = iter(answer["fields"])
    shaped = [next(definitions) if name in known else unknown_field(name) for name in fields]
    where = [name in known for name in fields]
    rows = []
    for row in answer["data"]:
        values = iter(row)
        rows.append([cell(next(values)) if is_known else [RS_UNKNOWN, None]
                     for is_known in where])
    return {"fields": shaped, "data": rows}


def cluster_info(data: dict[str, Any]) -> dict[str, Any]:
    """QueryClusterInfo as Ganeti's clients read it: the policy whole."""
    return {**data, "ipolicy": data.get("ipolicy_filled") or data.get("ipolicy") or {}}


def error(err: errors.CardumeError) -> list[Any]:
    """A failure as Ganeti encodes one: the exception's name and its arguments."""
    kind = _ERROR_TYPES.get(err.code)
    if kind is None:
        return ["OpExecError", [str(err)]]
    return [kind, [str(err), err.code]]
