"""A cluster whose master's stores were written by an older cardume comes back upgraded:
the cluster stopped (`cardume vcluster down`, no purge), the master's config.db rewritten
with the layout cardume wrote before stores carried a schema version, `vcluster up` again
→ the instances are there, the store is at today's version, a backup of the old one beside
it. Then a store of a future version: the master daemon refuses to start, says why in one
line (to `vcluster up` and in its log), and leaves the file as it was."""

from __future__ import annotations

import glob
import hashlib
import os
import sqlite3
import stat
from pathlib import Path

from integration_kit import VCluster

from cardume.config import schema as config_schema
from cardume.jobs import schema as jobs_schema
from cardume.paths import NodePaths

# the configuration's tables as cardume created them before schema versions (version 1)
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


def rewrite_as_version_1(path: str) -> int:
    """Copy every row into a new file made with the old SQL (no version number); the
    number of objects."""
    current = sqlite3.connect(path)
    rows = current.execute("SELECT kind, uuid, name, data FROM objects").fetchall()
    meta = current.execute("SELECT key, value FROM meta").fetchall()
    current.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA journal_mode=WAL")
    old.executescript(OLD_CONFIG_SQL)
    old.executemany("INSERT INTO objects VALUES (?,?,?,?)", rows)
    old.executemany("INSERT INTO meta VALUES (?,?)", meta)
    old.close()
    return len(rows)


def user_version(path: str, value: int | None = None) -> int:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        if value is not None:
            db.execute(f"PRAGMA user_version={int(value)}")
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def instances(cluster: VCluster) -> list[str]:
    return cluster.gnt("gnt-instance", "list", "--no-headers", "-o", "name")[1].split()


def add(cluster: VCluster, name: str) -> None:
    cluster.gnt("gnt-instance", "add", "-t", "diskless", "--no-install", "-n", "node1",
                "--no-name-check", "--no-ip-check", "--no-start", name)


def test_older_store_upgraded_newer_refused(cluster: VCluster) -> None:
    add(cluster, "vm1")
    add(cluster, "vm2")
    master = NodePaths(str(cluster.node_dir(cluster.master())))
    jobs_before = cluster.gnt("gnt-job", "list", "--no-headers", "-o", "id,status")[1]

    cluster.down(purge=False)
    assert cluster.all_pids() == []
    assert user_version(master.config_db) == config_schema.VERSION
    count = rewrite_as_version_1(master.config_db)
    assert user_version(master.config_db) == 0
    # the job store of the code before versions had today's tables, unnumbered (2)
    user_version(master.queue_db, 0)

    cluster.up()
    assert instances(cluster) == ["vm1", "vm2"]
    assert user_version(master.config_db) == config_schema.VERSION
    assert user_version(master.queue_db) == jobs_schema.VERSION
    assert cluster.gnt("gnt-job", "list", "--no-headers", "-o", "id,status")[1] == jobs_before
    [backup] = glob.glob(master.config_db + ".v1-*.bak")
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    copy = sqlite3.connect(backup)
    assert copy.execute("SELECT COUNT(*) FROM objects").fetchone()[0] == count
    assert copy.execute("PRAGMA user_version").fetchone()[0] == 0
    copy.close()
    assert glob.glob(master.queue_db + ".v2-*.bak")
    log = Path(master.logfile("masterd")).read_text()
    assert "upgraded the configuration from schema version 1 to 2 (1 to 2: check the " \
        f"layout of version 1 and number it); the old store is kept in {backup}" in log
    version = cluster.gnt("gnt-cluster", "version")[1]
    assert f"Configuration format: {config_schema.VERSION}\n" in version
    add(cluster, "vm3")  # the upgraded store takes writes, the candidates their replicas
    rc, out, err = cluster.gnt("gnt-cluster", "verify", check=False)
    assert rc == 0, out + err

    cluster.down(purge=False)
    user_version(master.config_db, 99)
    digest = hashlib.sha256(Path(master.config_db).read_bytes()).hexdigest()
    rc, out, err = cluster.cardume("vcluster", "up", "--nodes", str(cluster.nodes), "--root",
                                   str(cluster.root), "--base-ip", cluster.base_ip,
                                   check=False)
    assert rc != 0
    refusal = (f"{master.config_db}: configuration schema version 99 is newer than this "
               f"cardume knows (at most {config_schema.VERSION}) (upgrade cardume on this "
               "node; the file was left untouched)")
    assert refusal in out + err
    assert f"cardume-masterd: {refusal}" in Path(master.logfile("masterd")).read_text()
    assert cluster.pid("node1", "masterd") is None
    assert hashlib.sha256(Path(master.config_db).read_bytes()).hexdigest() == digest
    assert not glob.glob(master.config_db + ".v99-*")

    # back to this cardume's version, the cluster starts again as it was
    cluster.down(purge=False)
    user_version(master.config_db, config_schema.VERSION)
    cluster.up()
    assert instances(cluster) == ["vm1", "vm2", "vm3"]


def test_candidate_with_a_newer_store_refuses_replicas_and_the_master_logs_it(
        cluster: VCluster) -> None:
    from integration_kit import wait_for
    roles = cluster.roles()
    candidate = next(name for name, role in sorted(roles.items()) if role == "C")
    replica = NodePaths(str(cluster.node_dir(candidate)))
    master = NodePaths(str(cluster.node_dir(cluster.master())))
    cluster.down(purge=False)
    user_version(replica.config_db, 99)
    digest = hashlib.sha256(Path(replica.config_db).read_bytes()).hexdigest()
    cluster.up()
    add(cluster, "vm-refused")  # a commit the master replicates to the candidates
    masterd_log = Path(master.logfile("masterd"))
    line = (f"replication to {candidate} failed: {replica.config_db}: configuration schema "
            "version 99 is newer than this cardume knows")
    wait_for(lambda: line in masterd_log.read_text(), 30, "the master to log the refusal")
    assert hashlib.sha256(Path(replica.config_db).read_bytes()).hexdigest() == digest

    cluster.down(purge=False)
    user_version(replica.config_db, config_schema.VERSION)
    cluster.up()
    rc, out, err = cluster.gnt("gnt-cluster", "verify", check=False)
    assert rc == 0, out + err
