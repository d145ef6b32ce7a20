"""gnt-node failover and migrate on the client side: one job per primary instance of the
node, built as gnt-instance failover/migrate build theirs, all submitted at once and waited
for by the runner every multi-instance command uses; each instance's outcome reported,
Ganeti's summary line, exit 1 if any failed."""

from __future__ import annotations

from typing import Any

import pytest
from fakes_kit import FakeClient

from cardume import errors
from cardume.cli import main
from cardume.cli.instance_migrate import failover_op, migrate_op

INSTANCES = [("vm2", "node1.example.com"), ("vm1", "node1.example.com"),
             ("vm3", "node2.example.com")]


def _query(resource: str, fields: list[str], names: list[str]) -> dict[str, Any]:
    if resource == "node":
        return {"data": [[f"{name}.example.com"] for name in names]}
    return {"data": [list(row) for row in INSTANCES]}


@pytest.fixture
def cluster(fake_client: type[FakeClient]) -> type[FakeClient]:
    fake_client.replies["Query"] = _query
    return fake_client


def submitted(client: type[FakeClient]) -> list[list[dict[str, Any]]]:
    calls = [args for method, args in client.calls if method == "SubmitManyJobs"]
    assert len(calls) == 1, "every job goes in one submission"
    jobs: list[list[dict[str, Any]]] = calls[0][0]
    return jobs


def test_failover_submits_a_job_per_primary_instance_at_once(
        cluster: type[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run("gnt-node", ["failover", "-f", "--ignore-consistency", "node1"]) == 0
    assert submitted(cluster) == [
        [failover_op(name, ignore_consistency=True)] for name in ("vm1", "vm2")]
    out, err = capsys.readouterr()
    assert out == ("Submitted jobs 100, 101\n"
                   "Waiting for job 100 for vm1 ...\n"
                   "Waiting for job 101 for vm2 ...\n"
                   "All 2 instance(s) failed over successfully.\n")
    assert err == ""


def test_a_failed_failover_is_reported_and_the_others_still_waited_for(
        cluster: type[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    cluster.outcomes = {100: errors.WrongState("instance vm1 has degraded disks")}
    assert main.run("gnt-node", ["failover", "-f", "node1"]) == 1
    out, err = capsys.readouterr()
    assert out.endswith("Waiting for job 101 for vm2 ...\n"
                        "There were errors during the failover:\n"
                        "1 error(s) out of 2 instance(s).\n")
    assert err == "Job 100 for vm1 has failed: instance vm1 has degraded disks\n"


def test_migrate_builds_what_gnt_instance_migrate_builds(
        cluster: type[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run("gnt-node", ["migrate", "-f", "--non-live", "--allow-failover", "-n",
                                 "node3", "node1"]) == 0
    assert submitted(cluster) == [
        [migrate_op(name, mode="non-live", allow_failover=True, target_node="node3")]
        for name in ("vm1", "vm2")]
    assert capsys.readouterr().out.endswith("All instances migrated successfully.\n")


def test_a_failed_migration_makes_the_exit_code_1(
        cluster: type[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    cluster.outcomes = {101: errors.WrongState("instance vm2 is not running")}
    assert main.run("gnt-node", ["migrate", "-f", "node1"]) == 1
    out, err = capsys.readouterr()
    assert out.endswith("There were 1 errors during the node migration.\n")
    assert err == "Job 101 for vm2 has failed: instance vm2 is not running\n"


def test_submit_prints_the_job_of_each_instance_and_waits_for_none(
        cluster: type[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run("gnt-node", ["migrate", "-f", "--submit", "node1"]) == 0
    assert capsys.readouterr().out == "100: vm1\n101: vm2\n"


def test_a_node_without_primary_instances_submits_nothing(
        cluster: type[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run("gnt-node", ["failover", "-f", "node3"]) == 0
    assert capsys.readouterr().out == "No primary instances on node node3.example.com, exiting.\n"
    assert [m for m, _ in cluster.calls if m == "SubmitManyJobs"] == []


def test_bad_options_are_refused_before_any_query(
        cluster: type[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run("gnt-node", ["migrate", "-f", "--non-live", "--migration-mode", "live",
                                 "node1"]) == 1
    assert capsys.readouterr().err == (
        "Failure: wrong_input: give either --non-live or --migration-mode, not both\n")
    assert cluster.calls == []
    # a mode outside the table's: argparse's refusal, exit 2, as gnt-node always gave
    with pytest.raises(SystemExit) as exited:
        main.run("gnt-node", ["migrate", "--migration-mode", "warp", "node1"])
    assert exited.value.code == 2
    assert "invalid choice: 'warp'" in capsys.readouterr().err


def test_without_a_terminal_nothing_happens_unless_forced(
        cluster: type[FakeClient], capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run("gnt-node", ["failover", "node1"]) == 1
    assert "needs -f to confirm" in capsys.readouterr().err
    assert [m for m, _ in cluster.calls if m == "SubmitManyJobs"] == []
