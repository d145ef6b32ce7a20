"""The configuration store's layouts, by schema version, and the steps between them.

1  objects (kind, uuid, name, data) and meta (serial): the layout of every cardume before
   stores were numbered; such a store carries no number (user_version 0).
2  the same tables, numbered: the first layout a newer cardume can tell from its own.

``gnt-cluster version`` prints :data:`VERSION` as the configuration format, so this module
stays free of heavy imports (see storeschema.py for how the steps are run).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3

VERSION = 2
"""The configuration schema this cardume writes."""

CREATE = (
    "CREATE TABLE IF NOT EXISTS objects (kind TEXT NOT NULL, uuid TEXT NOT NULL, name TEXT, "
    "data TEXT NOT NULL, PRIMARY KEY (kind, uuid))",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

V1_COLUMNS = {"objects": {"kind", "uuid", "name", "data"}, "meta": {"key", "value"}}


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})")}


def unversioned(db: sqlite3.Connection) -> int:
    """An unnumbered store: 0 when it has no table yet (new), else the layout of 1."""
    return 1 if columns(db, "objects") else 0


def number_v1(db: sqlite3.Connection) -> None:
    """Check the store really has the layout of version 1 before it is numbered: a store
    missing a table or a column is refused, not stamped with a version it lacks."""
    for table, wanted in V1_COLUMNS.items():
        missing = wanted - columns(db, table)
        if missing:
            raise ValueError(f"table {table} lacks {', '.join(sorted(missing))}")


STEPS = (
    (1, "check the layout of version 1 and number it", number_v1),
)
