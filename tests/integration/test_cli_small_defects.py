"""Small defects of issue 11, each as an admin meets it on a running local cluster: names
too long for the files they become, non-ASCII tags, the CLI run by a user who may not use
the master's socket, submit-job across a master restart, the token after gnt-node remove,
and vcluster up keeping an existing cluster's size."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_kit import (
    BIN,
    Gnt,
    VCluster,
    os_cluster,
    pid_alive,
    run,
    start_cluster,
    stop_cluster,
    wait_for,
)

MAX_NAME = 200  # cmdlib.common.MAX_NAME_LENGTH, as an admin reads it in the error
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
WHO_MAY = "the gnt-* commands must run as root (or a user who may open the socket)"
TAG_RULE = "expected 1-128 ASCII letters, digits or .+*/:@_-"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    with os_cluster(tmp_path_factory.mktemp("smalldefects")) as vc:
        yield vc


@pytest.fixture(scope="module")
def gnt(cluster: VCluster) -> Gnt:
    return cluster.gnt


def one_line_error(rc: int, out: str, err: str, code: str = "wrong_input") -> str:
    assert rc != 0, out + err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"Failure: {code}: "), err
    return lines[0]


def instances(gnt: Gnt) -> list[str]:
    return gnt("gnt-instance", "list", "--no-headers", "-o", "name")[1].split()


def dns_name(length: int, last: str = "a") -> str:
    """A DNS name of that many characters: 63-character labels, the last letter given."""
    name = ".".join(["a" * 63] * (length // 64 + 1))[:length - 1] + last
    assert "." not in name[-2:], name
    return name


# --- (a) names --------------------------------------------------------------------------


def test_longest_name_runs_its_os_scripts_and_longer_ones_are_refused(
        cluster: VCluster, gnt: Gnt) -> None:
    longest, renamed = dns_name(MAX_NAME), dns_name(MAX_NAME, "b")
    no_checks = ["--no-name-check", "--no-ip-check"]
    gnt("gnt-instance", "add", "-t", "diskless", "-o", "dummy+default", "--no-start",
        *no_checks, "-n", "node1", longest)
    gnt("gnt-instance", "rename", "-f", *no_checks, longest, renamed)
    assert renamed in instances(gnt)
    # the OS scripts' logs are named after the instance: they fit
    os_logs = cluster.node_dir("node1") / "log" / "os"
    logs = sorted(p.name.split("-", 1)[0] for p in os_logs.glob(f"*-{longest[:60]}*"))
    assert logs == ["create", "rename"]

    before = (cluster.snapshot(), instances(gnt))
    too_long = dns_name(253)  # what passed before, then failed on the log file's name
    expected = (f"Failure: wrong_input: instance name '{too_long[:32]}...' is too long: "
                f"253 characters, at most {MAX_NAME}")
    rc, out, err = gnt("gnt-instance", "add", "-t", "diskless", "-o", "dummy+default",
                       *no_checks, "-n", "node1", too_long, check=False)
    assert one_line_error(rc, out, err) == expected
    rc, out, err = gnt("gnt-instance", "rename", "-f", *no_checks, renamed, too_long,
                       check=False)
    assert one_line_error(rc, out, err) == expected
    for bad in ("vm_1", "vm1-", "vm1..example", "vm\u00e91", "a" * 64):
        rc, out, err = gnt("gnt-instance", "add", "-t", "diskless", "-o", "dummy+default",
                           *no_checks, "-n", "node1", bad, check=False)
        line = one_line_error(rc, out, err)
        assert line.startswith("Failure: wrong_input: invalid instance name '"), line
        assert ("DNS name" in line or "at most 63" in line) and bad[:32] in line, line
    assert (cluster.snapshot(), instances(gnt)) == before
    gnt("gnt-instance", "remove", "-f", renamed)


def test_node_names_are_dns_names(cluster: VCluster, gnt: Gnt) -> None:
    before = cluster.snapshot()
    for bad in ("node_4", dns_name(201)):
        rc, out, err = gnt("gnt-node", "add", "--join-token", "x", bad, check=False)
        line = one_line_error(rc, out, err)
        assert "node name '" in line and bad[:32] in line, line
    assert cluster.snapshot() == before


# --- (f) tags ---------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "target"), [
    ("gnt-cluster", []), ("gnt-node", ["node2"]), ("gnt-group", ["default"]),
    ("gnt-instance", ["tagged"]),
])
def test_tags_follow_ganeti_ascii_rule(cluster: VCluster, gnt: Gnt, command: str,
                                       target: list[str]) -> None:
    if command == "gnt-instance" and "tagged" not in instances(gnt):
        gnt("gnt-instance", "add", "-t", "diskless", "--no-install", "--no-start",
            "--no-name-check", "--no-ip-check", "-n", "node1", "tagged")
    listed = gnt(command, "list-tags", *target)[1]
    for bad in ("caf\u00e9", "\u0661\u0662", "x" * 129, "bad tag"):
        rc, out, err = gnt(command, "add-tags", *target, "ok", bad, check=False)
        line = one_line_error(rc, out, err)
        shown = bad if len(bad) <= 40 else bad[:32] + "..."
        assert line == f"Failure: wrong_input: invalid tag {shown!r}: {TAG_RULE}"
    assert gnt(command, "list-tags", *target)[1] == listed
    gnt(command, "add-tags", *target, "rack:r1", "a.b+c*d/e@f_g-h")
    assert {"rack:r1", "a.b+c*d/e@f_g-h"} <= set(gnt(command, "list-tags", *target)[1].split())
    gnt(command, "remove-tags", *target, "rack:r1", "a.b+c*d/e@f_g-h")
    assert gnt(command, "list-tags", *target)[1] == listed


# --- (b) a user who may not use the master's socket -------------------------------------


def as_nobody(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    if os.geteuid() != 0:
        pytest.skip("needs root to run a command as another user")
    return run([*NOBODY, *argv], env, check=False)


@pytest.mark.parametrize("command", [
    ["gnt-node", "list"], ["gnt-cluster", "getmaster"], ["gnt-cluster", "info"],
    ["gnt-cluster", "master-ping"], ["gnt-job", "list"], ["gnt-debug", "delay", "0"],
    ["gnt-instance", "add", "-t", "diskless", "--no-install", "-n", "node1", "vm1"],
    ["gnt-cluster", "add-tags", "mine"],
])
def test_unprivileged_user_gets_one_line(cluster: VCluster, command: list[str]) -> None:
    """Whatever stops them first (the state directories, ssconf, the socket), one line
    saying who may, and nothing done."""
    jobs = cluster.gnt("gnt-job", "list", "--no-headers", "-o", "id")[1]
    rc, out, err = as_nobody([str(BIN / command[0]), *command[1:]], cluster.env())
    line = one_line_error(rc, out, err, "environment_error")
    assert out == ""
    assert line.startswith("Failure: environment_error: permission denied on "), line
    assert line.endswith(WHO_MAY), line
    assert cluster.gnt("gnt-job", "list", "--no-headers", "-o", "id")[1] == jobs


def test_socket_denied_names_the_socket_and_who_may_use_it() -> None:
    """State readable by all, but a socket only root may open: the line names the socket,
    its owner and mode."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a command as another user")
    root = Path(tempfile.mkdtemp(prefix="cardume-sock-", dir="/tmp"))  # nobody may enter
    try:
        run_dir = root / "nodes" / "node1" / "run"
        run_dir.mkdir(parents=True)
        for path in (root, root / "nodes", root / "nodes" / "node1", run_dir):
            path.chmod(0o755)
        (root / "nodes" / "node1" / "ssconf.json").write_text(
            json.dumps({"master_node": "node1", "serial": 1}))
        sock_path = run_dir / "master.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(str(sock_path))
            server.listen()
            sock_path.chmod(0o600)
            env = {"CARDUME_ROOT": str(root), "PATH": "/usr/bin:/bin"}
            rc, out, err = as_nobody([str(BIN / "gnt-node"), "list"], env)
        line = one_line_error(rc, out, err, "environment_error")
        assert line == (f"Failure: environment_error: permission denied on {sock_path} "
                        f"(owner root, group root, mode 0600): {WHO_MAY}")
    finally:
        shutil.rmtree(root)


# --- (c) submit-job across a master restart ---------------------------------------------


def job_status(cluster: VCluster, job: int) -> str:
    return cluster.gnt("gnt-job", "list", "--no-headers", "-o", "status", str(job))[1].strip()


def jobs_in(cluster: VCluster, status: str) -> list[int]:
    out = cluster.gnt("gnt-job", "list", "--no-headers", "-o", "id,status")[1]
    return [int(cols[0]) for cols in (line.split() for line in out.splitlines())
            if cols[1:] == [status]]


def test_submit_job_reports_real_outcomes_across_a_master_restart(
        cluster: VCluster, tmp_path: Path) -> None:
    opcodes = tmp_path / "ops.json"
    # the first job holds node1's lock for a while; the second waits for it, so the
    # restart requeues it, and it runs to success on the restarted master
    opcodes.write_text(json.dumps([
        {"OP_ID": "OP_TEST_DELAY", "duration": 60, "on_nodes": ["node1"], "no_locks": False},
        {"OP_ID": "OP_TEST_DELAY", "duration": 0.2, "on_nodes": ["node1"], "no_locks": False},
    ]))
    admin = subprocess.Popen([str(BIN / "gnt-debug"), "submit-job", "--each", str(opcodes)],
                             env=cluster.env(), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        (running,) = wait_for(lambda: jobs_in(cluster, "running"), 60, "the first job to run")
        waiting = running + 1
        wait_for(lambda: job_status(cluster, waiting) == "waiting", 30,
                 "the second job to wait for the lock")
        master = cluster.pid("node1", "masterd")
        assert master is not None
        os.kill(master, signal.SIGKILL)
        wait_for(lambda: not pid_alive(master), 10, "the master daemon to die")
        cluster.up()
        out, err = admin.communicate(timeout=120)
    finally:
        if admin.poll() is None:
            admin.kill()
            admin.wait()
    assert job_status(cluster, waiting) == "success"
    assert job_status(cluster, running) == "error"
    lines = out.splitlines()
    assert f"Job IDs: {running}, {waiting}" in lines, out
    failed = [line for line in lines if "failed" in line or "unknown" in line]
    assert len(failed) == 1 and failed[0].startswith(f"job {running} failed: "), out
    assert "master daemon stopped while this job was running" in failed[0], out
    assert "lost the master daemon" not in out, out
    assert admin.returncode == 1, out + err
    assert "Traceback" not in err, err


# --- (d) gnt-node remove and the node's fresh token -------------------------------------


def test_remove_says_where_the_fresh_token_is(cluster: VCluster, gnt: Gnt) -> None:
    healthy = cluster.roles()
    removal = "".join(gnt("gnt-node", "remove", "node3")[1:])
    assert ("node3 forgot the cluster; to add it again, run 'cardume node join-token' on "
            "node3 for its fresh token") in removal
    first = cluster.join_token("node3")
    assert first.startswith("cardume-join:v1:") and first.split(":")[-1] not in removal
    gnt("gnt-node", "add", "--join-token", first, "node3")

    removal = "".join(gnt("gnt-node", "remove", "node3")[1:])
    fresh = cluster.join_token("node3")
    secret = fresh.split(":")[-1]
    assert fresh != first and secret != first.split(":")[-1]
    assert secret not in removal
    rc, out, err = gnt("gnt-node", "add", "--join-token", first, "node3", check=False)
    one_line_error(rc, out, err)  # the old one is spent (the node has a new certificate too)
    gnt("gnt-node", "add", "--join-token", fresh, "node3")
    assert cluster.roles() == healthy
    listed = gnt("gnt-job", "list", "--no-headers", "-o", "id,summary")[1].splitlines()
    (last_removal,) = [line.split()[0] for line in listed if "NODE_REMOVE" in line][-1:]
    assert secret not in "".join(gnt("gnt-job", "info", last_removal)[1:])


# --- (e) vcluster up keeps an existing cluster's size -----------------------------------


def test_vcluster_up_keeps_grows_or_refuses(tmp_path: Path) -> None:
    small = start_cluster(tmp_path, nodes=1)
    try:
        def nodes() -> list[str]:
            return small.gnt("gnt-node", "list", "--no-headers", "-o", "name")[1].split()

        root = ["--root", str(small.root)]
        out = small.cardume("vcluster", "up", *root)[1]
        assert "Local cluster with 1 node is up." in out
        assert nodes() == ["node1"] and not small.node_dir("node2").exists()

        out = small.cardume("vcluster", "up", "--nodes", "2", *root)[1]
        assert "Added node2" in out and nodes() == ["node1", "node2"]

        pids = small.all_pids()
        rc, out, err = small.cardume("vcluster", "up", "--nodes", "1", *root, check=False)
        line = one_line_error(rc, out, err)
        assert f"{small.root} has 2 nodes, more than the 1 asked for" in line, line
        assert "leave out --nodes" in line
        assert nodes() == ["node1", "node2"] and small.all_pids() == pids

        out = small.cardume("vcluster", "up", *root)[1]
        assert "Local cluster with 2 nodes is up." in out and nodes() == ["node1", "node2"]
        help_text = small.cardume("vcluster", "up", "--help")[1]
        assert "keeps its size" in " ".join(help_text.split())
    finally:
        stop_cluster(small)
