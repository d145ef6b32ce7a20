"""Ganeti-style tables for every ``list`` and ``list-fields`` command.

The output shape was checked against a real Ganeti 3.0.2 (``gnt-node list`` with and without
``--units``, ``--separator``, ``--no-headers``, ``-o +...``; ``gnt-node list-fields``;
``gnt-job list``):

* without a separator, columns are padded to their widest cell (the header included) and joined
  by ONE space; number and size columns are right-aligned, everything else left-aligned; a
  left-aligned last column is not padded, so lines carry no trailing padding (but an empty last
  cell still leaves the joining space, as Ganeti does);
* with ``--separator=S`` the cells are joined by S with no padding at all;
* sizes (kind ``unit``, in MiB) print human-readable by default (``239M``, ``23.5G``,
  ``1.4T``), but as plain MiB when a non-empty separator is given; ``--units`` forces one of
  ``h``/``m``/``g``/``t`` (m: a whole number; g/t: one decimal; no suffix). Ganeti 3.0 offers
  no ``b``/``k`` units, so neither do we;
* booleans print ``Y``/``N``, lists are comma-joined, timestamps are local time
  ``YYYY-MM-DD HH:MM:SS`` (with ``.ffffff`` when given as a ``(seconds, microseconds)`` pair,
  which is how Ganeti prints job op timestamps);
* a cell without a value prints a mark: ``?`` no data (also for None), ``*`` offline,
  ``-`` unavailable, ``??`` unknown; ``-v`` spells them ``(nodata)``, ``(offline)`` ...

One deliberate difference: Ganeti accepts an unknown ``-o`` field, prints ``??`` in its column,
warns and exits with code 14; we refuse it up front (:func:`select_fields`) with WrongInput.

Only the standard library is imported: the CLI must start fast.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from itertools import repeat

from cardume import errors

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any


class Mark(enum.Enum):
    """Why a cell has no value; prints as Ganeti's short mark (or the verbose text with -v)."""

    UNKNOWN = "??"
    NODATA = "?"
    OFFLINE = "*"
    UNAVAIL = "-"

    @property
    def verbose(self) -> str:
        return _VERBOSE_MARKS[self.name]


_VERBOSE_MARKS = {"UNKNOWN": "(unknown)", "NODATA": "(nodata)", "OFFLINE": "(offline)",
                  "UNAVAIL": "(unavail)"}

# a cell without a value as the master sends it: {"_rs": "nodata"} ...
_WIRE_MARKS = {"nodata": Mark.NODATA, "offline": Mark.OFFLINE, "unavail": Mark.UNAVAIL,
               "unknown": Mark.UNKNOWN}


def mark_of(value: Any) -> Any:
    """The Mark a wire cell ``{"_rs": ...}`` stands for; any other value as it is."""
    if isinstance(value, dict) and len(value) == 1 and "_rs" in value:
        return _WIRE_MARKS.get(value["_rs"], Mark.UNKNOWN)
    return value

#: Field kinds, and how ``list-fields`` names them (Ganeti's words).
KIND_NAMES = {
    "text": "Text",
    "number": "Number",
    "float": "Floating-point number",
    "unit": "Storage size",
    "bool": "Boolean",
    "list": "Custom",
    "timestamp": "Timestamp",
    "other": "Custom",
}
_RIGHT_ALIGNED = frozenset({"number", "float", "unit"})

#: Values accepted by ``--units``.
UNITS = ("h", "m", "g", "t")


class Field:
    """One column a list command can show.

    ``kind`` is one of :data:`KIND_NAMES`; ``formatter``, if given, turns a (non-missing)
    value into its cell text instead of the kind's default, keeping the kind's alignment.
    """

    __slots__ = ("name", "title", "kind", "doc", "formatter")

    def __init__(self, name: str, title: str, kind: str = "text", doc: str = "",
                 formatter: Callable[[Any], str] | None = None) -> None:
        if kind not in KIND_NAMES:
            raise errors.InternalError(f"field {name!r} has an unknown kind {kind!r}")
        self.name = name
        self.title = title
        self.kind = kind
        self.doc = doc
        self.formatter = formatter

    @property
    def align_right(self) -> bool:
        return self.kind in _RIGHT_ALIGNED

    def __repr__(self) -> str:
        return f"Field({self.name!r}, {self.title!r}, {self.kind!r})"


def select_fields(spec: str | None, default: Sequence[str],
                  available: Collection[str]) -> list[str]:
    """Return the field names for ``-o``: None → defaults, ``a,b`` → those, ``+a,b`` → appended.

    ``available`` is anything supporting ``in`` over field names (a dict of Fields works).
    """
    if spec is None:
        return list(default)
    if spec.startswith("+"):
        names = list(default) + spec[1:].split(",")
    else:
        names = spec.split(",")
    for name in names:
        if not name:
            raise errors.WrongInput(
                f"invalid field list {spec!r}: expected FIELD[,FIELD...] or +FIELD[,FIELD...]")
        if name not in available:
            raise errors.WrongInput(f"unknown field {name!r} (see list-fields)")
    return names


def resolve_units(units: str | None, separator: str | None) -> str:
    """Return the unit letter to use: ``--units`` if given, else ``m`` with a separator, else ``h``.

    Like Ganeti, an empty separator (``--separator=``) keeps human-readable sizes.
    """
    if units is None:
        return "m" if separator else "h"
    if units not in UNITS:
        raise errors.WrongInput(f"invalid unit {units!r}: expected one of h, m, g, t")
    return units


def format_size(mib: float, units: str = "h") -> str:
    """Format a MiB quantity: ``h`` → ``512M``, ``7.8G``, ``1.5T``; ``m``/``g``/``t``: no suffix."""
    if units == "m" or (units == "h" and mib < 1024):
        text = f"{mib:.0f}"
        return text + "M" if units == "h" else text
    if units == "g" or (units == "h" and mib < 1024 * 1024):
        text = f"{mib / 1024:.1f}"
        return text + "G" if units == "h" else text
    if units in ("t", "h"):
        text = f"{mib / (1024 * 1024):.1f}"
        return text + "T" if units == "h" else text
    raise errors.WrongInput(f"invalid unit {units!r}: expected one of h, m, g, t")


def format_timestamp(value: Any) -> str:
    """Local time of an epoch (``2026-11-25 17:49:46``), or of a ``(sec, usec)`` pair (+ usec)."""
    if isinstance(value, list | tuple) and len(value) == 2:
        seconds, usecs = value
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))
        return f"{stamp}.{int(usecs):06d}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    return str(value)


def format_cell(field: Field, value: Any, units: str = "h", verbose: bool = False) -> str:
    """The text of one cell of ``field`` (``units`` already resolved, see :func:`resolve_units`)."""
    if value is None:
        value = Mark.NODATA
    elif value.__class__ is dict:
        value = mark_of(value)
    if isinstance(value, Mark):
        return value.verbose if verbose else value.value
    if field.formatter is not None:
        return field.formatter(value)
    kind = field.kind
    if kind == "bool":
        return "Y" if value else "N"
    if kind == "unit":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return format_size(value, units)
        return str(value)
    if kind == "list":
        if isinstance(value, list | tuple | set | frozenset):
            return ",".join(str(item) for item in value)
        return str(value)
    if kind == "timestamp":
        return format_timestamp(value)
    if isinstance(value, dict):  # parameter dicts print as Ganeti does: "k=v, k=v"
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _layout(columns: list[list[str]], right: list[bool], separator: str | None) -> str:
    """Lines of the table whose cells are given column by column."""
    if not columns:
        return ""
    if separator is None:
        padded = []
        last = len(columns) - 1
        for index, (cells, align) in enumerate(zip(columns, right, strict=True)):
            if index == last and not align:
                padded.append(cells)  # a left-aligned last column carries no padding
                continue
            width = max(map(len, cells), default=0)
            padded.append(list(map(str.rjust if align else str.ljust, cells,
                                   repeat(width, len(cells)))))
        columns, separator = padded, " "
    return "\n".join(map(separator.join, zip(*columns, strict=True)))


def _plain_text(field: Field) -> bool:
    """Whether a string in this field's cells prints as it is."""
    return field.formatter is None and field.kind in ("text", "number")


def _cell_text(field: Field, units: str, verbose: bool) -> Callable[[Any], str]:
    """format_cell for one column, with the common case (a text cell that is already a
    string, a whole number) short-cut: a list of 10,000 instances formats 10,000 cells per
    column, and the generic path's checks would cost more than the rest of the command."""
    if not _plain_text(field):
        marks: dict[str, str] = {}  # the text of each wire mark, made once per column

        def other(value: Any) -> str:
            if value.__class__ is dict and len(value) == 1:
                rs = value.get("_rs")
                if rs.__class__ is str:
                    found = marks.get(rs)
                    if found is None:
                        found = marks[rs] = format_cell(field, value, units, verbose)
                    return found
            return format_cell(field, value, units, verbose)
        return other

    def text(value: Any) -> str:
        cls = value.__class__
        if cls is str:
            return value
        if cls is int:
            return str(value)
        return format_cell(field, value, units, verbose)
    return text


def format_table(fields: Sequence[Field], rows: Iterable[Sequence[Any]], *,
                 headers: bool = True, separator: str | None = None,
                 units: str | None = None, verbose: bool = False) -> str:
    """Render rows (one value per field; None, a :class:`Mark` or the master's
    ``{"_rs": ...}`` for a missing value).

    Returns the lines joined by newlines, without a trailing newline; ``""`` when there is
    nothing to print (no rows and no headers), in which case the caller prints nothing.
    """
    unit = resolve_units(units, separator)
    rows = list(rows)
    width = len(fields)
    if rows and set(map(len, rows)) != {width}:
        wrong = next(len(row) for row in rows if len(row) != width)
        raise errors.InternalError(f"table row has {wrong} values for {width} fields")
    columns: list[list[str]] = []
    values_by_field = list(zip(*rows, strict=True)) if rows else [() for _ in fields]
    for field, values in zip(fields, values_by_field, strict=True):
        cells: list[str]
        if _plain_text(field) and set(map(type, values)) <= {str}:
            cells = list(values)  # a column of names: nothing to format
        else:
            cells = list(map(_cell_text(field, unit, verbose), values))
        if headers:
            cells.insert(0, field.title)
        columns.append(cells)
    if not rows and not headers:
        return ""
    return _layout(columns, [field.align_right for field in fields], separator)


#: Fields of kind "other" whose lists a table prints comma-joined, per resource (the
#: columns Ganeti's list commands join); any other "other" value prints as Python shows it
#: (``['a', 'b']``, ``{'k': 1}``), as Ganeti's do.
JOINED_LISTS = {
    "node": frozenset({"pinst_list", "sinst_list", "tags"}),
    "group": frozenset({"node_list", "pinst_list"}),
    "instance": frozenset({"tags", "disk.sizes", "nic.macs", "nic.ips", "nic.modes",
                           "nic.links", "nic.bridges", "nic.networks", "snodes",
                           "snodes.group", "snodes.group.uuid"}),
    "job": frozenset({"summary"}),
    "network": frozenset({"inst_list", "tags"}),
}
#: Job fields holding one [seconds, microseconds] time per opcode: printed as local times.
_OPCODE_TIMES = frozenset({"opstart", "opexec", "opend"})


def _joined(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def _params(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) if value else "(empty)"
    return str(value)


def _network_groups(value: Any) -> str:
    """A network's connections as Ganeti lists them: 'default (bridged, br0, ), ...'."""
    if isinstance(value, list | tuple):
        return ", ".join(f"{item[0]} ({', '.join(map(str, item[1:]))})"
                         if isinstance(item, list | tuple) and item else str(item)
                         for item in value)
    return str(value)


def _opcode_times(value: Any) -> str:
    if isinstance(value, list | tuple):
        return str([format_timestamp(v) if v is not None else "?" for v in value])
    return str(value)


def query_field(resource: str, definition: Mapping[str, str]) -> Field:
    """The column of a query field (a definition from the master's Query reply), printed as
    Ganeti's ``gnt-RESOURCE list`` prints it."""
    name, kind = definition["name"], definition["kind"]
    formatter: Callable[[Any], str] | None = None
    if kind in ("other", "list"):
        if name in JOINED_LISTS.get(resource, ()) or kind == "list":
            formatter = _joined
        elif resource == "group" and name == "ndparams":
            formatter = _params
        elif resource == "job" and name in _OPCODE_TIMES:
            formatter = _opcode_times
        elif resource == "network" and name == "group_list":
            formatter = _network_groups
        else:
            formatter = str
    return Field(name, definition["title"], kind if kind in KIND_NAMES else "other",
                 definition.get("doc", ""), formatter)


def _nice_key(name: str) -> tuple[Any, ...]:
    # Alternating text and number parts, so that "disk.size/10" sorts after "disk.size/2".
    parts = re.split(r"([0-9]+)", name)
    return tuple(int(part) if idx % 2 else part for idx, part in enumerate(parts))


def describe_fields(available: Mapping[str, Field],
                    names: Sequence[str] | None = None) -> list[Field]:
    """The fields ``list-fields [NAME...]`` shows: all, naturally sorted by name, or those named."""
    if not names:
        return [available[name] for name in sorted(available, key=_nice_key)]
    for name in names:
        if name not in available:
            raise errors.WrongInput(f"unknown field {name!r} (see list-fields)")
    return [available[name] for name in names]


def format_fields_list(fields: Iterable[Field], *, headers: bool = True,
                       separator: str | None = None) -> str:
    """Render ``list-fields``: columns Name, Type, Title, Description, in the given order."""
    table: list[list[str]] = []
    if headers:
        table.append(["Name", "Type", "Title", "Description"])
    for field in fields:
        table.append([field.name, KIND_NAMES[field.kind], field.title, field.doc])
    if not table:
        return ""
    return _layout([list(column) for column in zip(*table, strict=True)], [False] * 4, separator)
