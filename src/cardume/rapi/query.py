"""/2/query/RESOURCE and its /fields, and the rows the bulk listings are made of.

The master answers a query with cells that are values or marks (``{"_rs": "nodata"}`` ...);
Ganeti's /2/query answers each cell as ``[status, value]`` (0 normal, 1 unknown field,
2 no data, 3 unavailable, 4 offline), and its bulk listings give a missing value as null.
The bulk key sets are Ganeti's: a key the master's field table does not have yet is asked
for nothing and answered null (``available_fields`` learns which it has).
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from cardume.rapi.base import Call, EncodedJson, MasterLink, RapiError

RS_NORMAL, RS_UNKNOWN, RS_NODATA, RS_UNAVAIL, RS_OFFLINE = 0, 1, 2, 3, 4
_MARKS = {"nodata": RS_NODATA, "unavail": RS_UNAVAIL, "offline": RS_OFFLINE}

CARDUME_RESOURCES = ("instance", "node", "group", "job")
"""What the master's Query answers."""
GANETI_ONLY_RESOURCES = ("cluster", "network", "lock", "export", "extstorage", "filter",
                         "os")
"""What Ganeti's /2/query answers and cardume not yet (501, naming it)."""

_FIELDS_TTL = 30.0
_field_cache: weakref.WeakKeyDictionary[MasterLink, dict[str, tuple[float, frozenset[str]]]] = \
    weakref.WeakKeyDictionary()


def mark_status(value: Any) -> int:
    """The result status of one cell from the master."""
    if isinstance(value, dict) and len(value) == 1 and "_rs" in value:
        return _MARKS.get(str(value["_rs"]), RS_NODATA)
    return RS_NORMAL


def plain(value: Any) -> Any:
    """A cell as a bulk listing gives it: a mark is null."""
    return None if mark_status(value) else value


async def available_fields(master: MasterLink, resource: str) -> frozenset[str]:
    """The field names the master's table has for ``resource`` (asked again every
    ``_FIELDS_TTL`` seconds: the table only changes with the master's software)."""
    known = _field_cache.setdefault(master, {})
    cached = known.get(resource)
    now = time.monotonic()
    if cached is not None and now - cached[0] < _FIELDS_TTL:
        return cached[1]
    reply = await master.call("QueryFields", resource, None)
    names = frozenset(str(f["name"]) for f in reply["fields"])
    known[resource] = (now, names)
    return names


async def bulk(master: MasterLink, resource: str, keys: list[str]) -> EncodedJson:
    """Every object as a dict with exactly ``keys`` (marks and fields the master lacks are
    null), encoded by the master and passed on as it is (master/bulk.py)."""
    return EncodedJson(await master.call_raw("QueryBulk", resource, keys))


async def listing(call: Call, resource: str, keys: list[str], uri: str) -> Any:
    """A collection's GET: with ``bulk=1`` every object with exactly ``keys``, else each
    object's id and its URI (``uri`` is the collection's path, /2/instances ...)."""
    if call.flag("bulk"):
        return await bulk(call.master, resource, keys)
    key = "id" if resource == "job" else "name"
    reply = await call.master.call("Query", resource, [key], [])
    return [{"id": row[0], "uri": f"{uri}/{row[0]}"} for row in reply["data"]]


async def rows(master: MasterLink, resource: str, keys: list[str],
               names: list[str] | None = None) -> list[dict[str, Any]]:
    """One dict per object with exactly ``keys``: the fields the master has, marks as
    null, the others null."""
    have = await available_fields(master, resource)
    asked = [k for k in keys if k in have]
    reply = await master.call("Query", resource, asked, names or [])
    result = []
    for row in reply["data"]:
        values = dict(zip(asked, row, strict=True))
        result.append({k: plain(values.get(k)) for k in keys})
    return result


async def one_row(master: MasterLink, resource: str, keys: list[str],
                  name: str) -> dict[str, Any]:
    found = await rows(master, resource, keys, [name])
    if not found:
        raise RapiError(404, f"{resource} '{name}' not found")
    return found[0]


def _resource(call: Call) -> str:
    what = call.params["resource"]
    if what in GANETI_ONLY_RESOURCES:
        raise RapiError(501, f"query resource '{what}' is not available in cardume yet "
                             f"(it has: {', '.join(CARDUME_RESOURCES)})")
    if what not in CARDUME_RESOURCES:
        raise RapiError(404, f"unknown query resource '{what}' "
                             f"(known: {', '.join(CARDUME_RESOURCES)})")
    return what


def _field_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [f for f in value.split(",") if f]
    if not isinstance(value, list) or not value or \
            not all(isinstance(f, str) and f for f in value):
        raise RapiError(400, f"{where} must name at least one field (a list of names), "
                             f"not {value!r}")
    return value


def _unknown_definition(name: str) -> dict[str, str]:
    return {"name": name, "title": name, "kind": "unknown",
            "doc": f"Unknown field '{name}'"}


async def run(master: MasterLink, what: str, fields: list[str],
              qfilter: Any = None) -> dict[str, Any]:
    """Ganeti's query reply: a field unknown to the table is defined as ``unknown`` and
    each of its cells is ``[1, null]``, as Ganeti answers it."""
    have = await available_fields(master, what)
    known = [f for f in fields if f in have]
    if known:
        reply = await master.call("Query", what, known, [], qfilter)
    else:  # only unknown fields: the objects are still listed, one cell each
        reply = await master.call("Query", what, [_name_field(what)], [], qfilter)
        reply = {"fields": [], "data": [[] for _row in reply["data"]]}
    defs = {d["name"]: d for d in reply["fields"]}
    data = []
    for row in reply["data"]:
        cells = dict(zip(known, row, strict=True))
        data.append([[mark_status(cells[f]), plain(cells[f])] if f in cells
                     else [RS_UNKNOWN, None] for f in fields])
    return {"fields": [defs.get(f) or _unknown_definition(f) for f in fields],
            "data": data}


def _name_field(what: str) -> str:
    return "id" if what == "job" else "name"


async def query_get(call: Call) -> Any:
    what = _resource(call)
    return await run(call.master, what, _field_list(call.arg("fields"), "'fields='"))


async def query_put(call: Call) -> Any:
    what = _resource(call)
    body = call.body if call.body is not None else {}
    if not isinstance(body, dict):
        raise RapiError(400, f"Invalid body: expected a JSON object with 'fields' (and "
                             f"'qfilter'), not {type(body).__name__}")
    unknown = sorted(set(body) - {"fields", "qfilter", "filter"})
    if unknown:
        raise RapiError(400, f"Invalid body parameters: unknown key(s) {', '.join(unknown)} "
                             "(expected fields, qfilter)")
    if "fields" not in body:
        raise RapiError(400, "Invalid body parameters: 'fields' is required")
    fields = _field_list(body["fields"], "'fields'")
    qfilter = body.get("qfilter", body.get("filter"))
    return await run(call.master, what, fields, qfilter)


async def query_fields(call: Call) -> Any:
    what = _resource(call)
    wanted = call.arg("fields")
    names = _field_list(wanted, "'fields='") if wanted is not None else None
    if names is None:
        return await call.master.call("QueryFields", what, None)
    have = await available_fields(call.master, what)
    reply = await call.master.call("QueryFields", what, [n for n in names if n in have])
    defs = {d["name"]: d for d in reply["fields"]}
    return {"fields": [defs.get(n) or _unknown_definition(n) for n in names]}
