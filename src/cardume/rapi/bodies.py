"""Request bodies to opcodes, through the opcode table, and the job a mutation submits.

A body is checked by the same table (``cardume.opcodes``) that checks a command line: its
keys must be parameters of the opcode (after Ganeti's RAPI renames, e.g. ``name`` ->
``instance_name``), and their values of the declared types. A key the opcode does not have,
or a value of the wrong type, is a 400 naming it, as Ganeti's "Invalid body parameters".
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from cardume import errors, opcodes
from cardume.rapi.base import Call, RapiError

REASON_SOURCE = "gnt:library:rlib2"
"""The reason trail's source of an opcode submitted through the REST API (Ganeti's)."""


def body_dict(call: Call) -> dict[str, Any]:
    """The body as a JSON object (no body: empty); anything else is a 400."""
    if call.body is None:
        return {}
    if not isinstance(call.body, dict):
        raise RapiError(400, f"Invalid body: expected a JSON object, not "
                             f"{type(call.body).__name__}")
    return dict(call.body)


def build_op(op_id: str, body: Mapping[str, Any], static: Mapping[str, Any],
             rename: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The opcode ``op_id`` from ``body`` (renamed keys first) and the values the path and
    query fix (``static``), checked by the opcode table; returned as the dict a job holds."""
    cls = opcodes.REGISTRY[op_id]
    params: dict[str, Any] = {}
    for key, value in body.items():
        name = (rename or {}).get(key, key)
        if name in static:
            raise RapiError(400, f"Invalid body parameters: '{key}' is given by the path or "
                                 "a query argument and may not be in the body")
        if name in params:
            raise RapiError(400, f"Invalid body parameters: '{key}' given twice (under "
                                 f"its RAPI and its opcode name '{name}')")
        if name == "OP_ID" or name not in cls._ALL:
            raise RapiError(400, f"Invalid body parameters: {op_id} has no parameter "
                                 f"'{key}'")
        params[name] = value
    params.update(static)
    try:
        op = cls(**params)
    except errors.WrongInput as err:
        raise RapiError(400, f"Invalid body parameters: {err.message}") from None
    return op.to_dict()


def job_common(call: Call) -> dict[str, Any]:
    """What every opcode of a request carries: ``dry-run=1`` and the reason trail (the
    ``reason=`` argument, as Ganeti records it)."""
    return {"dry_run": call.flag("dry-run"),
            "reason": [[REASON_SOURCE, call.arg("reason") or "", time.time_ns()]]}


async def submit(call: Call, ops: list[dict[str, Any]]) -> int:
    """Submit one job of ``ops`` (each given the request's dry-run and reason); its id."""
    common = job_common(call)
    job_id = await call.master.call("SubmitJob", [{**op, **common} for op in ops])
    return int(job_id)


async def submit_op(call: Call, op_id: str, body: Mapping[str, Any] | None = None,
                    static: Mapping[str, Any] | None = None,
                    rename: Mapping[str, str] | None = None) -> int:
    """One opcode, built from ``body`` and ``static``, as one job: the job id."""
    return await submit(call, [build_op(op_id, body or {}, static or {}, rename)])


def bool_arg(call: Call, name: str) -> bool | None:
    """A 0/1 query argument that is left to the opcode's default when absent."""
    return call.flag(name) if call.args.get(name) else None


def int_arg(call: Call, name: str) -> int | None:
    value = call.arg(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()):
        raise RapiError(400, f"query argument '{name}' must be a non-negative integer, "
                             f"not {value!r}")
    return int(value)


def not_implemented(what: str) -> Any:
    """A handler answering 501 for a resource cardume does not have yet, naming it."""
    async def handler(call: Call) -> Any:
        raise RapiError(501, f"{call.method} {call.path}: {what}")
    return handler


def strip_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
