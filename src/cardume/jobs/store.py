"""Persistence of the job queue: one SQLite database on the master.

Ganeti writes one file per job and slows down once tens of thousands pile up; here a job
is one row (indexed by status) and its log lines are rows of their own, so appending a
line never rewrites the job. As with the config, WAL with ``synchronous=NORMAL`` keeps
every committed write across a SIGKILL of the master daemon.
"""

from __future__ import annotations

import json
import os
import sqlite3
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    status TEXT NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE TABLE IF NOT EXISTS job_log (
    job_id INTEGER NOT NULL,
    serial INTEGER NOT NULL,
    ts REAL NOT NULL,
    type TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (job_id, serial)
);
CREATE TABLE IF NOT EXISTS queue_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


class JobStore:
    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        os.chmod(path, 0o600)

    def close(self) -> None:
        self._db.close()

    def last_id(self) -> int:
        row = self._db.execute("SELECT MAX(id) FROM jobs").fetchone()
        return int(row[0] or 0)

    def insert(self, job_id: int, status: str, data: dict[str, Any]) -> None:
        self._db.execute("INSERT INTO jobs (id, status, data) VALUES (?,?,?)",
                         (job_id, status, _dumps(data)))

    def insert_many(self, jobs: list[tuple[int, str, dict[str, Any]]]) -> None:
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany("INSERT INTO jobs (id, status, data) VALUES (?,?,?)",
                           [(i, s, _dumps(d)) for i, s, d in jobs])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def update(self, job_id: int, status: str, data: dict[str, Any]) -> None:
        self._db.execute("UPDATE jobs SET status=?, data=? WHERE id=?",
                         (status, _dumps(data), job_id))

    def append_log(self, job_id: int, serial: int, ts: float, kind: str, message: str) -> None:
        self._db.execute("INSERT INTO job_log (job_id, serial, ts, type, message) "
                         "VALUES (?,?,?,?,?)", (job_id, serial, ts, kind, message))

    def load(self, job_id: int) -> tuple[dict[str, Any], list[tuple[int, float, str, str]]] | None:
        row = self._db.execute("SELECT data FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            return None
        log = self._db.execute(
            "SELECT serial, ts, type, message FROM job_log WHERE job_id=? ORDER BY serial",
            (job_id,)).fetchall()
        return json.loads(row[0]), [tuple(r) for r in log]

    def ids(self, include_archived: bool = False) -> list[int]:
        query = "SELECT id FROM jobs" + ("" if include_archived else " WHERE archived=0")
        return [r[0] for r in self._db.execute(query + " ORDER BY id")]

    def unfinished(self) -> list[int]:
        return [r[0] for r in self._db.execute(
            "SELECT id FROM jobs WHERE status IN ('queued','waiting','running','canceling') "
            "ORDER BY id")]

    def finished_before(self, timestamp: float) -> list[int]:
        """Unarchived jobs that ended before the given time."""
        return [r[0] for r in self._db.execute(
            "SELECT id FROM jobs WHERE archived=0 AND status IN ('success','error','canceled') "
            "AND json_extract(data, '$.end_ts') < ? ORDER BY id", (timestamp,))]

    def archive(self, job_ids: list[int]) -> int:
        cur = self._db.executemany("UPDATE jobs SET archived=1 WHERE id=? AND archived=0",
                                   [(i,) for i in job_ids])
        return cur.rowcount

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM queue_meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM queue_meta WHERE key=?", (key,))
        else:
            self._db.execute("INSERT OR REPLACE INTO queue_meta (key, value) VALUES (?,?)",
                             (key, value))
