"""A watcher pass against a fake master (what it asks, the jobs it submits, accepted by the
operation table), its state file, its lock, and when cardume-watcher does nothing at all."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from cardume import errors, opcodes, paths
from cardume.rules.watcher_pause import write_pause
from cardume.watcher import main, run, state


class FakeMaster:
    """Answers a pass's queries from ``rows``; every job succeeds, except the instances'
    starts named in ``failing``."""

    def __init__(self, rows: dict[str, list[dict[str, Any]]], failing: set[str] = frozenset(),
                 ) -> None:
        self.rows = rows
        self.failing = failing
        self.jobs: list[list[dict[str, Any]]] = []
        self.asked: list[tuple[str, tuple[Any, ...]]] = []

    def call(self, method: str, *args: Any) -> Any:
        self.asked.append((method, args))
        if method == "AutoArchiveJobs":
            return 2
        if method == "Query":
            what, fields = args[0], args[1]
            return {"data": [[row.get(f) for f in fields] for row in self.rows.get(what, [])]}
        if method == "WaitForJobChange":
            ops = self.jobs[args[0] - 1]
            if ops[0].get("instance_name") in self.failing:
                return {"status": "error", "log": [], "opstatus": ["error"],
                        "opresult": [{"code": "wrong_state", "message": "not enough memory"}]}
            return {"status": "success", "log": [[1, 0.0, "message", "ok"]],
                    "opstatus": ["success"], "opresult": [None]}
        raise AssertionError(f"unexpected call {method}")

    def submit(self, ops: list[dict[str, Any]]) -> int:
        for op in ops:  # what the master's queue would refuse, refused here
            opcodes.OpCode.from_dict(dict(op))
        self.jobs.append(ops)
        return len(self.jobs)


def instance(name: str, status: str, pnode: str = "node1", **values: Any) -> dict[str, Any]:
    return {"name": name, "status": status, "admin_state": "up", "disks_active": False,
            "pnode": pnode, "snodes": [], "disk_template": "file", **values}


def test_a_pass_starts_activates_verifies_and_remembers() -> None:
    master = FakeMaster({
        "instance": [instance("vm1", "ERROR_down"), instance("vm2", "running", "node2"),
                     instance("vm3", "ADMIN_down", admin_state="down")],
        "node": [{"name": "node1", "bootid": "a", "offline": False},
                 {"name": "node2", "bootid": "b2", "offline": False}],
        "job": []})
    memory = state.WatcherState(nodes={"node1": "a", "node2": "b"})
    decisions = run.run_pass(master, memory, run.Options(wait=5))
    assert [d.line() for d in decisions] == [
        "jobs: archive (2 job(s) ended more than 21600s ago)",
        "instance vm1: start (marked up but not running (ERROR_down); attempt 1 of 5); "
        "job 1: success",
        "node node2: rebooted (its boot id changed since the last pass)",
        "instance vm2: activate-disks (node node2 rebooted; it should be up, its disks "
        "reconnect); job 2: success",
        "cluster: verify-disks (after a node reboot); job 3: success"]
    assert [ops[0]["OP_ID"] for ops in master.jobs] == [
        "OP_INSTANCE_STARTUP", "OP_INSTANCE_ACTIVATE_DISKS", "OP_CLUSTER_VERIFY_DISKS"]
    assert master.jobs[0][0]["reason"][0][:2] == ["gnt:watcher", "Restarting instance vm1"]
    assert master.jobs[2][0]["priority"] == 10
    assert memory.restarts == {"vm1": 1} and memory.nodes == {"node1": "a", "node2": "b2"}
    # only the pending jobs are asked for, with a filter on their status
    [job_query] = [args for method, args in master.asked
                   if method == "Query" and args[0] == "job"]
    assert job_query[3][0] == "|" and ["=", "status", "running"] in job_query[3]


def test_a_failed_start_is_told_and_still_counted() -> None:
    master = FakeMaster({"instance": [instance("vm1", "ERROR_down")], "node": [], "job": []},
                        failing={"vm1"})
    memory = state.WatcherState(restarts={"vm1": 2})
    [decision] = run.run_pass(master, memory, run.Options(wait=5))[1:]
    assert decision.outcome == "error: not enough memory"
    assert memory.restarts == {"vm1": 3}


def test_a_refused_submission_is_a_decision_not_a_crash() -> None:
    class Drained(FakeMaster):
        def submit(self, ops: list[dict[str, Any]]) -> int:
            raise errors.WrongState("the job queue is drained")
    master = Drained({"instance": [instance("vm1", "ERROR_down")], "node": [], "job": []})
    [decision] = run.run_pass(master, state.WatcherState(), run.Options(wait=5))[1:]
    assert decision.job is None
    assert decision.outcome == "not submitted: the job queue is drained"


def test_a_job_longer_than_the_pass_is_still_running() -> None:
    class Slow(FakeMaster):
        def call(self, method: str, *args: Any) -> Any:
            if method == "WaitForJobChange":
                return "nochange"
            return super().call(method, *args)
    master = Slow({"instance": [instance("vm1", "ERROR_down")], "node": [], "job": []})
    [decision] = run.run_pass(master, state.WatcherState(), run.Options(wait=0.01))[1:]
    assert decision.job == 1 and decision.outcome == "still pending after the pass"


def test_the_state_file_is_private_and_survives_garbage(tmp_path: Path) -> None:
    path = str(tmp_path / "watcher.json")
    memory = state.WatcherState(nodes={"node1": "a"}, restarts={"vm1": 2},
                                last_pass={"start": 1.0, "decisions": []})
    state.save(path, memory)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert state.load(path) == memory
    Path(path).write_text('{"restarts": {"vm1": "x", "vm2": 3}, "nodes": []}')
    assert state.load(path) == state.WatcherState(restarts={"vm2": 3})
    Path(path).write_text("not json")
    assert state.load(path) == state.WatcherState()


def test_two_passes_do_not_overlap(tmp_path: Path) -> None:
    path = str(tmp_path / "watcher.json")
    with state.locked(path), pytest.raises(state.Busy), state.locked(path):
        pass
    with state.locked(path):  # released at the end of the first
        pass


# --- cardume-watcher, the command --------------------------------------------------------

@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> paths.NodePaths:
    """A local cluster's node1, master or not as the test writes its ssconf; no master
    daemon: a pass that tried to reach one would fail."""
    root = tmp_path / "vc"
    here = paths.NodePaths(str(root / "nodes" / "node1"))
    os.makedirs(here.root)
    paths.write_json_atomic(here.identity, {"name": "node1"})
    monkeypatch.setenv(paths.ENV_ROOT, str(root))
    monkeypatch.setenv(paths.ENV_NODE, "node1")
    return here


def test_on_a_node_that_is_not_the_master_nothing_is_done(
        node: paths.NodePaths, capsys: pytest.CaptureFixture[str]) -> None:
    paths.write_json_atomic(node.ssconf, {"master_node": "node2", "serial": 1})
    assert main.main(["-d"]) == 0
    assert "this node (node1) is not the master (node2): nothing to do" in \
        capsys.readouterr().err
    assert not os.path.exists(node.watcher_state)


def test_a_paused_watcher_does_not_reach_the_master(node: paths.NodePaths) -> None:
    paths.write_json_atomic(node.ssconf, {"master_node": "node1", "serial": 1})
    write_pause(node.watcher_pause, time.time() + 600)
    assert main.main([]) == 0
    assert "paused until" in Path(node.logfile("watcher")).read_text()
    assert stat.S_IMODE(os.stat(node.logfile("watcher")).st_mode) == 0o600
    # ignoring the pause, it tries the master, which isn't there: one error, exit 1
    assert main.main(["--ignore-pause"]) == 1
    assert "pass abandoned: the master daemon does not answer" in \
        Path(node.logfile("watcher")).read_text()


def test_an_expired_pause_is_no_pause(node: paths.NodePaths) -> None:
    paths.write_json_atomic(node.ssconf, {"master_node": "node1", "serial": 1})
    write_pause(node.watcher_pause, time.time() - 1)
    assert main.main([]) == 1  # it tried to make a pass (and found no master daemon)
    assert "paused" not in Path(node.logfile("watcher")).read_text()


def test_bad_options_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["--job-age", "6x"]) == 2
    assert capsys.readouterr().err == (
        "cardume-watcher: invalid --job-age '6x': Invalid time specification '6x'\n")
