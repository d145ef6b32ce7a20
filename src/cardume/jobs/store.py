"""Persistence of the job queue: one SQLite database on the master, replicas on candidates.

Ganeti writes one file per job and slows down once tens of thousands pile up; here a job
is one row (indexed by status) and its log lines are rows of their own, so appending a
line never rewrites the job. As with the config, WAL with ``synchronous=NORMAL`` keeps
every committed write across a SIGKILL of the master daemon.

Replication: every write gets the next number of one sequence (``seq``), stored on the rows
it wrote. A master candidate's replica holds every row up to some ``seq``; catching it up is
sending the rows whose ``seq`` is above that (:meth:`JobStore.changes_since`), in order, and
it applies them in one transaction (:meth:`JobStore.apply_changes`). A job row carries its
latest state only, so a candidate that fell behind gets each job once, however often it
changed. ``next_id`` travels with the rows: a job id handed out once is never handed out
again, by this master or the next.

A full disk: the store keeps a reserve file beside the database. When a write fails for
want of space the reserve is given up and the write tried again, so jobs already running
can still record how they ended; :attr:`JobStore.full` then stays set (the queue refuses
new jobs) until :meth:`JobStore.restore_reserve` finds space for the reserve again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from cardume import errors, storeschema
from cardume.jobs import schema
from cardume.paths import private_file

LAYOUT = storeschema.Layout("job queue", schema.VERSION, schema.CREATE, schema.STEPS,
                            schema.unversioned)
"""The layouts by version and the steps between them: jobs/schema.py."""

RESERVE_BYTES = 8 * 1024 * 1024
"""Space set aside for the writes of jobs already running when the disk fills up."""

REPLICATED_META = ("drained", "epoch")
TAKEOVER_KEY = "takeover_from"
"""Left by a master failover: the node whose queue this one took over (not replicated)."""
"""Queue settings that travel with the rows to the replicas."""

JobRow = tuple[int, str, int, str, int, "float | None"]
"""(id, status, archived, data as JSON text, seq, end_ts)"""
LogRow = tuple[int, int, float, str, str, int]
"""(job id, serial, timestamp, type, message, seq)"""

T = TypeVar("T")


def dumps(data: Any) -> str:
    """JSON text without the non-standard ``Infinity``/``NaN`` (SQLite's JSON functions and
    other readers choke on them): a non-finite number is stored as its name in a string."""
    try:
        return json.dumps(data, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(_finite(data), separators=(",", ":"), allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _is_full(err: BaseException) -> bool:
    if isinstance(err, sqlite3.Error):
        return getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or \
            "full" in str(err).lower()
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


class DiskFull(errors.EnvironmentProblem):
    """The job store could not write: its disk (or the user's quota) is full."""


class JobStore:
    def __init__(self, path: str, on_change: Callable[[], None] | None = None) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        # job data may hold secrets until the job ends (a join token): private from the
        # first byte, and so are SQLite's -wal and -shm files (see paths.private_file)
        private_file(path)
        self._db = storeschema.open_store(path, LAYOUT)
        self.on_change = on_change
        """Called after every write (the master wakes its replication with it)."""
        self.seq = self._stored_seq()
        self.reserve_path = path + ".reserve"
        self.full = False
        """A write found the disk full; cleared once the reserve could be made again."""

    def _stored_seq(self) -> int:
        row = self._db.execute(
            "SELECT MAX(m) FROM (SELECT MAX(seq) AS m FROM jobs UNION ALL "
            "SELECT MAX(seq) FROM job_log UNION ALL "
            "SELECT CAST(value AS INTEGER) FROM queue_meta WHERE key='seq')").fetchone()
        return int(row[0] or 0)

    def close(self) -> None:
        self._db.close()

    def refresh(self) -> None:
        """Re-read how far the store is (another process writes it: the master daemon)."""
        self.seq = self._stored_seq()

    # --- writing, with the reserve for a full disk ---------------------------------------------

    def _write(self, action: Callable[[], T], use_reserve: bool = True) -> T:
        """Run one write; on a full disk give up the reserve and try once more (not for a
        new job: the reserve is for the jobs already running)."""
        try:
            result = action()
        except (sqlite3.Error, OSError) as err:
            if not _is_full(err):
                raise
            self.full = True
            if not use_reserve or not self._release_reserve():
                raise self._full_error() from None
            try:
                result = action()
            except (sqlite3.Error, OSError) as again:
                if _is_full(again):
                    raise self._full_error() from None
                raise
        if self.on_change is not None:
            self.on_change()
        return result

    def _transaction(self, body: Callable[[sqlite3.Connection], T],
                     use_reserve: bool = True) -> T:
        def run() -> T:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                result = body(db)
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            return result
        return self._write(run, use_reserve)

    def _full_error(self) -> DiskFull:
        return DiskFull(f"the disk holding the job queue ({os.path.dirname(self.path)}) is "
                        "full", "free some space there; jobs are accepted again once there "
                        "is room")

    def _release_reserve(self) -> bool:
        try:
            os.unlink(self.reserve_path)
        except FileNotFoundError:
            return False
        return True

    def restore_reserve(self) -> bool:
        """Set the reserve aside if it is missing; True once it is there (and the store is
        no longer full)."""
        if os.path.exists(self.reserve_path):
            if not self.full:
                return True
        else:
            tmp = self.reserve_path + ".tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.posix_fallocate(fd, 0, RESERVE_BYTES)
                finally:
                    os.close(fd)
                os.replace(tmp, self.reserve_path)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                return False
        self.full = False
        return True

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    # --- the master's writes ------------------------------------------------------------------

    def insert(self, job_id: int, status: str, data: dict[str, Any]) -> None:
        self.insert_many([(job_id, status, data)])

    def insert_many(self, jobs: list[tuple[int, str, dict[str, Any]]]) -> None:
        texts = [(i, s, dumps(d)) for i, s, d in jobs]
        before = self.seq

        def body(db: sqlite3.Connection) -> None:
            self.seq = before
            db.executemany("INSERT INTO jobs (id, status, data, seq) VALUES (?,?,?,?)",
                           [(i, s, d, self._next_seq()) for i, s, d in texts])
        try:
            self._transaction(body, use_reserve=False)
        except BaseException:
            self.seq = before
            raise

    def update(self, job_id: int, status: str, data: dict[str, Any],
               end_ts: float | None = None) -> None:
        text = dumps(data)
        seq = self.seq + 1
        self._write(lambda: self._db.execute(
            "UPDATE jobs SET status=?, data=?, seq=?, end_ts=? WHERE id=?",
            (status, text, seq, end_ts, job_id)))
        self.seq = seq

    def append_log(self, job_id: int, serial: int, ts: float, kind: str, message: str) -> None:
        seq = self.seq + 1
        self._write(lambda: self._db.execute(
            "INSERT OR IGNORE INTO job_log (job_id, serial, ts, type, message, seq) "
            "VALUES (?,?,?,?,?,?)", (job_id, serial, ts, kind, message, seq)))
        self.seq = seq

    def archive(self, job_ids: list[int]) -> int:
        if not job_ids:
            return 0
        before = self.seq

        def body(db: sqlite3.Connection) -> int:
            self.seq = before
            count = 0
            for job_id in job_ids:
                if db.execute("UPDATE jobs SET archived=1, seq=? WHERE id=? AND archived=0",
                              (self.seq + 1, job_id)).rowcount:
                    self.seq += 1
                    count += 1
            return count
        try:
            return self._transaction(body)
        except BaseException:
            self.seq = before
            raise

    def set_meta(self, key: str, value: str | None) -> None:
        seq = self.seq + 1

        def body(db: sqlite3.Connection) -> None:
            if value is None:
                db.execute("DELETE FROM queue_meta WHERE key=?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO queue_meta (key, value) VALUES (?,?)",
                           (key, value))
            db.execute("INSERT OR REPLACE INTO queue_meta (key, value) VALUES ('seq', ?)",
                       (str(seq),))
        self._transaction(body)
        self.seq = seq

    # --- reading -----------------------------------------------------------------------------

    def last_id(self) -> int:
        row = self._db.execute("SELECT MAX(id) FROM jobs").fetchone()
        return int(row[0] or 0)

    def next_id(self) -> int:
        """The id the next job gets: above every job ever stored here or named by the
        replicated counter (archived jobs keep their rows, so ids are never reused)."""
        stored = self.get_meta("next_id")
        return max(self.last_id() + 1, int(stored) if stored and stored.isdigit() else 1)

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
            "AND end_ts < ? ORDER BY id", (timestamp,))]

    def with_undo(self) -> list[int]:
        """Jobs that still hold things to undo (see Job.undo)."""
        return [r[0] for r in self._db.execute(
            "SELECT id FROM jobs WHERE archived=0 AND json_valid(data) AND "
            "json_array_length(data, '$.undo') > 0 ORDER BY id")]

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM queue_meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else None

    # --- replication ---------------------------------------------------------------------------

    def changes_since(self, cursor: int, limit: int = 5000) -> dict[str, Any]:
        """The rows written after ``cursor``, at most about ``limit`` of them (seq numbers are
        dense, so the range ``(cursor, upto]`` holds at most ``limit`` rows)."""
        upto = min(self.seq, cursor + limit)
        jobs = self._db.execute(
            "SELECT id, status, archived, data, seq, end_ts FROM jobs WHERE seq > ? AND "
            "seq <= ? ORDER BY seq", (cursor, upto)).fetchall()
        logs = self._db.execute(
            "SELECT job_id, serial, ts, type, message, seq FROM job_log WHERE seq > ? AND "
            "seq <= ? ORDER BY seq", (cursor, upto)).fetchall()
        return {"base": cursor, "seq": upto, "jobs": [list(r) for r in jobs],
                "logs": [list(r) for r in logs], "next_id": self.next_id(),
                "meta": {k: self.get_meta(k) for k in REPLICATED_META}}

    def apply_changes(self, change: dict[str, Any], reset: bool = False) -> bool:
        """A replica applies what :meth:`changes_since` gave; False (nothing written) when
        the change does not start where this replica is."""
        base, upto = int(change["base"]), int(change["seq"])
        if not reset and base != self.seq:
            return False
        jobs: Iterable[JobRow] = [(int(i), str(s), int(a), str(d), int(q),
                                   None if e is None else float(e))
                                  for i, s, a, d, q, e in change["jobs"]]
        logs: Iterable[LogRow] = [(int(j), int(n), float(t), str(k), str(m), int(q))
                                  for j, n, t, k, m, q in change["logs"]]
        meta = {str(k): v for k, v in (change.get("meta") or {}).items()}

        def body(db: sqlite3.Connection) -> None:
            if reset:
                db.execute("DELETE FROM jobs")
                db.execute("DELETE FROM job_log")
                db.execute("DELETE FROM queue_meta")
            db.executemany("INSERT OR REPLACE INTO jobs (id, status, archived, data, seq, "
                           "end_ts) VALUES (?,?,?,?,?,?)", jobs)
            db.executemany("INSERT OR REPLACE INTO job_log (job_id, serial, ts, type, "
                           "message, seq) VALUES (?,?,?,?,?,?)", logs)
            for key, value in meta.items():
                if value is None:
                    db.execute("DELETE FROM queue_meta WHERE key=?", (key,))
                else:
                    db.execute("INSERT OR REPLACE INTO queue_meta (key, value) VALUES (?,?)",
                               (key, str(value)))
            db.executemany("INSERT OR REPLACE INTO queue_meta (key, value) VALUES (?,?)",
                           [("seq", str(upto)), ("next_id", str(int(change["next_id"])))])
        self._transaction(body)
        self.seq = upto
        return True

    def dump(self) -> dict[str, Any]:
        """Everything, as one change from an empty store (a takeover at master failover)."""
        everything = self.changes_since(0, limit=max(self.seq, 1))
        everything["epoch"] = self.get_meta("epoch")
        everything["schema"] = LAYOUT.version
        return everything
