"""Schema versions of the SQLite stores (configuration, job queue) and their upgrade.

The version is SQLite's ``PRAGMA user_version``: it lives in the database header, so it
needs no table of its own, it changes in the same transaction as the migration steps (a
crash leaves the old number with the old layout), the backup API copies it, and a store
written before versions existed reads 0. Each store's own module (config/schema.py,
jobs/schema.py) says which older layout such an unversioned store has.

Opening a store: a store newer than this cardume is refused before anything writes to it;
an older one is first copied beside itself with SQLite's backup API (a live WAL included,
private like the store), then upgraded by its ordered steps in one transaction.

Replicas: every store-writing call between nodes carries the sender's schema version, and
the receiver refuses one that differs from its own (:func:`check_sent`), so nodes running
different cardume versions never write each other's stores.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from cardume import errors
from cardume.paths import private_file

log = logging.getLogger(__name__)

Step = tuple[int, str, Callable[[sqlite3.Connection], None]]
"""(the version it upgrades from, what it does, the function doing it in the transaction)"""


@dataclass(frozen=True)
class Layout:
    what: str
    """The store's name in messages ("configuration", "job queue")."""
    version: int
    """The version this cardume writes."""
    create: tuple[str, ...]
    """Statements making a new store at ``version``."""
    steps: tuple[Step, ...]
    """Ordered upgrades, one per version, up to ``version``."""
    unversioned: Callable[[sqlite3.Connection], int]
    """The version of an existing store without a number (0: an empty file, a new store)."""


class SchemaTooNew(errors.EnvironmentProblem):
    """The store was written by a newer cardume."""


class SchemaUpgradeFailed(errors.EnvironmentProblem):
    """A migration step failed; the store was left as it was."""


def stored_version(path: str) -> int:
    """The store's ``user_version``, read through a read-only connection (0 when the file
    is missing or empty)."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return 0
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def too_new(path: str, layout: Layout, found: int) -> SchemaTooNew:
    return SchemaTooNew(f"{path}: {layout.what} schema version {found} is newer than this "
                        f"cardume knows (at most {layout.version})",
                        "upgrade cardume on this node; the file was left untouched")


def open_store(path: str, layout: Layout) -> sqlite3.Connection:
    """Connect to the store at ``path`` (existing and private), at ``layout.version``:
    created if new, upgraded if older, refused if newer."""
    found = stored_version(path)
    if found > layout.version:
        raise too_new(path, layout, found)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        if found != layout.version:
            _bring_up_to_date(db, path, layout)
    except BaseException:
        db.close()
        raise
    return db


def _bring_up_to_date(db: sqlite3.Connection, path: str, layout: Layout) -> None:
    version = _version(db, layout)
    backup = None
    if 0 < version < layout.version:
        # the backup API needs the store outside a transaction: copy first, then check
        # under the write lock that nobody (the other daemon of this node) upgraded since
        try:
            backup = make_backup(db, path, version)
        except (OSError, sqlite3.Error) as err:
            raise SchemaUpgradeFailed(
                f"{path}: cannot back up the {layout.what} (schema version {version}) before "
                f"upgrading it: {err}", "the store was left as it was; free some space "
                "beside it and start again") from err
    db.execute("BEGIN IMMEDIATE")
    try:
        now = _version(db, layout)
        if now > layout.version:
            raise too_new(path, layout, now)
        done: list[str] = []
        if now == 0:
            for statement in layout.create:
                db.execute(statement)
        elif now < layout.version:
            done = _migrate(db, path, layout, now, backup)
        db.execute(f"PRAGMA user_version={int(layout.version)}")
        db.execute("COMMIT")
    except BaseException as err:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        if isinstance(err, sqlite3.Error):
            raise SchemaUpgradeFailed(
                f"{path}: upgrading the {layout.what} to schema version {layout.version} "
                f"failed: {err}", f"the store was left as it was; a copy is in {backup}"
                if backup else "the store was left as it was") from err
        raise
    if done:
        # a warning: seen even where logging is not set up (systemd's is-master check
        # may be the first to open the store after a package upgrade)
        log.warning("%s: upgraded the %s from schema version %d to %d (%s); the old store "
                    "is kept in %s", path, layout.what, now, layout.version, "; ".join(done),
                    backup)
    if backup is not None and now == layout.version:
        os.unlink(backup)  # upgraded by someone else meanwhile: the copy is redundant


def _version(db: sqlite3.Connection, layout: Layout) -> int:
    number = int(db.execute("PRAGMA user_version").fetchone()[0])
    return number if number else layout.unversioned(db)


def _migrate(db: sqlite3.Connection, path: str, layout: Layout, start: int,
             backup: str | None) -> list[str]:
    """Run the steps from ``start`` in the open transaction; what each did."""
    log.info("%s: upgrading the %s from schema version %d to %d (backup: %s)",
             path, layout.what, start, layout.version, backup)
    version = start
    done = []
    for origin, summary, step in layout.steps:
        if origin < version:
            continue
        try:
            step(db)
        except Exception as err:
            raise SchemaUpgradeFailed(
                f"{path}: upgrading the {layout.what} from schema version {origin} to "
                f"{origin + 1} ({summary}) failed: {err}",
                f"the store was left at version {start}; a copy is in {backup}") from err
        done.append(f"{origin} to {origin + 1}: {summary}")
        version = origin + 1
    if version != layout.version:
        raise SchemaUpgradeFailed(f"{path}: no upgrade step of the {layout.what} from "
                                  f"schema version {version}")
    return done


def make_backup(db: sqlite3.Connection, path: str, version: int) -> str:
    """Copy the store (its committed WAL content too) to a private file beside it, named
    for its version and the time: ``config.db.v1-20261204T150102.bak``."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    for attempt in range(100):
        suffix = f"-{attempt}" if attempt else ""
        target = f"{path}.v{version}-{stamp}{suffix}.bak"
        try:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             0o600))
            break
        except FileExistsError:
            continue
    else:
        raise SchemaUpgradeFailed(f"{path}: no free name for a backup beside it")
    try:
        private_file(target)
        copy = sqlite3.connect(target)
        try:
            db.backup(copy)
            # a self-contained file: the copy keeps no -wal beside it
            copy.execute("PRAGMA journal_mode=DELETE")
        finally:
            copy.close()
    except BaseException:
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target + suffix)
        raise
    return target


def check_sent(layout: Layout, sent: int | None, sender: str) -> None:
    """Refuse a replica's content sent by a cardume of another schema version."""
    if sent == layout.version:
        return
    theirs = f"schema version {sent}" if sent else "no schema version (an older cardume)"
    raise errors.WrongState(f"refused: the {layout.what} sent by {sender} has {theirs}, "
                            f"this node's cardume uses {layout.version}",
                            "run the same cardume version on the master and the master "
                            "candidates")
