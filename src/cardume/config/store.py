"""The embedded configuration store: SQLite, one row per object.

Ganeti keeps the whole configuration in one JSON file and rewrites it on every change,
which slows down past a few thousand instances. Here a change rewrites only the rows of the
objects it touched, in one transaction that also bumps the configuration's serial number.

The same file format serves the master (the authoritative copy) and the master candidates
(replicas kept by their node daemons): a replica applies each change set in serial order,
or is replaced whole when it has fallen behind.

WAL mode with ``synchronous=NORMAL``: a committed transaction survives the process being
killed (SIGKILL), which is the failure the master must tolerate; only a power loss can drop
the last transactions, and master candidates hold replicas for that case.

The layout carries a schema version (config/schema.py); opening an older store upgrades it
after a backup, a newer one is refused (storeschema.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cardume import storeschema
from cardume.config import schema
from cardume.paths import private_file

LAYOUT = storeschema.Layout("configuration", schema.VERSION, schema.CREATE, schema.STEPS,
                            schema.unversioned)


@dataclass
class ChangeSet:
    """One committed change: the rows it wrote and removed, and the serial it produced."""

    serial: int
    upserts: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    deletes: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"serial": self.serial,
                "upserts": [[k, u, d] for k, u, d in self.upserts],
                "deletes": [[k, u] for k, u in self.deletes]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChangeSet:
        return cls(serial=int(data["serial"]),
                   upserts=[(str(k), str(u), dict(d)) for k, u, d in data["upserts"]],
                   deletes=[(str(k), str(u)) for k, u in data["deletes"]])


class ConfigStore:
    """Rows on disk. Knows nothing of object types; the writer above it does."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        # The config holds secrets (DRBD keys, the cluster CA's key on candidates): the file
        # is private before SQLite writes a byte, and its -wal/-shm files inherit that.
        private_file(path)
        self._db = storeschema.open_store(path, LAYOUT)

    def close(self) -> None:
        self._db.close()

    def serial(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key='serial'").fetchone()
        return int(row[0]) if row else 0

    def load(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every object, as {kind: {uuid: data}}."""
        result: dict[str, dict[str, dict[str, Any]]] = {}
        for kind, uuid, data in self._db.execute("SELECT kind, uuid, data FROM objects"):
            result.setdefault(kind, {})[uuid] = json.loads(data)
        return result

    def apply(self, change: ChangeSet) -> None:
        """Write one change set atomically."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if change.upserts:
                db.executemany(
                    "INSERT OR REPLACE INTO objects (kind, uuid, name, data) VALUES (?,?,?,?)",
                    [(k, u, d.get("name") or d.get("cluster_name"),
                      json.dumps(d, separators=(",", ":"))) for k, u, d in change.upserts])
            if change.deletes:
                db.executemany("DELETE FROM objects WHERE kind=? AND uuid=?", change.deletes)
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('serial', ?)",
                       (str(change.serial),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def replace_all(self, serial: int,
                    objects: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Replace the whole content (a replica that fell behind, or master failover)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM objects")
            db.executemany(
                "INSERT INTO objects (kind, uuid, name, data) VALUES (?,?,?,?)",
                [(k, u, d.get("name") or d.get("cluster_name"),
                  json.dumps(d, separators=(",", ":"))) for k, u, d in objects])
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('serial', ?)",
                       (str(serial),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def dump(self) -> dict[str, Any]:
        """The whole store as one document (its schema version, serial and rows), for a
        replica or a backup."""
        return {"schema": LAYOUT.version, "serial": self.serial(),
                "objects": [[k, u, json.loads(d)] for k, u, d in
                            self._db.execute("SELECT kind, uuid, data FROM objects")]}
