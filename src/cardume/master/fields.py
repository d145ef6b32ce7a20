"""What every query field table is made of: a field, the marks a cell without a value
carries, and the fields every object has.

A field is (name, title, kind, doc, getter). A cell that has no value carries a mark instead:
``{"_rs": "nodata"}`` (node did not answer), ``"offline"``, ``"unavail"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NODATA = {"_rs": "nodata"}
OFFLINE = {"_rs": "offline"}
UNAVAIL = {"_rs": "unavail"}

Getter = Callable[[Any, Any], Any]  # (query context, object) -> value


@dataclass(frozen=True, slots=True)
class QField:
    name: str
    title: str
    kind: str
    doc: str
    get: Getter
    live: bool = False

    def definition(self) -> dict[str, str]:
        # "list" is cardume's own hint (comma-joined in tables); on the wire it is Ganeti's
        # "other", the kind every list field has there
        kind = "other" if self.kind == "list" else self.kind
        return {"name": self.name, "title": self.title, "kind": kind, "doc": self.doc}


def common_fields(what: str = "object") -> list[QField]:
    """uuid, serial_no, ctime, mtime and tags: every configuration object has them."""
    return [
        QField("uuid", "UUID", "text", f"unique identifier of the {what}", lambda q, o: o.uuid),
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

