"""The kvm migration engine against a scripted fake QMP: the exact command sequences, and
the failure paths (target dies mid-migration, mirror job error, timeout)."""

from __future__ import annotations

from typing import Any

import pytest

from cardume import errors
from cardume.node.hypervisor import kvm_migrate as km
from cardume.rules import migration

MIB = 1024 * 1024


class Seq(list[Any]):
    """Successive answers to one command, one per call; the last one repeats."""


def seq(*answers: Any) -> Seq:
    return Seq(answers)


class FakeQmp:
    """Answers each command from a script: a value, a :func:`seq` of them, an exception to
    raise (also inside a seq)."""

    def __init__(self, **script: Any) -> None:
        self.script: dict[str, Any] = {"query-status": {"status": "running"},
                                       "query-migrate": {}, "query-block-jobs": []}
        self.script.update({k.replace("_", "-") if k != "migrate_cancel" else k: v
                            for k, v in script.items()})
        self.log: list[tuple[str, dict[str, Any]]] = []

    def execute(self, command: str, **arguments: Any) -> Any:
        self.log.append((command, arguments))
        answer = self.script.get(command)
        if isinstance(answer, Seq):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def commands(self, *, queries: bool = False) -> list[str]:
        return [c for c, _ in self.log if queries or not c.startswith("query-")]

    def args(self, command: str) -> dict[str, Any]:
        return next(a for c, a in self.log if c == command)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(km, "POLL", 0)
    monkeypatch.setattr(km, "FAST_POLL", 0)


INFO = {"host": "127.0.0.1", "port": 8102, "nbd_port": None, "exports": []}
MIRROR_INFO = {"host": "127.0.0.1", "port": 8102, "nbd_port": 8103,
               "exports": [{"device": "disk0", "export": "cardume-migrate-disk0"},
                           {"device": "disk1", "export": "cardume-migrate-disk1"}]}
DONE = {"status": "completed", "total-time": 2800, "downtime": 12, "setup-time": 1,
        "ram": {"transferred": 94 * MIB, "total": 130 * MIB, "remaining": 0}}
ACTIVE = {"status": "active", "ram": {"transferred": MIB, "total": 130 * MIB,
                                      "remaining": 100 * MIB}}


def job(device: str, *, ready: bool = False, status: str = "running", offset: int = 0,
        error: str | None = None) -> dict[str, Any]:
    found = {"device": f"cardume-mirror-{device}", "type": "mirror", "len": 32 * MIB,
             "offset": offset, "ready": ready, "status": status}
    if error:
        found["error"] = error
    return found


# --- small pieces -------------------------------------------------------------------------

def test_incoming_args_make_the_target_wait_for_migrate_incoming() -> None:
    assert km.incoming_args() == ["-incoming", "defer"]


# --- accept -------------------------------------------------------------------------------

def test_accept_shared_storage_only_listens() -> None:
    qmp = FakeQmp()
    info = km.accept(qmp, listen_host="127.0.0.1", port=8102, mirror_disks=None)
    assert qmp.log == [("migrate-incoming", {"uri": "tcp:127.0.0.1:8102"})]
    assert info == {"host": "127.0.0.1", "port": 8102, "nbd_port": None, "exports": []}


def test_accept_exports_the_disks_then_listens() -> None:
    qmp = FakeQmp(query_block=[{"device": "disk0", "inserted": {"node-name": "#block123"}}])
    info = km.accept(qmp, listen_host="10.0.0.2", port=8102,
                     mirror_disks=[{"device": "disk0"}, {"device": "n1", "export": "x"}])
    assert qmp.commands() == ["nbd-server-start", "block-export-add", "block-export-add",
                              "migrate-incoming"]
    assert qmp.args("nbd-server-start") == {
        "addr": {"type": "inet", "data": {"host": "10.0.0.2", "port": "8103"}}}
    exports = [a for c, a in qmp.log if c == "block-export-add"]
    assert exports == [
        {"type": "nbd", "id": "cardume-migrate-disk0", "node-name": "#block123",
         "name": "cardume-migrate-disk0", "writable": True},
        {"type": "nbd", "id": "x", "node-name": "n1", "name": "x", "writable": True}]
    assert info["nbd_port"] == 8103
    assert info["exports"] == [{"device": "disk0", "export": "cardume-migrate-disk0"},
                               {"device": "n1", "export": "x"}]


def test_accept_port_in_use_tears_the_nbd_server_down() -> None:
    qmp = FakeQmp(migrate_incoming=RuntimeError("Failed to bind socket: Address already in "
                                                "use"))
    with pytest.raises(errors.ExecError, match=r"can't listen for the migration on "
                       r"\[::1\]:8102: Failed to bind socket: Address already in use$"):
        km.accept(qmp, listen_host="::1", port=8102, nbd_port=9000,
                  mirror_disks=[{"device": "disk0"}])
    assert qmp.commands()[-1] == "nbd-server-stop"


def test_accept_nbd_port_in_use() -> None:
    qmp = FakeQmp(nbd_server_start=RuntimeError("Address already in use"))
    with pytest.raises(errors.ExecError, match="NBD server .* 127.0.0.1:8103"):
        km.accept(qmp, listen_host="127.0.0.1", port=8102, mirror_disks=[{"device": "d"}])
    assert "migrate-incoming" not in qmp.commands()


# --- migrate ------------------------------------------------------------------------------

def test_live_migration_sequence_and_figures() -> None:
    qmp = FakeQmp(query_migrate=seq({"status": "setup"}, ACTIVE, DONE))
    seen: list[dict[str, Any]] = []
    figures = km.migrate(qmp, INFO, live=True, downtime_ms=30, bandwidth_mib=32,
                         mirror=False, timeout=60, progress=seen.append)
    assert qmp.commands(queries=True) == [
        "query-status", "migrate-set-capabilities", "migrate-set-parameters", "migrate",
        "query-migrate", "query-migrate", "query-migrate"]
    assert qmp.args("migrate-set-capabilities") == {
        "capabilities": [{"capability": "pause-before-switchover", "state": False}]}
    assert qmp.args("migrate-set-parameters") == {"downtime-limit": 30,
                                                  "max-bandwidth": 32 * MIB}
    assert qmp.args("migrate") == {"uri": "tcp:127.0.0.1:8102"}
    assert figures.pop("elapsed_ms") >= 0
    assert figures == {"status": "completed", "total_time_ms": 2800, "downtime_ms": 12,
                       "setup_time_ms": 1, "transferred_bytes": 94 * MIB, "mirror_bytes": 0,
                       "mirror_time_ms": 0}
    assert [p["status"] for p in seen] == ["setup", "active"]
    assert seen[1] == {"phase": "migrate", "status": "active", "done": MIB,
                       "total": 130 * MIB, "remaining": 100 * MIB}


def test_non_live_stops_first_and_leaves_resuming_to_the_target() -> None:
    qmp = FakeQmp(query_migrate=seq(ACTIVE, DONE))
    km.migrate(qmp, INFO, live=False, downtime_ms=30, bandwidth_mib=32, mirror=False,
               timeout=60)
    assert qmp.commands() == ["migrate-set-capabilities", "migrate-set-parameters", "stop",
                              "migrate"]


def test_mirrored_migration_sequence() -> None:
    jobs = [[job("disk0"), job("disk1")],
            [job("disk0", ready=True, offset=32 * MIB), job("disk1", offset=MIB)],
            [job("disk0", ready=True, offset=32 * MIB),
             job("disk1", ready=True, offset=32 * MIB)],
            # after block-job-cancel: the jobs finish their last copy and conclude
            [job("disk0", ready=True, status="standby", offset=32 * MIB),
             job("disk1", status="concluded", offset=32 * MIB)],
            [job("disk0", status="concluded", offset=32 * MIB)],
            []]
    qmp = FakeQmp(query_block_jobs=Seq(jobs),
                  query_migrate=seq(ACTIVE, {"status": "pre-switchover"},
                                 {"status": "device"}, DONE))
    seen: list[dict[str, Any]] = []
    figures = km.migrate(qmp, MIRROR_INFO, live=True, downtime_ms=30, bandwidth_mib=32,
                         mirror=True, timeout=60, progress=seen.append)
    assert qmp.commands() == [
        "migrate-set-capabilities", "migrate-set-parameters",
        "drive-mirror", "drive-mirror",
        "migrate",
        "block-job-cancel", "block-job-cancel", "job-dismiss", "job-dismiss",
        "migrate-continue"]
    assert qmp.args("migrate-set-capabilities") == {
        "capabilities": [{"capability": "pause-before-switchover", "state": True}]}
    assert qmp.args("drive-mirror") == {
        "job-id": "cardume-mirror-disk0", "device": "disk0",
        "target": "nbd:127.0.0.1:8103:exportname=cardume-migrate-disk0", "format": "raw",
        "sync": "full", "mode": "existing", "speed": 32 * MIB, "auto-dismiss": False}
    cancels = [a for c, a in qmp.log if c == "block-job-cancel"]
    assert cancels == [{"device": "cardume-mirror-disk0"}, {"device": "cardume-mirror-disk1"}]
    assert qmp.args("migrate-continue") == {"state": "pre-switchover"}
    # the migration starts only once every mirror is ready, the jobs end only at the pause
    order = [c for c, _ in qmp.log]
    assert order.index("migrate") > max(i for i, c in enumerate(order)
                                        if c == "query-block-jobs" and i < order.index("migrate"))
    assert order[order.index("block-job-cancel") - 1] == "query-migrate"
    assert figures["mirror_bytes"] == 64 * MIB and figures["downtime_ms"] == 12
    assert [p["phase"] for p in seen][:3] == ["mirror", "mirror", "mirror"]
    assert seen[1]["ready"] == 1 and seen[2]["ready"] == 2


def test_mirror_job_error_means_no_migration() -> None:
    jobs = [[job("disk0"), job("disk1")],
            [job("disk0", status="concluded", error="Input/output error"), job("disk1")],
            [job("disk0", status="concluded", error="Input/output error"), job("disk1")],
            [job("disk0", status="concluded", error="Input/output error"),
             job("disk1", status="aborting")],
            []]
    qmp = FakeQmp(query_block_jobs=Seq(jobs))
    with pytest.raises(errors.ExecError) as caught:
        km.migrate(qmp, MIRROR_INFO, live=True, downtime_ms=30, bandwidth_mib=32,
                   mirror=True, timeout=60)
    assert str(caught.value) == ("the mirror of disk disk0 to 127.0.0.1:8103 failed: "
                                 "Input/output error")
    assert "migrate" not in qmp.commands() and "cont" not in qmp.commands()
    assert ("job-dismiss", {"id": "cardume-mirror-disk0"}) in qmp.log
    assert ("block-job-cancel", {"device": "cardume-mirror-disk1", "force": True}) in qmp.log


def test_drive_mirror_refused() -> None:
    qmp = FakeQmp(drive_mirror=seq(None, RuntimeError("Failed to connect to 127.0.0.1:8103")),
                  query_block_jobs=seq([job("disk0")], []))
    with pytest.raises(errors.ExecError, match="can't start the mirror of disk disk1 to "
                       "127.0.0.1:8103: Failed to connect"):
        km.migrate(qmp, MIRROR_INFO, mirror=True, timeout=60)
    assert "migrate" not in qmp.commands()
    assert ("block-job-cancel", {"device": "cardume-mirror-disk0", "force": True}) in qmp.log


def test_target_dies_mid_migration_source_keeps_running() -> None:
    failed = {"status": "failed", "error-desc": "Unable to write to socket: Broken pipe"}
    qmp = FakeQmp(query_migrate=seq(ACTIVE, failed))
    with pytest.raises(errors.ExecError) as caught:
        km.migrate(qmp, INFO, live=True, mirror=False, timeout=60)
    assert str(caught.value) == ("migration to 127.0.0.1:8102 failed: Unable to write to "
                                 "socket: Broken pipe")
    # QEMU resumed the guest itself: nothing to 'cont'
    assert qmp.commands() == ["migrate-set-capabilities", "migrate-set-parameters", "migrate",
                              "migrate_cancel"]
    assert qmp.script["query-status"] == {"status": "running"}


def test_non_live_failure_resumes_the_source() -> None:
    failed = {"status": "failed", "error-desc": "Connection refused"}
    qmp = FakeQmp(query_migrate=seq(failed),
                  query_status=seq({"status": "running"}, {"status": "paused"}))
    with pytest.raises(errors.ExecError, match="Connection refused"):
        km.migrate(qmp, INFO, live=False, mirror=False, timeout=60)
    assert qmp.commands()[-1] == "cont"
    assert qmp.commands().count("stop") == 1


def test_mirror_failure_at_switch_over_cancels_everything() -> None:
    ready = [job("disk0", ready=True, offset=32 * MIB), job("disk1", ready=True,
                                                            offset=32 * MIB)]
    broken = [job("disk0", status="concluded", error="Input/output error", offset=30 * MIB),
              job("disk1", status="concluded", offset=32 * MIB)]
    qmp = FakeQmp(query_block_jobs=seq(ready, broken, broken, []),
                  query_migrate=seq({"status": "pre-switchover"}, {"status": "pre-switchover"},
                                 {"status": "cancelled"}),
                  query_status=seq({"status": "running"}, {"status": "running"}))
    with pytest.raises(errors.ExecError, match="disk0 failed at the switch-over: Input"):
        km.migrate(qmp, MIRROR_INFO, mirror=True, timeout=60)
    cmds = qmp.commands()
    assert "migrate-continue" not in cmds
    assert cmds[cmds.index("migrate"):] == [
        "migrate", "block-job-cancel", "block-job-cancel", "migrate_cancel", "job-dismiss",
        "job-dismiss"]


def test_timeout_cancels_and_keeps_the_source() -> None:
    qmp = FakeQmp(query_migrate=seq(ACTIVE, ACTIVE, {"status": "cancelling"},
                                 {"status": "cancelled"}))
    with pytest.raises(errors.ExecError, match="did not complete in time .100 MiB of memory "
                       "left.; canceled"):
        km.migrate(qmp, INFO, timeout=0)
    assert qmp.commands() == ["migrate-set-capabilities", "migrate-set-parameters", "migrate",
                              "migrate_cancel"]


def test_timeout_but_completed_meanwhile_counts_as_success() -> None:
    qmp = FakeQmp(query_migrate=seq(ACTIVE, DONE))
    figures = km.migrate(qmp, INFO, timeout=0)
    assert figures["status"] == "completed"
    assert "cont" not in qmp.commands()


def test_broken_qmp_connection_is_one_line() -> None:
    qmp = FakeQmp(query_migrate=seq(ACTIVE, ConnectionResetError("QMP connection closed")))
    with pytest.raises(errors.ExecError, match=r"^migration to 127.0.0.1:8102 failed: QMP "
                       "connection closed$"):
        km.migrate(qmp, INFO, timeout=60)


# --- finalize -----------------------------------------------------------------------------

def test_finalize_target_success_waits_then_resumes_a_paused_guest() -> None:
    qmp = FakeQmp(query_status=seq({"status": "inmigrate"}, {"status": "paused"}),
                  query_migrate={"status": "active"})
    km.finalize_target(qmp, True)
    assert qmp.commands() == ["nbd-server-stop", "cont"]


def test_finalize_target_running_guest_and_failure() -> None:
    qmp = FakeQmp()
    km.finalize_target(qmp, True)
    assert qmp.commands() == ["nbd-server-stop"]
    qmp = FakeQmp(nbd_server_stop=RuntimeError("NBD server not running"))
    km.finalize_target(qmp, False)
    assert qmp.commands() == ["nbd-server-stop"]
    qmp = FakeQmp(query_status={"status": "inmigrate"}, query_migrate={"status": "failed"})
    with pytest.raises(errors.ExecError, match="incoming migration failed"):
        km.finalize_target(qmp, True)


def test_finalize_source() -> None:
    qmp = FakeQmp()
    km.finalize_source(qmp, True)
    assert qmp.log == []
    qmp = FakeQmp(query_migrate=seq(ACTIVE, {"status": "cancelled"}),
                  query_status={"status": "paused"})
    km.finalize_source(qmp, False)
    assert qmp.commands() == ["migrate_cancel", "cont"]
    qmp = FakeQmp(query_migrate=DONE, query_status={"status": "postmigrate"})
    with pytest.raises(errors.WrongState, match="may have run on the target"):
        km.finalize_source(qmp, False)
    assert "cont" not in qmp.commands()


# --- --cleanup ----------------------------------------------------------------------------

def test_side_state() -> None:
    def side(status: str, migrating: str, role: str) -> str:
        return km.side_state(FakeQmp(query_status={"status": status},
                                     query_migrate={"status": migrating}), role)
    assert km.side_state(None, "source") == migration.ABSENT
    assert side("running", "active", "source") == migration.RUNNING
    assert side("finish-migrate", "pre-switchover", "source") == migration.MIGRATING
    assert side("postmigrate", "completed", "source") == migration.HANDED_OVER
    assert side("paused", "failed", "source") == migration.STOPPED
    assert side("inmigrate", "active", "target") == migration.WAITING
    assert side("paused", "completed", "target") == migration.LOADED
    assert side("running", "completed", "target") == migration.RUNNING
    # an earlier migration's target keeps reporting that incoming migration as completed:
    # as the source of the next one, only its run state counts
    assert side("running", "completed", "source") == migration.RUNNING
    assert side("paused", "completed", "source") == migration.STOPPED
    dead = FakeQmp(query_status=ConnectionRefusedError("gone"))
    assert km.side_state(dead, "target") == migration.ABSENT


def test_cleanup_interrupted_mid_migration_resumes_the_source() -> None:
    src = FakeQmp(query_status=seq({"status": "finish-migrate"}, {"status": "paused"}),
                  query_migrate=seq({"status": "pre-switchover"}, {"status": "pre-switchover"},
                                    {"status": "cancelled"}),
                  query_block_jobs=seq([job("disk0", ready=True)], []))
    dst = FakeQmp(query_status={"status": "inmigrate"}, query_migrate={"status": "active"})
    plan = km.cleanup(src, dst, settle=0)
    assert (plan.runs_on, plan.source, plan.target) == ("source", migration.RESUME, migration.KILL)
    assert src.commands() == ["migrate_cancel", "block-job-cancel", "cont"]
    assert dst.commands() == ["nbd-server-stop"]


def test_cleanup_refuses_a_plan_the_migration_outran() -> None:
    # still streaming when the states were read, completed before the cancel: the target
    # runs the guest now, so it must not be killed
    src = FakeQmp(query_status=seq({"status": "running"}, {"status": "postmigrate"}),
                  query_migrate=seq({"status": "active"}, {"status": "active"},
                                    {"status": "completed"}))
    dst = FakeQmp(query_status={"status": "inmigrate"}, query_migrate={"status": "active"})
    with pytest.raises(errors.WrongState, match="completed while --cleanup was deciding"):
        km.cleanup(src, dst, settle=0)
    assert src.commands() == ["migrate_cancel"]
    assert dst.commands() == []


def test_cleanup_completed_resumes_a_paused_target() -> None:
    src = FakeQmp(query_status={"status": "postmigrate"}, query_migrate=DONE)
    dst = FakeQmp(query_status={"status": "paused"}, query_migrate={"status": "completed"})
    plan = km.cleanup(src, dst, settle=0)
    assert (plan.runs_on, plan.source, plan.target) == ("target", migration.QUIT, migration.RESUME)
    assert src.commands() == []
    assert dst.commands() == ["nbd-server-stop", "cont"]


def test_cleanup_refuses_both_running() -> None:
    src, dst = FakeQmp(), FakeQmp()
    plan = km.cleanup(src, dst, settle=0)
    assert plan.runs_on is None and plan.error and "refusing to choose" in plan.error
    assert src.commands() == [] and dst.commands() == []  # untouched


def test_cleanup_split_brain_pending_leaves_the_paused_source_alone() -> None:
    # cancelling this migration would make QEMU resume the source next to a running target
    src = FakeQmp(query_status={"status": "finish-migrate"},
                  query_migrate={"status": "pre-switchover"})
    dst = FakeQmp()
    plan = km.cleanup(src, dst, settle=0)
    assert plan.runs_on is None and (plan.source, plan.target) == (migration.LEAVE, migration.LEAVE)
    assert src.commands() == [] and dst.commands() == []
