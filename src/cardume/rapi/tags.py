"""The .../tags resources of the cluster, instances, nodes and groups: GET lists the tags,
PUT adds and DELETE removes those named by the ``tag=`` query arguments (a job each)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cardume.rapi import bodies, query
from cardume.rapi.base import Call, Handler, RapiError


def getter(read: Callable[[Call], Awaitable[list[str]]]) -> Handler:
    async def handler(call: Call) -> Any:
        return await read(call)
    return handler


def object_getter(resource: str, param: str) -> Handler:
    """GET: the tags of the object the path names (``param``), from the master's query."""
    async def read(call: Call) -> list[str]:
        row = await query.one_row(call.master, resource, ["tags"], call.params[param])
        return list(row["tags"] or [])
    return getter(read)


def _tags(call: Call) -> list[str]:
    values = call.args.get("tag") or []
    if not values:
        raise RapiError(400, "no tags given: name them with tag=TAG query arguments")
    return list(values)


def _change(op_id: str, kind: str, param: str | None) -> Handler:
    async def handler(call: Call) -> Any:
        name = call.params[param] if param is not None else None
        return await bodies.submit_op(call, op_id, static=bodies.strip_none(
            {"kind": kind, "name": name, "tags": _tags(call)}))
    return handler


def setter(kind: str, param: str | None) -> Handler:
    return _change("OP_TAGS_SET", kind, param)


def deleter(kind: str, param: str | None) -> Handler:
    return _change("OP_TAGS_DEL", kind, param)
