"""No key, token or configuration under a running local cluster's state is readable by
another local user (issue 11, items 1 and 2).

One cluster for the module, in a directory every user may traverse (pytest's own temporary
directories are 0700 and would hide everything, making the test pass for the wrong reason).
It is exercised so that every kind of file exists: candidates holding config and queue
replicas, jobs, an instance on a file disk with a real OS definition, a node removed and
joined again with its token, a mistyped ``gnt-node add`` carrying a valid token, and a
master failover to node2 and back. At three moments (node3 waiting to rejoin, node2 the
master, node1 the master again) the whole tree is looked at twice: by an unprivileged probe
(uid/gid 65534, no groups) that tries to list every directory, read every file and connect
to every socket, and by root, which checks the modes of what holds secrets.

Each check carries a positive control: next to the cluster sits a world-traversable
directory of planted leaks (a PEM private key, a job store whose -wal file is 0644 and holds
a join token, a 0644 log, a socket anyone may connect to) that the same probe and scanner
must report, so a blind probe cannot pass.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from integration_kit import VCluster, install_dummy_os, start_cluster, stop_cluster
from security_kit import (
    NOBODY,
    Entry,
    ProbeReport,
    key_needles,
    private_problems,
    probe_as_nobody,
    readable_leaks,
    tree,
    what_it_holds,
)

NODES = ("node1", "node2", "node3")
STORES = ("config.db", "config.db-wal", "config.db-shm",
          "queue.db", "queue.db-wal", "queue.db-shm")
REDACTED_LINE = "join_token: <redacted>"
PLANTED_TOKEN = "cardume-join:v1:" + "c0" * 32 + ":" + secrets.token_urlsafe(32)
PLANTED = "the planted token's secret"


@dataclass
class Look:
    """The tree at one moment: root's listing, what nobody got, and both verdicts."""
    when: str
    master: str
    entries: list[Entry]
    report: ProbeReport
    leaks: list[str]     # what nobody could read or connect to, and what it held
    problems: list[str]  # as root: private things with group/other bits


@dataclass
class Scene:
    base: Path
    cluster: VCluster
    control: Path
    tokens: list[str] = field(default_factory=list)
    looks: list[Look] = field(default_factory=list)
    mistyped: tuple[int, str, str] = (0, "", "")
    job_views: dict[str, str] = field(default_factory=dict)


def under(lines: list[str], top: Path) -> list[str]:
    """The report lines about paths under ``top``."""
    return [line for line in lines if line.startswith(f"{top}/")]


# --- planted leaks: what the probe and the scanner must catch -----------------------------


@contextlib.contextmanager
def planted_leaks(control: Path) -> Iterator[None]:
    """Open files of each kind the cluster must not have, in a directory anyone may enter:
    a private key, a job store in WAL mode made the way the issue found the real one (side
    files 0644) holding a join token, a log carrying a token, and a socket anyone may
    connect to. Everything is closed when the block ends."""
    control.mkdir(mode=0o755)
    control.chmod(0o755)
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    (control / "leaked-key.pem").write_bytes(key)
    (control / "log").mkdir(mode=0o755)
    (control / "log" / "noded.log").write_text(f"INFO join token {PLANTED_TOKEN}\n")
    store = sqlite3.connect(control / "queue.db")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        store.execute("PRAGMA journal_mode=WAL")
        store.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, data TEXT)")
        store.execute("INSERT INTO jobs (data) VALUES (?)",
                      (f'{{"join_token": "{PLANTED_TOKEN}"}}',))
        store.commit()  # kept open: closing would fold the -wal file back and delete it
        sock.bind(str(control / "master.sock"))
        sock.listen(4)
        (control / "log").chmod(0o755)
        for path in (control / "leaked-key.pem", control / "log" / "noded.log",
                     control / "queue.db", control / "queue.db-wal", control / "queue.db-shm",
                     control / "master.sock"):
            path.chmod(0o666 if path.is_socket() else 0o644)
        yield
    finally:
        sock.close()
        store.close()


# --- what to look for, and a look at the tree ---------------------------------------------


def read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def needles(vc: VCluster, tokens: list[str]) -> dict[str, bytes]:
    """The secrets whose presence in a file others can read is a leak, by label: the join
    tokens' secrets, the cluster CA's key (from the master's configuration store) and each
    node's key."""
    found = {PLANTED: PLANTED_TOKEN.rsplit(":", 1)[1].encode()}
    for index, token in enumerate(sorted(set(tokens)), 1):
        found[f"the secret of join token #{index}"] = token.rsplit(":", 1)[1].encode()
    master = vc.node_dir(vc.master())
    ca = key_needles(read(master / "config.db") + read(master / "config.db-wal"),
                     "the cluster CA's private key")
    assert ca, f"no cluster CA key found in {master}/config.db*: the scanner would be blind"
    found.update(ca)
    for node in NODES:
        found.update(key_needles(read(vc.node_dir(node) / "certs" / "node-key.pem"),
                                 f"{node}'s private key"))
    return found


# Runtime files (pid files, the master's socket, call records) are private whatever they
# hold: the socket is the master's front door, the records name the node's processes.
RUNTIME = re.compile(r"/nodes/[^/]+/run/")


def look(scene: Scene, when: str) -> Look:
    vc = scene.cluster
    wanted = needles(vc, scene.tokens)
    entries = tree(str(scene.base))
    report = probe_as_nobody(entries, str(scene.base))
    return Look(when=when, master=vc.master(), entries=entries, report=report,
                leaks=readable_leaks(entries, report, wanted),
                problems=private_problems(entries, wanted, RUNTIME))


def job_id(vc: VCluster, summary: str) -> int:
    """The newest job whose summary is ``summary``."""
    out = vc.gnt("gnt-job", "list", "--no-headers", "-o", "id,summary")[1]
    ids = [int(line.split()[0]) for line in out.splitlines() if line.split()[1:] == [summary]]
    assert ids, f"no job {summary} in:\n{out}"
    return ids[-1]


def job_views(vc: VCluster, jobs: list[int], node: str | None = None) -> str:
    """What an admin sees of these jobs: gnt-job info, and the opcodes, logs and results
    gnt-job list shows."""
    ids = [str(job) for job in jobs]
    info = vc.gnt("gnt-job", "info", *ids, node=node)[1]
    listed = vc.gnt("gnt-job", "list", "-o", "id,ops,oplog,opresult", *ids, node=node)[1]
    return info + listed


@pytest.fixture(scope="module")
def scene() -> Iterator[Scene]:
    base = Path(tempfile.mkdtemp(prefix="cardume-sec-", dir="/tmp"))
    try:
        base.chmod(0o755)
        closed = [str(p) for p in (base, *base.parents) if not os.stat(p).st_mode & 0o001]
        assert not closed, f"{closed} may not be traversed by others: the probe would be blind"
        control = base / "control"
        with planted_leaks(control):
            vc = start_cluster(base)
            try:
                yield exercise(Scene(base, vc, control))
            finally:
                stop_cluster(vc)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def exercise(scene: Scene) -> Scene:
    vc = scene.cluster
    install_dummy_os(vc, {"vm1": "127.0.9.1"})
    assert vc.roles() == {"node1": "M", "node2": "C", "node3": "C"}
    vc.gnt("gnt-debug", "delay", "0.1")

    # node3 leaves and waits with a fresh token; the admin mistypes the node's name
    vc.gnt("gnt-node", "remove", "node3")
    scene.tokens.append(vc.join_token("node3"))
    scene.mistyped = vc.gnt("gnt-node", "add", "--join-token", scene.tokens[-1], "wrongname",
                            check=False)
    assert scene.mistyped[0] != 0, scene.mistyped
    scene.looks.append(look(scene, "node3 waits to rejoin, after a mistyped add"))

    # node3 joins later, gets a file instance made by a real OS definition
    scene.tokens.append(vc.join_token("node3"))
    vc.gnt("gnt-node", "add", "--join-token", scene.tokens[-1], "node3")
    vc.gnt("gnt-instance", "add", "-t", "file", "--disk", "0:size=64m", "-o", "dummy+default",
           "-n", "node3", "vm1")
    adds = [job_id(vc, "NODE_ADD(wrongname)"), job_id(vc, "NODE_ADD(node3)")]

    # the master role moves to node2 (which takes the queue over) and back
    vc.gnt("gnt-cluster", "master-failover", node="node2")
    assert vc.master() == "node2"
    vc.gnt("gnt-debug", "delay", "0.1")
    scene.job_views["node2 the master"] = job_views(vc, adds)
    scene.looks.append(look(scene, "node2 is the master"))
    vc.gnt("gnt-cluster", "master-failover", node="node1")
    assert vc.master() == "node1"
    vc.gnt("gnt-debug", "delay", "0.1")
    scene.job_views["node1 the master again"] = job_views(vc, adds)
    scene.looks.append(look(scene, "node1 is the master again"))
    return scene


# --- the checks ---------------------------------------------------------------------------


def test_no_file_others_can_read_holds_a_secret(scene: Scene) -> None:
    for seen in scene.looks:
        report = seen.report
        assert (report.uid, report.gid, report.groups) == (NOBODY, NOBODY, []), seen.when
        # the probe reached the cluster: every ancestor of the node directories let it pass
        nodes = scene.cluster.root / "nodes"
        assert report.seen[str(nodes)].listed, (seen.when, report.seen[str(nodes)])
        # positive control: the planted leaks are found, each for what it holds
        planted = "\n".join(under(seen.leaks, scene.control))
        for name, held in (("leaked-key.pem", "a PEM private key"),
                           ("queue.db-wal", "an SQLite write-ahead log"),
                           ("queue.db-wal", PLANTED),
                           ("queue.db", "an SQLite database"),
                           ("log/noded.log", "a join token")):
            assert any(line.startswith(f"{scene.control / name} mode 0644") and held in line
                       for line in planted.splitlines()), (name, held, planted)

        leaks = under(seen.leaks, scene.cluster.root)
        assert not leaks, (f"{seen.when}: uid {NOBODY} got at secrets:\n" + "\n".join(leaks))


def test_others_can_neither_use_the_master_socket_nor_read_logs(scene: Scene) -> None:
    for seen in scene.looks:
        probe = seen.report.seen
        control_socket = probe[str(scene.control / "master.sock")]
        assert control_socket.connected, control_socket  # positive control
        assert probe[str(scene.control / "log" / "noded.log")].data is not None

        master_sock = str(scene.cluster.node_dir(seen.master) / "run" / "master.sock")
        kinds = {e.path: e.kind for e in seen.entries}
        assert kinds.get(master_sock) == "s", f"{seen.when}: no socket {master_sock}"
        assert not probe[master_sock].connected, f"{seen.when}: uid {NOBODY} connected"
        assert probe[master_sock].error in ("EACCES", "EPERM"), probe[master_sock]

        logs = [e.path for e in seen.entries if e.kind == "f"
                and e.path.startswith(f"{scene.cluster.root}/")
                and "a log" in what_it_holds(e.path, None, {})]
        expected = {str(scene.cluster.node_dir(n) / "log" / "noded.log") for n in NODES}
        expected.add(str(scene.cluster.node_dir(seen.master) / "log" / "masterd.log"))
        assert expected <= set(logs), (seen.when, sorted(expected - set(logs)))
        read_by_others = [f"{path}: {probe[path].data!r:.80}" for path in logs
                          if path in probe and probe[path].data is not None]
        assert not read_by_others, f"{seen.when}: uid {NOBODY} read logs: {read_by_others}"
        refused = {probe[path].error for path in logs if path in probe}
        assert refused <= {"EACCES", "EPERM"}, (seen.when, refused)


def test_keys_tokens_config_logs_and_runtime_files_are_private_to_root(scene: Scene) -> None:
    root = scene.cluster.root
    for seen in scene.looks:
        # positive control: root's check names each planted file and their directory
        planted = "\n".join(under(seen.problems, scene.control))
        for name in ("leaked-key.pem", "queue.db", "queue.db-wal", "queue.db-shm",
                     "log/noded.log", "master.sock"):
            assert f"{scene.control / name} mode 06" in planted, (name, planted)
        assert f"{scene.control}/ mode 0755 holds" in planted, planted

        problems = under(seen.problems, root)
        assert not problems, (f"{seen.when}: open to group or others:\n"
                              + "\n".join(problems))

        # the stores and their SQLite side files exist on every node holding a replica, so
        # the mode check above saw them; node3 is the node that joined later
        modes = {e.path: e.mode for e in seen.entries}
        members = ("node1", "node2") if seen.when.startswith("node3 waits") else NODES
        for node in members:
            for name in STORES:
                path = str(scene.cluster.node_dir(node) / name)
                assert path in modes, f"{seen.when}: {path} missing"
                assert modes[path] & 0o077 == 0, f"{path} mode {modes[path]:04o}"
        for node in NODES:
            for sub in ("", "certs", "log", "run"):
                path = str(scene.cluster.node_dir(node) / sub).rstrip("/")
                assert modes.get(path) == 0o700, (seen.when, path, oct(modes.get(path, 0)))

    # while node3 waited to rejoin it had a join secret: private, and seen by the check
    first = {e.path: e.mode for e in scene.looks[0].entries}
    secret_file = str(scene.cluster.node_dir("node3") / "certs" / "join-secret")
    assert first.get(secret_file) == 0o600, (secret_file, first.get(secret_file))


def test_job_info_never_shows_a_join_token(scene: Scene) -> None:
    rc, out, err = scene.mistyped
    assert "wrongname" in err
    shown = {"the mistyped add's output": out + err, **scene.job_views}
    for when, text in shown.items():
        assert "cardume-join:v1:" not in text, f"{when}: a join token is shown"
        held = [i for i, token in enumerate(scene.tokens, 1)
                if token.rsplit(":", 1)[1] in text]
        assert not held, f"{when}: the secret of join token(s) {held} is shown"
    for when, text in scene.job_views.items():
        # gnt-job info of the mistyped add and of the real one, then their opcodes listed
        assert text.count(REDACTED_LINE) == 2, (when, text)
        assert text.count("'join_token': '<redacted>'") == 2, (when, text)


def test_no_file_of_any_node_holds_a_spent_token(scene: Scene) -> None:
    """Not in a log, and not on disk at all once spent: a job store's old pages and WAL
    frames would keep what a job once held, so a token is never written there."""
    logs = [p for p in scene.cluster.root.glob("nodes/*/log/**/*") if p.is_file()]
    assert {p.name for p in logs} >= {"noded.log", "masterd.log"}, logs
    files = [p for p in scene.cluster.root.glob("nodes/**/*") if p.is_file()]
    assert {p.name for p in files} >= {"queue.db", "queue.db-wal", "config.db-wal"}
    secrets_ = [token.rsplit(":", 1)[1].encode() for token in scene.tokens]
    for path in files:
        data = path.read_bytes()
        assert b"cardume-join:v1:" not in data, f"{path} holds a join token"
        assert not [s for s in secrets_ if s in data], f"{path} holds a join token's secret"
