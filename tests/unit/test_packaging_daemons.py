"""A real node's daemons under systemd: the FHS layout of NodePaths, the master unit's
condition (``python3 -m cardume.daemons is-master``), readiness (sdnotify) and starting the
master daemon through systemctl (a stand-in systemctl records what it was asked)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cardume import daemons, objects, paths, sdnotify
from cardume.config.store import ConfigStore
from cardume.config.writer import ConfigWriter
from cardume.paths import NodePaths

SRC = str(Path(__file__).resolve().parents[2] / "src")


# --- the FHS layout --------------------------------------------------------------------------

def test_real_node_uses_the_four_fhs_places() -> None:
    node = NodePaths("/var/lib/cardume")
    assert node.fhs
    assert node.config_db == "/var/lib/cardume/config.db"
    assert node.ssconf == "/var/lib/cardume/ssconf.json"
    assert node.master_socket == "/run/cardume/master.sock"
    assert node.pidfile("noded") == "/run/cardume/noded.pid"
    assert node.rapi_address == "/run/cardume/rapi.json"
    assert node.logfile("masterd") == "/var/log/cardume/masterd.log"
    assert node.settings("daemons.env") == "/etc/cardume/daemons.env"
    assert NodePaths("/var/lib/cardume/") == NodePaths("/var/lib/cardume/")
    assert NodePaths("/var/lib/cardume/").master_socket == "/run/cardume/master.sock"


def test_a_local_cluster_node_keeps_everything_under_its_directory(tmp_path: Path) -> None:
    node = NodePaths(str(tmp_path / "nodes" / "node1"))
    assert not node.fhs
    for path in (node.master_socket, node.pidfile("noded"), node.logfile("noded"),
                 node.rapi_address, node.settings("x"), node.config_db):
        assert path.startswith(str(tmp_path / "nodes" / "node1") + os.sep)
    node.make_private()
    for directory in (node.root, node.run, node.log_dir, node.certs):
        assert os.stat(directory).st_mode & 0o777 == 0o700


def test_explicit_directories_override_the_defaults(tmp_path: Path) -> None:
    node = NodePaths("/var/lib/cardume", run_dir=str(tmp_path / "run"))
    assert node.master_socket == str(tmp_path / "run" / "master.sock")
    assert not node.fhs  # not the real layout: never handed to systemd
    assert node != NodePaths("/var/lib/cardume")


def test_commands_on_a_real_node_look_in_the_fhs_places() -> None:
    assert paths.local_node_paths({}) == NodePaths("/var/lib/cardume")
    assert paths.local_node_paths({}).master_socket == "/run/cardume/master.sock"


# --- is this node the master? ---------------------------------------------------------------

def _node(tmp_path: Path, name: str, master: str | None, serial: int = 3) -> NodePaths:
    node = NodePaths(str(tmp_path / name))
    os.makedirs(node.root)
    paths.write_json_atomic(node.identity, {"name": name})
    if master is not None:
        paths.write_json_atomic(node.ssconf, {"master_node": master, "serial": serial,
                                              "cluster_name": "c.example.com"})
    return node


def _is_master(node: NodePaths) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cardume.daemons", "is-master", "--root",
                           node.root], capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, PYTHONPATH=SRC), check=False)


def test_condition_says_master_only_on_the_master(tmp_path: Path) -> None:
    master = _is_master(_node(tmp_path, "node1.example.com", "node1.example.com"))
    assert master.returncode == 0, master.stderr
    assert "node1.example.com) is the master" in master.stdout
    other = _is_master(_node(tmp_path, "node2.example.com", "node1.example.com"))
    assert other.returncode == 1
    assert "the master is node1.example.com" in other.stdout
    lone = _is_master(_node(tmp_path, "node3.example.com", None))
    assert lone.returncode == 1
    assert "not part of a cluster" in lone.stdout


def _replica(node: NodePaths, master_name: str) -> None:
    cfg = ConfigWriter(ConfigStore(node.config_db))
    group = objects.NodeGroup(name="default")
    members = [objects.Node(name=n, primary_ip=f"127.0.0.{i + 11}", group=group.uuid,
                            master_candidate=True)
               for i, n in enumerate(("node1.example.com", "node2.example.com"))]
    master = next(n for n in members if n.name == master_name)
    cluster = objects.Cluster(cluster_name="c.example.com", master_node=master.uuid)
    asyncio.run(cfg.commit(add=[cluster, group, *members]))
    for _ in range(3):  # serial 4: newer than the ssconf's 3
        asyncio.run(cfg.commit(update=[cfg.edit(cfg.get_cluster())]))
    cfg.store.close()


def test_condition_follows_a_newer_configuration_replica(tmp_path: Path) -> None:
    """master-failover commits the new master to its replica before the master daemon
    starts; the ssconf it still has names the old master."""
    node = _node(tmp_path, "node2.example.com", "node1.example.com", serial=3)
    _replica(node, "node2.example.com")
    assert daemons.master_check(node)[0]
    old = _node(tmp_path, "node1.example.com", "node1.example.com", serial=9)
    _replica(old, "node2.example.com")  # serial 4 < 9: the ssconf is newer and wins
    assert daemons.master_check(old)[0]


# --- readiness --------------------------------------------------------------------------------

def test_ready_reaches_the_notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        assert sdnotify.ready("listening")
        assert sock.recv(200) == b"READY=1\nSTATUS=listening"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not sdnotify.ready()  # outside systemd: nothing to tell


def test_abstract_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"cardume-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert sdnotify.notify("READY=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"READY=1"


def test_log_lines_leave_the_time_to_the_journal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert sdnotify.log_format("noded").startswith("%(asctime)s noded ")
    st = os.fstat(2)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    assert sdnotify.log_format("noded") == "noded %(levelname)s %(message)s"


# --- systemctl instead of spawning ----------------------------------------------------------

@pytest.fixture
def systemd_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[NodePaths, Path]:
    """A real-layout node whose directories are under tmp_path, systemd 'running', the
    units 'installed', and a systemctl that records its arguments and the once-only
    environment file, then writes a live pid (the test's own) as the daemon would."""
    run = tmp_path / "run"
    node = NodePaths(str(tmp_path / "state"), run_dir=str(run),
                     log_dir=str(tmp_path / "log"), etc_dir=str(tmp_path / "etc"))
    monkeypatch.setattr(NodePaths, "fhs", property(lambda self: True))  # nothing in /var
    (tmp_path / "systemd").mkdir()
    (tmp_path / "units").mkdir()
    (tmp_path / "units" / "cardume-masterd.service").write_text("[Service]\n")
    monkeypatch.setattr(daemons, "SYSTEMD_RUNNING", str(tmp_path / "systemd"))
    monkeypatch.setattr(daemons, "UNIT_DIRS", (str(tmp_path / "units"),))
    record = tmp_path / "systemctl.log"
    fake = tmp_path / "systemctl"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >>"{record}"\n'
        f'cat "{run}/masterd.once.env" >>"{record}" 2>/dev/null\n'
        f'[ "$1" = start ] && echo {os.getpid()} >"{run}/masterd.pid"\n'
        f'[ "$1" = stop ] && rm -f "{run}/masterd.pid"\n'
        "exit 0\n")
    fake.chmod(0o755)
    monkeypatch.setattr(daemons, "SYSTEMCTL", str(fake))
    return node, record


def test_master_daemon_started_and_stopped_through_systemctl(
        systemd_node: tuple[NodePaths, Path]) -> None:
    node, record = systemd_node
    assert daemons.unit_of(node, "masterd") == "cardume-masterd.service"
    assert daemons.unit_of(node, "noded") is None  # its unit is not installed here
    assert daemons.unit_of(node, "rapi") is None  # always the master daemon's child
    assert daemons.start(node, "masterd", extra=["--no-voting"]) == os.getpid()
    assert record.read_text().splitlines() == [
        "start cardume-masterd.service", "CARDUME_ONCE_ARGS=--no-voting"]
    assert not os.path.exists(daemons.once_env(node, "masterd"))  # for that start only
    assert daemons.stop(node, "masterd")
    assert record.read_text().splitlines()[-1] == "stop cardume-masterd.service"


def test_only_known_arguments_go_to_the_unit(systemd_node: tuple[NodePaths, Path]) -> None:
    node, record = systemd_node
    with pytest.raises(Exception, match="cannot pass --bogus"):
        daemons.start(node, "masterd", extra=["--bogus"])
    assert not record.exists()


def test_local_cluster_nodes_never_use_systemctl(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "systemd").mkdir()
    (tmp_path / "cardume-masterd.service").write_text("[Service]\n")
    monkeypatch.setattr(daemons, "SYSTEMD_RUNNING", str(tmp_path / "systemd"))
    monkeypatch.setattr(daemons, "UNIT_DIRS", (str(tmp_path),))
    assert daemons.unit_of(NodePaths(str(tmp_path / "nodes" / "node1")), "masterd") is None
    assert daemons.unit_of(NodePaths("/var/lib/cardume"), "masterd") == \
        "cardume-masterd.service"
