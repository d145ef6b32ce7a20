"""What every query field table is made of: a field, the marks a cell without a value
carries, and the fields every object has.

A field is (name, title, kind, doc, getter). A cell that has no value carries a mark instead:
``{"_rs": "nodata"}`` (node did not answer), ``"offline"``, ``"unavail"``.

A field may also carry a ``column``: the same values for a whole list of objects at once.
The fields every listing shows have one, because at 10,000 rows a call per cell costs more
than the values (see query.run_query).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

NODATA = {"_rs": "nodata"}
OFFLINE = {"_rs": "offline"}
UNAVAIL = {"_rs": "unavail"}

Getter = Callable[[Any, Any], Any]  # (query context, object) -> value
Column = Callable[[Any, list[Any]], list[Any]]  # (query context, objects) -> values


@dataclass(frozen=True, slots=True)
class QField:
    name: str
    title: str
    kind: str
    doc: str
    get: Getter
    live: bool = False
    column: Column | None = None

    def values(self, context: Any, objects: list[Any]) -> list[Any]:
        """The field's value for each object, in order."""
        if self.column is not None:
            return self.column(context, objects)
        get = self.get
        return [get(context, o) for o in objects]

    def definition(self) -> dict[str, str]:
        # "list" is cardume's own hint (comma-joined in tables); on the wire it is Ganeti's
        # "other", the kind every list field has there
        kind = "other" if self.kind == "list" else self.kind
        return {"name": self.name, "title": self.title, "kind": kind, "doc": self.doc}


def attr_field(name: str, title: str, kind: str, doc: str, attr: str) -> QField:
    """A field that is an attribute of the object as it is."""
    read = attrgetter(attr)
    return QField(name, title, kind, doc, lambda q, o: read(o),
                  column=lambda q, objects: list(map(read, objects)))


def common_fields(what: str = "object") -> list[QField]:
    """uuid, serial_no, ctime, mtime and tags: every configuration object has them."""
    return [
        attr_field("uuid", "UUID", "text", f"unique identifier of the {what}", "uuid"),
        QField("serial_no", "SerialNo", "number",
               f"version of the {what}, one more at each change", lambda q, o: o.serial_no),
        QField("ctime", "CTime", "timestamp", f"when the {what} was created",
               lambda q, o: o.ctime),
        QField("mtime", "MTime", "timestamp", f"when the {what} last changed",
               lambda q, o: o.mtime),
        QField("tags", "Tags", "other", f"the {what}'s tags", lambda q, o: sorted(o.tags)),
    ]


def ts(value: float | None) -> Any:
    return NODATA if value is None else value

