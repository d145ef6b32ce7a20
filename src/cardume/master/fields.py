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
        return {"name": self.name, "title": self.title, "kind": self.kind, "doc": self.doc}


def common_fields(prefix_title: str = "") -> list[QField]:
    return [
        QField("uuid", "UUID", "text", "object's UUID", lambda q, o: o.uuid),
        QField("serial_no", "SerialNo", "number", "serial number of the object",
               lambda q, o: o.serial_no),
        QField("ctime", "CTime", "timestamp", "creation time", lambda q, o: o.ctime),
        QField("mtime", "MTime", "timestamp", "modification time", lambda q, o: o.mtime),
        QField("tags", "Tags", "list", "tags", lambda q, o: sorted(o.tags)),
    ]



def ts(value: float | None) -> Any:
    return NODATA if value is None else value

