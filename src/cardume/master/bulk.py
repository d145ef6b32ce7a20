"""Bulk listings as the REST API serves them (``/2/instances?bulk=1`` ...), encoded once
on the master and passed through the REST daemon untouched.

A bulk reply is a JSON list with one object per item, keyed by the requested fields in
their order, a field without a value (a mark, or a name the table lacks) being null. At
10,000 instances it is some megabytes: built row by row from the query tables it takes
longer than the listing itself. So each item's part that comes from the configuration is
encoded once and kept; a request only computes and encodes the live fields (the
hypervisors' view) and joins the pieces. What was kept stays valid while what it was made
from is unchanged: for an instance, the instance itself (its serial number), the cluster,
the groups and the nodes (theirs); for a node or a group, which count other objects, the
whole configuration (its serial). Jobs change without the configuration: never kept.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from cardume.master import query
from cardume.master.fields import QField

if TYPE_CHECKING:
    from cardume.master.view import MasterView

CACHED = ("instance", "node", "group")
KEEP = 8
"""Field lists whose encoded rows are kept (the REST API asks for a handful)."""

_HOLE = "\x00live\x00"  # stands in a row for a live value until the request fills it
_HOLE_TEXT = json.dumps(_HOLE)

# (resource, fields) -> (what the rows were made from,
#                        item uuid -> (the item's serial, the row's pieces between holes))
_kept: OrderedDict[tuple[str, tuple[str, ...]],
                   tuple[Any, dict[str, tuple[int, list[str]]]]] = OrderedDict()


def _version(daemon: MasterView, what: str) -> Any:
    """What every kept row of ``what`` was made from, besides the item itself."""
    cfg = daemon.cfg
    if what != "instance":
        return cfg.serial
    return (cfg.get_cluster().serial_no,
            tuple((g.uuid, g.serial_no) for g in cfg.groups.values()),
            tuple((n.uuid, n.serial_no) for n in cfg.nodes.values()))


def _plain(value: Any) -> Any:
    if type(value) is dict and len(value) == 1 and "_rs" in value:
        return None
    return value


def _encode(value: Any, _known: dict[Any, str] = {}) -> str:  # noqa: B006 - a cache
    """One live value as JSON (a mark is null); the few repeating ones from a cache."""
    kind = type(value)
    if kind is bool or value is None or kind is str:
        found = _known.get((kind, value))
        if found is None:
            found = _known[(kind, value)] = json.dumps(value)
        return found
    if kind is int:
        return str(value)
    return json.dumps(_plain(value))


def _row(fields: list[QField | None], keys: list[str], context: Any, item: Any,
         holes: bool) -> dict[str, Any]:
    """The item's row; with ``holes`` each live value is left as a hole."""
    row: dict[str, Any] = {}
    for key, field in zip(keys, fields, strict=True):
        if field is None:
            row[key] = None  # a name the table lacks (Ganeti's, not cardume's yet)
        elif field.live and holes:
            row[key] = _HOLE
        else:
            row[key] = _plain(field.get(context, item))
    return row


def _pieces(fields: list[QField | None], keys: list[str], context: Any, item: Any,
            holes: int) -> list[str] | None:
    """The item's row with every live value left as a hole: the pieces between holes (None
    if a configured value happened to contain the hole's text)."""
    text = json.dumps(_row(fields, keys, context, item, True), separators=(",", ":"))
    pieces = text.split(_HOLE_TEXT)
    return pieces if len(pieces) == holes + 1 else None


async def bulk(daemon: MasterView, what: str, keys: list[str],
               names: list[str] | None = None) -> bytes:
    """The bulk listing of ``what`` with exactly ``keys`` (see the module's docstring)."""
    keys = list(dict.fromkeys(keys))
    table = query.FIELDS.get(what) or {}
    fields = [table.get(k) for k in keys]
    live = [f for f in fields if f is not None and f.live]
    items, context = await query.prepare(daemon, what, names, bool(live))
    cache: dict[str, tuple[int, list[str]]] | None = None
    if what in CACHED:
        version = _version(daemon, what)
        slot = (what, tuple(keys))
        kept = _kept.get(slot)
        if kept is None or kept[0] != version:
            kept = (version, {})
            _kept[slot] = kept
        _kept.move_to_end(slot)
        while len(_kept) > KEEP:
            _kept.popitem(last=False)
        cache = kept[1]
    getters = [f.get for f in live]
    out: list[str] = ["["]
    with query.no_gc():
        for index, item in enumerate(items):
            if index:
                out.append(",")
            found = cache.get(item.uuid) if cache is not None else None
            if found is not None and found[0] == item.serial_no:
                pieces = found[1]
            else:
                made = _pieces(fields, keys, context, item, len(live))
                if made is None:
                    out.append(json.dumps(_row(fields, keys, context, item, False),
                                          separators=(",", ":")))
                    continue
                pieces = made
                if cache is not None:
                    cache[item.uuid] = (item.serial_no, pieces)
            out.append(pieces[0])
            for get, after in zip(getters, pieces[1:], strict=True):
                out.append(_encode(get(context, item)))
                out.append(after)
    out.append("]")
    return "".join(out).encode()
