"""The job store's layouts, by schema version, and the steps between them.

1  jobs (id, status, archived, data) and job_log (job_id, serial, ts, type, message):
   the first release, without replication to the master candidates.
2  a ``seq`` on every row (replication sends the rows above a candidate's ``seq``) and the
   job's end time as a column (archiving reads it instead of every job's JSON), with their
   indexes. Stores of 1 and 2 carry no number (user_version 0); the columns tell them apart.
3  the same tables, numbered.
"""

from __future__ import annotations

import json
import math
import sqlite3

VERSION = 3
"""The job queue schema this cardume writes."""

_V1 = (
    "CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, status TEXT NOT NULL, "
    "archived INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status)",
    "CREATE TABLE IF NOT EXISTS job_log (job_id INTEGER NOT NULL, serial INTEGER NOT NULL, "
    "ts REAL NOT NULL, type TEXT NOT NULL, message TEXT NOT NULL, "
    "PRIMARY KEY (job_id, serial))",
    "CREATE TABLE IF NOT EXISTS queue_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
V2_COLUMNS = (
    ("jobs", "seq", "INTEGER NOT NULL DEFAULT 0"),
    ("jobs", "end_ts", "REAL"),
    ("job_log", "seq", "INTEGER NOT NULL DEFAULT 0"),
)
_V2_INDEXES = (
    "CREATE INDEX IF NOT EXISTS jobs_seq ON jobs (seq)",
    "CREATE INDEX IF NOT EXISTS jobs_end ON jobs (archived, end_ts)",
    "CREATE INDEX IF NOT EXISTS job_log_seq ON job_log (seq)",
)
CREATE = (
    *_V1,
    *(f"ALTER TABLE {table} ADD COLUMN {column} {decl}" for table, column, decl in V2_COLUMNS),
    *_V2_INDEXES,
)


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})")}


def unversioned(db: sqlite3.Connection) -> int:
    """An unnumbered store: 0 when it has no table yet (new), 2 when it has every
    column of 2, else 1."""
    if not columns(db, "jobs"):
        return 0
    have = {(table, column) for table in ("jobs", "job_log") for column in columns(db, table)}
    return 2 if all((t, c) in have for t, c, _ in V2_COLUMNS) else 1


def add_seq_and_end(db: sqlite3.Connection) -> None:
    """Version 1 to 2: the columns (those still missing: some stores had part of them) and
    their indexes; the end time copied from each job's JSON, skipping rows an older bug
    stored unreadable (a non-finite number)."""
    for table, column, decl in V2_COLUMNS:
        if column not in columns(db, table):
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
    ends = []
    for job_id, data in db.execute("SELECT id, data FROM jobs WHERE end_ts IS NULL"):
        try:
            end = json.loads(data).get("end_ts")
        except (ValueError, AttributeError):
            continue
        if isinstance(end, int | float) and not isinstance(end, bool) and math.isfinite(end):
            ends.append((end, job_id))
    db.executemany("UPDATE jobs SET end_ts=? WHERE id=?", ends)
    for statement in _V2_INDEXES:
        db.execute(statement)


def number_v2(db: sqlite3.Connection) -> None:
    """Version 2 to 3: check the layout is really 2 before it is numbered."""
    if unversioned(db) != 2:
        raise ValueError("the jobs and job_log tables lack columns of version 2")


STEPS = (
    (1, "add the replication sequence and end-time columns, with their indexes",
     add_seq_and_end),
    (2, "check the layout of version 2 and number it", number_v2),
)
