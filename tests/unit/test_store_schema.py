"""Schema versions of the configuration and job stores: older stores upgraded in place after
a backup, newer ones refused untouched, a failed or killed upgrade leaves the old store, and
replicas refuse content of another schema version.

The old stores are written here with the SQL the earlier cardume ran, not with today's code.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cardume import errors, storeschema
from cardume.config import schema as config_schema
from cardume.config.store import ChangeSet, ConfigStore
from cardume.jobs import schema as jobs_schema
from cardume.jobs.store import JobStore

# what cardume wrote before stores were numbered (configuration: version 1)
OLD_CONFIG_SQL = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    uuid TEXT NOT NULL,
    name TEXT,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, uuid)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# the job store of the first release (version 1) ...
OLD_JOBS_V1_SQL = """
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
# ... and as the code before schema versions left it (version 2)
OLD_JOBS_V2_SQL = OLD_JOBS_V1_SQL + """
ALTER TABLE jobs ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN end_ts REAL;
ALTER TABLE job_log ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS jobs_seq ON jobs (seq);
CREATE INDEX IF NOT EXISTS jobs_end ON jobs (archived, end_ts);
CREATE INDEX IF NOT EXISTS job_log_seq ON job_log (seq);
"""

NODE = {"name": "node1.example.com", "primary_ip": "127.0.0.11"}
CLUSTER = {"cluster_name": "cluster.example.com"}


def old_db(path: Path, sql: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(sql)
    return db


def old_config(path: Path) -> sqlite3.Connection:
    db = old_db(path, OLD_CONFIG_SQL)
    db.executemany("INSERT INTO objects (kind, uuid, name, data) VALUES (?,?,?,?)",
                   [("node", "n1", NODE["name"], json.dumps(NODE)),
                    ("cluster", "c1", CLUSTER["cluster_name"], json.dumps(CLUSTER))])
    db.execute("INSERT INTO meta (key, value) VALUES ('serial', '7')")
    return db


def old_jobs_v2(path: Path) -> sqlite3.Connection:
    db = old_db(path, OLD_JOBS_V2_SQL)
    for job_id in (1, 2):
        db.execute("INSERT INTO jobs (id, status, data, seq, end_ts) VALUES (?,?,?,?,?)",
                   (job_id, "success", json.dumps({"id": job_id, "end_ts": 10.0 + job_id}),
                    job_id, 10.0 + job_id))
    db.execute("INSERT INTO job_log VALUES (1, 1, 5.0, 'message', 'hello', 3)")
    db.execute("INSERT INTO queue_meta VALUES ('epoch', 'e1')")
    return db


def version(path: Path | str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def backups(path: Path, old: int) -> list[str]:
    return sorted(glob.glob(f"{path}.v{old}-*.bak"))


def test_new_stores_are_created_at_the_current_version(tmp_path: Path) -> None:
    ConfigStore(str(tmp_path / "config.db")).close()
    JobStore(str(tmp_path / "queue.db")).close()
    assert version(tmp_path / "config.db") == config_schema.VERSION == 2
    assert version(tmp_path / "queue.db") == jobs_schema.VERSION == 3
    assert not glob.glob(str(tmp_path / "*.bak"))


def test_todays_config_store_is_upgraded_with_a_backup(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.db"
    writer = old_config(path)  # still open: its last writes are in the WAL only
    with caplog.at_level("WARNING", logger="cardume.storeschema"):
        store = ConfigStore(str(path))
    writer.close()
    assert version(path) == 2
    assert store.serial() == 7
    assert store.load() == {"node": {"n1": NODE}, "cluster": {"c1": CLUSTER}}
    store.apply(ChangeSet(serial=8, upserts=[("node", "n2", {"name": "node2"})]))
    store.close()
    [backup] = backups(path, 1)
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: upgraded the configuration from schema version 1 to 2 (1 to 2: check the "
        f"layout of version 1 and number it); the old store is kept in {backup}"]
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    copy = sqlite3.connect(backup)
    assert copy.execute("PRAGMA user_version").fetchone()[0] == 0
    assert copy.execute("SELECT value FROM meta WHERE key='serial'").fetchone()[0] == "7"
    assert copy.execute("SELECT COUNT(*) FROM objects").fetchone()[0] == 2
    copy.close()
    # opened again: already current, no second backup
    ConfigStore(str(path)).close()
    assert len(glob.glob(f"{path}.v*.bak")) == 1


def test_todays_job_store_is_upgraded_with_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    old_jobs_v2(path).close()
    store = JobStore(str(path))
    assert version(path) == 3
    assert store.ids() == [1, 2] and store.seq == 3
    assert store.load(1) == ({"id": 1, "end_ts": 11.0}, [(1, 5.0, "message", "hello")])
    assert store.get_meta("epoch") == "e1"
    assert store.finished_before(100.0) == [1, 2]
    store.close()
    [backup] = backups(path, 2)
    assert version(backup) == 0


def test_first_release_job_store_gets_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    db = old_db(path, OLD_JOBS_V1_SQL)
    db.execute("INSERT INTO jobs (id, status, data) VALUES (1, 'success', ?)",
               (json.dumps({"end_ts": 50.0}),))
    db.execute("INSERT INTO jobs (id, status, data) VALUES (2, 'error', '{\"end_ts\": NaN}')")
    db.close()
    store = JobStore(str(path))
    assert version(path) == 3
    assert store.finished_before(60.0) == [1]  # the end time now a column; NaN skipped
    assert store.ids() == [1, 2]
    store.close()
    assert backups(path, 1)


@pytest.mark.parametrize("kind", ["config", "jobs"])
def test_a_newer_store_is_refused_untouched(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.db"
    db = old_config(path) if kind == "config" else old_jobs_v2(path)
    db.execute("PRAGMA user_version=99")
    db.close()
    before = digest(path)
    files = sorted(os.listdir(tmp_path))
    with pytest.raises(storeschema.SchemaTooNew) as caught:
        ConfigStore(str(path)) if kind == "config" else JobStore(str(path))
    message = str(caught.value)
    highest = 2 if kind == "config" else 3
    assert str(path) in message and "version 99" in message
    assert f"at most {highest}" in message and "upgrade cardume on this node" in message
    assert "\n" not in message
    assert digest(path) == before
    assert version(path) == 99
    assert sorted(os.listdir(tmp_path)) == files  # no backup, no side file left


def test_a_failing_step_leaves_the_old_store(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "queue.db"
    db = old_db(path, OLD_JOBS_V1_SQL)
    db.execute("INSERT INTO jobs (id, status, data) VALUES (1, 'success', '{}')")
    db.close()

    def broken(conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("disk I/O error")
    layout = storeschema.Layout("job queue", 3, jobs_schema.CREATE,
                                (jobs_schema.STEPS[0], (2, "number it", broken)),
                                jobs_schema.unversioned)
    monkeypatch.setattr("cardume.jobs.store.LAYOUT", layout)
    with pytest.raises(storeschema.SchemaUpgradeFailed) as caught:
        JobStore(str(path))
    assert "from schema version 2 to 3" in str(caught.value)
    assert "left at version 1" in str(caught.value)
    # step 1 ran in the same transaction: rolled back with it
    db = sqlite3.connect(path)
    assert "seq" not in {r[1] for r in db.execute("PRAGMA table_info(jobs)")}
    assert db.execute("SELECT id FROM jobs").fetchall() == [(1,)]
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    db.close()
    assert backups(path, 1)
    monkeypatch.undo()
    JobStore(str(path)).close()  # the real steps then succeed
    assert version(path) == 3


KILLED_UPGRADE = """
import os, signal, sys
from cardume import storeschema
from cardume.config import schema

def die(db):
    schema.number_v1(db)
    db.execute("DELETE FROM objects")
    db.execute("PRAGMA user_version=2")
    os.kill(os.getpid(), signal.SIGKILL)

layout = storeschema.Layout("configuration", 2, schema.CREATE, ((1, "die", die),),
                            schema.unversioned)
storeschema.open_store(sys.argv[1], layout)
"""


def test_a_killed_upgrade_leaves_the_old_store_and_its_backup(tmp_path: Path) -> None:
    path = tmp_path / "config.db"
    old_config(path).close()
    done = subprocess.run([sys.executable, "-c", KILLED_UPGRADE, str(path)], check=False)
    assert done.returncode == -9
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM objects").fetchone()[0] == 2
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    db.close()
    assert backups(path, 1)
    store = ConfigStore(str(path))
    assert store.serial() == 7 and version(path) == 2
    store.close()


def test_check_sent_names_both_versions() -> None:
    from cardume.config.store import LAYOUT
    storeschema.check_sent(LAYOUT, 2, "node1")
    with pytest.raises(errors.WrongState) as caught:
        storeschema.check_sent(LAYOUT, 3, "node1")
    assert "schema version 3" in str(caught.value) and "uses 2" in str(caught.value)
    with pytest.raises(errors.WrongState, match="no schema version"):
        storeschema.check_sent(LAYOUT, 0, "node1")


def test_a_candidate_refuses_replicas_of_another_schema(tmp_path: Path) -> None:
    import lu_kit
    kit = lu_kit.make(tmp_path / "kit", nodes=("node1", "node2"))
    try:
        replica = kit.paths["node2"]
        serial = kit.call("node2", "config_serial")
        assert serial == kit.cfg.serial
        change = ChangeSet(serial=serial + 1, upserts=[("tag", "t1", {"name": "x"})])
        for sent in (1, 3):
            with pytest.raises(errors.WrongState, match=f"schema version {sent}"):
                kit.call("node2", "config_apply", change=change.to_dict(), schema=sent)
            with pytest.raises(errors.WrongState, match=f"schema version {sent}"):
                kit.call("node2", "config_replace", serial=serial + 1, objects=[],
                         schema=sent)
        with pytest.raises(errors.WrongState, match="no schema version"):
            kit.call("node2", "config_replace", serial=serial + 1, objects=[])
        assert kit.call("node2", "config_serial") == serial
        assert kit.call("node2", "config_apply", change=change.to_dict(),
                        schema=config_schema.VERSION)["applied"]
        queue: dict[str, Any] = {"base": 0, "seq": 1, "jobs": [], "logs": [], "next_id": 1,
                                 "meta": {}}
        with pytest.raises(errors.WrongState, match="job queue sent by .* schema version 2"):
            kit.call("node2", "queue_apply", change=queue, reset=True, schema=2)
        assert not os.path.exists(replica.queue_db)
        assert kit.call("node2", "queue_apply", change=queue, reset=True,
                        schema=jobs_schema.VERSION)["applied"]
    finally:
        kit.close()


def layout_of(path: Path | str) -> list[tuple[str, str, list[tuple[Any, ...]]]]:
    db = sqlite3.connect(path)
    try:
        names = db.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE "
                           "'sqlite_%' ORDER BY type, name").fetchall()
        return [(kind, name, db.execute(f"PRAGMA {'table' if kind == 'table' else 'index'}"
                                        f"_info({name})").fetchall()) for kind, name in names]
    finally:
        db.close()


def test_an_upgraded_store_has_the_layout_of_a_new_one(tmp_path: Path) -> None:
    old_config(tmp_path / "old-config.db").close()
    old_db(tmp_path / "old-queue.db", OLD_JOBS_V1_SQL).close()
    for name in ("old-config.db", "new-config.db"):
        ConfigStore(str(tmp_path / name)).close()
    for name in ("old-queue.db", "new-queue.db"):
        JobStore(str(tmp_path / name)).close()
    assert layout_of(tmp_path / "old-config.db") == layout_of(tmp_path / "new-config.db")
    assert layout_of(tmp_path / "old-queue.db") == layout_of(tmp_path / "new-queue.db")


OPEN_AT_ONCE = """
import sys, time
from cardume.config.store import ConfigStore
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
ConfigStore(sys.argv[1]).close()
"""


def test_daemons_opening_an_old_store_at_once_upgrade_it_once(tmp_path: Path) -> None:
    import time
    path = tmp_path / "config.db"
    old_config(path).close()
    start = str(time.time() + 1.5)  # after every interpreter has started
    procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, str(path), start])
             for _ in range(3)]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    assert version(path) == 2
    assert len(backups(path, 1)) == 1
    store = ConfigStore(str(path))
    assert store.serial() == 7 and len(store.load()["node"]) == 1
    store.close()


def test_no_upgrade_without_a_backup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    path = tmp_path / "config.db"
    old_config(path).close()
    before = digest(path)

    def full(target: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(storeschema, "private_file", full)
    with pytest.raises(storeschema.SchemaUpgradeFailed) as caught:
        ConfigStore(str(path))
    assert "cannot back up the configuration (schema version 1)" in str(caught.value)
    assert "No space left on device" in str(caught.value)
    assert digest(path) == before and version(path) == 0
    assert not glob.glob(f"{path}.v*")
