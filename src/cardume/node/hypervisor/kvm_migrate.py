"""Live migration of QEMU instances over QMP, with optional block mirroring of local disks.

Self-contained: it drives QEMU processes through anything with an ``execute(command,
**arguments)`` method (:class:`QmpLike`) and never starts or kills a process itself; the kvm
hypervisor class wires these steps into Ganeti's four migration calls:

==========================  ===============================================================
Ganeti step                 here
==========================  ===============================================================
accept_instance (target)    start QEMU with :func:`incoming_args`, then :func:`accept`
migrate (source)            :func:`migrate` with the dict :func:`accept` returned
finalize_migration_target   :func:`finalize_target`; on failure the caller kills the QEMU
finalize_migration_source   :func:`finalize_source`; on success the caller quits the QEMU
migrate --cleanup           :func:`cleanup` (decision table in rules/migration.py)
==========================  ===============================================================

Storage. ``sharedfile``/``diskless`` (and ``drbd`` in dual-primary mode) need nothing: both
QEMUs open the same disks, the target's stay inactive until the switch-over. ``file`` and
``plain`` disks live on one node; with ``mirror`` on (``--mirror-disks``) the target exports
its empty, same-sized disks over NBD and the source mirrors every disk into them before and
during the migration. The order that loses no write is QEMU's documented one for storage
plus live migration:

1. source: ``drive-mirror sync=full`` of each disk to the target's NBD export; wait until
   every job reports ready (the copy caught up; new guest writes go to both sides);
2. source: capability ``pause-before-switchover`` on, then ``migrate``: RAM is copied while
   the guest runs; once it converges QEMU stops the guest's vCPUs, flushes its disks, and
   waits in the state ``pre-switchover`` *before* sending device state and inactivating the
   disks;
3. source: ``block-job-cancel`` of each (ready) mirror job: with the guest stopped, the job
   copies what is still dirty and ends with the target identical to the source (a cancelled
   *ready* mirror completes cleanly; ``block-job-complete`` would instead pivot the source
   onto the NBD target, which we don't want);
4. source: ``migrate-continue state=pre-switchover``: device state goes over, the target
   runs the guest with disks that already hold every write.

Any failure before step 4 leaves the source the only writer: the migration is cancelled,
the mirror jobs are cancelled (the target copy is thrown away with the target QEMU), and the
source guest runs on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cardume import errors

# The --cleanup decision is the master's too: cleanup() applies the same table.
from cardume.rules.migration import (
    ABSENT,
    HANDED_OVER,
    KEEP,
    KILL,
    LOADED,
    MIGRATING,
    RESUME,
    RUNNING,
    STOPPED,
    WAITING,
    CleanupPlan,
    decide_cleanup,
    settling,
)


class QmpLike(Protocol):
    """What this module needs of a QMP connection (capabilities already negotiated).

    ``execute`` returns the ``return`` member of QEMU's reply and raises an exception whose
    ``str()`` is QEMU's error description when QEMU answers with an error (or the connection
    breaks). Events are not needed: every wait here polls QMP queries."""

    def execute(self, command: str, **arguments: Any) -> Any: ...


Progress = Callable[[dict[str, Any]], None]

MIRROR_PARAM = "mirror_disks"  # the OpInstanceMigrate parameter's name
JOB_PREFIX = "cardume-mirror-"
EXPORT_PREFIX = "cardume-migrate-"

# query-migrate statuses
_ACTIVE = ("setup", "active", "device", "wait-unplug", "pre-switchover", "cancelling",
           "postcopy-active", "postcopy-paused", "postcopy-recover", "colo")

POLL = 0.05  # seconds between two QMP queries while waiting
# ... and while the guest is paused for the switch-over, or about to be (with the mirror on,
# the source's pause lasts until we notice it and end the mirror jobs: it is downtime)
FAST_POLL = 0.005


def incoming_args() -> list[str]:
    """Extra QEMU arguments for a migration target: wait for ``migrate-incoming``, so QMP
    (NBD exports, parameters) is usable before the stream starts."""
    return ["-incoming", "defer"]


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _err(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _export_name(device: str, name: str | None) -> str:
    return name or f"{EXPORT_PREFIX}{device}"


# --- target -------------------------------------------------------------------------------

def accept(qmp: QmpLike, *, listen_host: str, port: int,
           mirror_disks: list[dict[str, Any]] | None, nbd_port: int | None = None
           ) -> dict[str, Any]:
    """On the target QEMU (started with :func:`incoming_args`): export the target disks over
    NBD when mirroring, then listen for the migration stream.

    ``mirror_disks``: one ``{"device": NAME, "export": EXPORT?}`` per disk, NAME being the
    QEMU drive id or block node name of the (empty, same-sized) target disk; the source
    mirrors its disk of the same NAME. ``nbd_port`` defaults to ``port + 1``.
    Returns what :func:`migrate` needs: ``{"host", "port", "nbd_port", "exports":
    [{"device", "export"}]}``."""
    exports: list[dict[str, str]] = []
    nbd = None
    if mirror_disks:
        nbd = port + 1 if nbd_port is None else nbd_port
        try:
            qmp.execute("nbd-server-start",
                        addr={"type": "inet", "data": {"host": listen_host, "port": str(nbd)}})
        except Exception as err:  # (any QMP failure becomes one message)
            raise errors.ExecError(f"can't start the NBD server for the disk mirror on "
                                   f"{_hostport(listen_host, nbd)}: {_err(err)}") from None
        try:
            for disk in mirror_disks:
                device = str(disk["device"])
                name = _export_name(device, disk.get("export"))
                qmp.execute("block-export-add", type="nbd", id=name,
                            **{"node-name": _node_name(qmp, device)}, name=name,
                            writable=True)
                exports.append({"device": device, "export": name})
        except Exception as err:
            _quietly(qmp, "nbd-server-stop")
            raise errors.ExecError(f"can't export disk {disk.get('device')} over NBD for the "
                                   f"mirror: {_err(err)}") from None
    try:
        qmp.execute("migrate-incoming", uri=f"tcp:{_hostport(listen_host, port)}")
    except Exception as err:
        if nbd is not None:
            _quietly(qmp, "nbd-server-stop")
        raise errors.ExecError(f"can't listen for the migration on "
                               f"{_hostport(listen_host, port)}: {_err(err)}") from None
    return {"host": listen_host, "port": port, "nbd_port": nbd, "exports": exports}


def _node_name(qmp: QmpLike, device: str) -> str:
    """The block node behind a drive id (block-export-add wants a node); a name that is no
    drive id is taken as a node name already."""
    try:
        for entry in qmp.execute("query-block") or []:
            if device in (entry.get("device"), entry.get("qdev")):
                node = (entry.get("inserted") or {}).get("node-name")
                if node:
                    return str(node)
    except Exception:  # (fall back to the name as given)
        pass
    return device


def finalize_target(qmp: QmpLike, success: bool, *, timeout: float = 30.0) -> None:
    """On the target: stop the NBD server; on success make sure the guest runs (a non-live
    migration arrives paused). On failure the caller kills this QEMU."""
    _quietly(qmp, "nbd-server-stop")
    if not success:
        return
    deadline = time.monotonic() + timeout
    while True:  # the source may report completion before the target finished loading
        status = _status(qmp)
        if status != "inmigrate":
            break
        incoming = _migration(qmp).get("status", "none")
        if incoming in ("failed", "cancelled"):
            raise errors.ExecError(f"the incoming migration {incoming} on the target")
        if time.monotonic() > deadline:
            raise errors.ExecError(f"the target did not finish loading the migrated state "
                                   f"within {timeout:.0f}s")
        time.sleep(POLL)
    if status == "running":
        return
    if status in ("paused", "prelaunch", "postmigrate", "finish-migrate"):
        try:
            qmp.execute("cont")
        except Exception as err:
            raise errors.ExecError(f"can't resume the migrated guest on the target: "
                                   f"{_err(err)}") from None
        return
    raise errors.ExecError(f"the migrated guest is {status} on the target, not running")


# --- source -------------------------------------------------------------------------------

@dataclass
class _Mirror:
    device: str
    job: str
    target: str = ""
    ready: bool = False
    done: bool = False
    offset: int = 0
    length: int = 0


def migrate(qmp: QmpLike, info: dict[str, Any], *, live: bool = True, downtime_ms: int = 30,
            bandwidth_mib: int = 32, mirror: bool = False, timeout: float = 600.0,
            progress: Progress | None = None) -> dict[str, Any]:
    """On the source: migrate to the target that :func:`accept` prepared (``info``).

    ``downtime_ms`` is Ganeti's ``migration_downtime`` (QEMU's downtime-limit),
    ``bandwidth_mib`` its ``migration_bandwidth`` in MiB/s (QEMU's max-bandwidth; the mirror
    jobs get the same speed limit), ``timeout`` covers the whole migration, mirror included.
    ``progress`` gets ``{"phase": "mirror"|"migrate", "done", "total", ...}`` while waiting.

    Returns QEMU's figures: ``total_time_ms`` (the RAM/device migration, from ``migrate``
    on), ``downtime_ms`` (QEMU's own measure of the guest's pause), ``setup_time_ms``,
    ``transferred_bytes`` (RAM stream), ``mirror_bytes`` (copied by the mirror jobs),
    ``mirror_time_ms`` (until every mirror was ready) and ``elapsed_ms`` (all of it).
    On failure the source guest still runs here (resumed if this function stopped it) and
    a one-line :class:`errors.ExecError` says what failed."""
    host, port = str(info["host"]), int(info["port"])
    target = _hostport(host, port)
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {"stopped": False, "mirrors": [], "started": False}
    speed = max(0, int(bandwidth_mib)) * 1024 * 1024  # 0: no limit
    try:
        was_running = _status(qmp) == "running"
        qmp.execute("migrate-set-capabilities", capabilities=[
            {"capability": "pause-before-switchover", "state": bool(mirror)}])
        qmp.execute("migrate-set-parameters", **{"downtime-limit": int(downtime_ms),
                                                 "max-bandwidth": speed})
    except Exception as err:
        raise errors.ExecError(f"can't set the migration parameters: {_err(err)}") from None
    started = time.monotonic()
    mirror_time = 0.0
    try:
        if mirror:
            exports = list(info.get("exports") or [])
            if not exports or not info.get("nbd_port"):
                raise errors.ExecError("the target exported no disks to mirror to")
            nbd = _hostport(host, int(info["nbd_port"]))
            for exp in exports:
                m = _Mirror(str(exp["device"]), JOB_PREFIX + str(exp["device"]), nbd)
                try:
                    qmp.execute("drive-mirror", **{
                        "job-id": m.job, "device": m.device,
                        "target": f"nbd:{nbd}:exportname={exp['export']}",
                        "format": "raw", "sync": "full", "mode": "existing", "speed": speed,
                        "auto-dismiss": False})
                except Exception as err:
                    raise errors.ExecError(f"can't start the mirror of disk {m.device} to "
                                           f"{nbd}: {_err(err)}") from None
                state["mirrors"].append(m)
            _wait_mirrors_ready(qmp, state["mirrors"], deadline, progress)
            mirror_time = time.monotonic() - started
        if not live and was_running:
            qmp.execute("stop")
            state["stopped"] = True
        try:
            qmp.execute("migrate", uri=f"tcp:{target}")
        except Exception as err:
            raise errors.ExecError(f"can't start the migration to {target}: "
                                   f"{_err(err)}") from None
        state["started"] = True
        result = _wait_migration(qmp, state, deadline, progress, target)
    except errors.CardumeError as err:
        _abort_source(qmp, state, was_running)
        raise errors.ExecError(err.message) from None
    except Exception as err:  # (a broken QMP connection and the like)
        _abort_source(qmp, state, was_running)
        raise errors.ExecError(f"migration to {target} failed: {_err(err)}") from None
    ram = result.get("ram") or {}
    return {
        "status": result.get("status"),
        "total_time_ms": int(result.get("total-time", 0)),
        "downtime_ms": int(result.get("downtime", 0)),
        "setup_time_ms": int(result.get("setup-time", 0)),
        "transferred_bytes": int(ram.get("transferred", 0)),
        "mirror_bytes": sum(m.offset for m in state["mirrors"]),
        "mirror_time_ms": int(mirror_time * 1000),
        "elapsed_ms": int((time.monotonic() - started) * 1000),
    }


def _jobs(qmp: QmpLike) -> dict[str, dict[str, Any]]:
    return {str(j.get("device")): j for j in qmp.execute("query-block-jobs") or []}


def _wait_mirrors_ready(qmp: QmpLike, mirrors: list[_Mirror], deadline: float,
                        progress: Progress | None) -> None:
    while True:
        jobs = _jobs(qmp)
        for m in mirrors:
            job = jobs.get(m.job)
            if job is None:
                raise errors.ExecError(f"the mirror of disk {m.device} vanished")
            m.offset, m.length = int(job.get("offset", 0)), int(job.get("len", 0))
            if job.get("status") == "concluded" or job.get("error"):
                raise errors.ExecError(f"the mirror of disk {m.device} to {m.target} failed: "
                                       f"{job.get('error') or 'ended before it was ready'}")
            m.ready = bool(job.get("ready"))
        if progress:
            progress({"phase": "mirror", "done": sum(m.offset for m in mirrors),
                      "total": sum(m.length for m in mirrors),
                      "ready": sum(m.ready for m in mirrors), "disks": len(mirrors)})
        if all(m.ready for m in mirrors):
            return
        if time.monotonic() > deadline:
            raise errors.ExecError("the disk mirror did not catch up in time ("
                                   + _mirror_figures(mirrors) + ")")
        time.sleep(POLL)


def _mirror_figures(mirrors: list[_Mirror]) -> str:
    return ", ".join(f"{m.device} {m.offset >> 20}/{m.length >> 20} MiB" for m in mirrors)


def _wait_migration(qmp: QmpLike, state: dict[str, Any], deadline: float,
                    progress: Progress | None, target: str) -> dict[str, Any]:
    switched = False
    while True:
        result = qmp.execute("query-migrate") or {}
        status = result.get("status", "none")
        if status == "completed":
            return dict(result)
        if status in ("failed", "cancelled"):
            why = result.get("error-desc") or status
            raise errors.ExecError(f"migration to {target} failed: {why}")
        if status == "pre-switchover" and not switched:
            # The guest is stopped and its disks flushed, device state not sent yet: let each
            # ready mirror copy what is left and end, then let the migration finish.
            _complete_mirrors(qmp, state["mirrors"], deadline)
            qmp.execute("migrate-continue", state="pre-switchover")
            switched = True
            continue
        if progress:
            ram = result.get("ram") or {}
            progress({"phase": "migrate", "status": status,
                      "done": int(ram.get("transferred", 0)),
                      "total": int(ram.get("total", 0)),
                      "remaining": int(ram.get("remaining", 0))})
        if time.monotonic() > deadline:
            final = _cancel_migration(qmp)
            if final.get("status") == "completed":  # it finished meanwhile: keep it
                return final
            state["started"] = False  # canceled and settled already
            raise errors.ExecError(f"migration to {target} did not complete in time "
                                   f"({int((result.get('ram') or {}).get('remaining', 0)) >> 20}"
                                   " MiB of memory left); canceled")
        time.sleep(FAST_POLL if state["mirrors"] and not switched else POLL)


def _complete_mirrors(qmp: QmpLike, mirrors: list[_Mirror], deadline: float) -> None:
    """Cancel every ready mirror job (the guest is stopped) and wait until each ended with
    the target in sync; raise if one failed."""
    for m in mirrors:
        try:
            qmp.execute("block-job-cancel", device=m.job)
        except Exception as err:
            raise errors.ExecError(f"can't finish the mirror of disk {m.device}: "
                                   f"{_err(err)}") from None
    while True:
        jobs = _jobs(qmp)
        for m in mirrors:
            job = jobs.get(m.job)
            if m.done:
                continue
            if job is None:
                raise errors.ExecError(f"the mirror of disk {m.device} vanished at the "
                                       "switch-over")
            m.offset, m.length = int(job.get("offset", m.offset)), int(job.get("len", m.length))
            if job.get("status") == "concluded":
                if job.get("error"):
                    raise errors.ExecError(f"the mirror of disk {m.device} failed at the "
                                           f"switch-over: {job['error']}")
                if m.offset != m.length:
                    raise errors.ExecError(f"the mirror of disk {m.device} ended out of sync "
                                           f"({m.offset}/{m.length} bytes)")
                m.done = True
                _quietly(qmp, "job-dismiss", id=m.job)
        if all(m.done for m in mirrors):
            return
        if time.monotonic() > deadline:
            raise errors.ExecError("the disk mirror did not finish in time at the "
                                   "switch-over (" + _mirror_figures(mirrors) + ")")
        time.sleep(FAST_POLL)


def _cancel_migration(qmp: QmpLike, wait: float = 30.0) -> dict[str, Any]:
    """Cancel an outgoing migration and wait until QEMU settled (completed, failed,
    cancelled or none); returns the last query-migrate."""
    _quietly(qmp, "migrate_cancel")
    end = time.monotonic() + wait
    while True:
        result = dict(qmp.execute("query-migrate") or {})
        if result.get("status", "none") not in _ACTIVE or time.monotonic() > end:
            return result
        time.sleep(POLL)


def _cancel_jobs(qmp: QmpLike, wait: float = 30.0) -> None:
    """Force-cancel and dismiss every mirror job this module started."""
    end = time.monotonic() + wait
    try:
        while True:
            ours = {k: v for k, v in _jobs(qmp).items() if k.startswith(JOB_PREFIX)}
            if not ours:
                return
            for job_id, job in ours.items():
                if job.get("status") == "concluded":
                    _quietly(qmp, "job-dismiss", id=job_id)
                elif job.get("status") != "aborting":
                    _quietly(qmp, "block-job-cancel", device=job_id, force=True)
            if time.monotonic() > end:
                return
            time.sleep(POLL)
    except Exception:  # (best effort: the caller reports the first error)
        return


def _abort_source(qmp: QmpLike, state: dict[str, Any], was_running: bool) -> None:
    """After a failure: no migration, no mirror job, the guest running again."""
    migration = "none"
    try:
        if state["started"]:
            migration = _cancel_migration(qmp).get("status", "none")
    except Exception:
        pass
    _cancel_jobs(qmp)
    if migration == "completed":
        return  # the target has the guest now; never resume a second copy
    if was_running:
        _resume(qmp)


def _resume(qmp: QmpLike) -> None:
    try:
        if _status(qmp) != "running":
            qmp.execute("cont")
    except Exception:  # (best effort; the caller reports the first error)
        pass


def finalize_source(qmp: QmpLike, success: bool) -> None:
    """On the source: on success nothing is left to do (the caller quits this QEMU). On
    failure cancel whatever is left of the migration and resume the guest here, unless the
    migration had completed: then the guest may have run on the target, and resuming this
    copy could undo its writes, so it refuses (use ``migrate --cleanup``)."""
    if success:
        return
    result = _cancel_migration(qmp)
    _cancel_jobs(qmp)
    if result.get("status") == "completed":
        raise errors.WrongState("the migration had completed, so the instance may have run on "
                                "the target; not resuming it on the source",
                                "gnt-instance migrate --cleanup")
    if _status(qmp) != "running":
        try:
            qmp.execute("cont")
        except Exception as err:
            raise errors.ExecError(f"can't resume the instance on the source: "
                                   f"{_err(err)}") from None


# --- --cleanup ----------------------------------------------------------------------------

def side_state(qmp: QmpLike | None, role: str) -> str:
    """Classify one side (``role`` "source" or "target") for :func:`decide_cleanup`; None
    (no QEMU process) or a QEMU that doesn't answer is ABSENT."""
    if qmp is None:
        return ABSENT
    try:
        status = _status(qmp)
        migration = _migration(qmp).get("status", "none")
    except Exception:  # (a QEMU that doesn't answer is as good as gone)
        return ABSENT
    if role == "target":
        if status == "inmigrate":
            return WAITING
        return RUNNING if status == "running" else LOADED
    # Only the run state tells an outgoing migration that completed: QEMU leaves the source
    # in postmigrate, whether the guest ran or was paused, while a QEMU that once received
    # the guest (an earlier migration's target) reports that incoming migration as
    # "completed" for as long as it runs it.
    if status == "postmigrate":
        return HANDED_OVER
    if status == "running":
        return RUNNING
    if migration in _ACTIVE:
        return MIGRATING
    return STOPPED


def cleanup_source(qmp: QmpLike, action: str | None) -> None:
    """Carry out the plan's ``source`` action on the source QEMU (quit is the caller's)."""
    if action in (KEEP, RESUME):
        if _migration(qmp).get("status", "none") in _ACTIVE:
            _cancel_migration(qmp)
        _cancel_jobs(qmp)
        if _status(qmp) == "postmigrate":
            # A migration still streaming when the states were read has completed since
            # (too late to cancel): the target runs the guest, so the plan is stale and
            # must not go on to kill it.
            raise errors.WrongState("the migration completed while --cleanup was deciding; "
                                    "the target has the instance now",
                                    "run gnt-instance migrate --cleanup again")
    if action == RESUME:
        _resume(qmp)


def cleanup_target(qmp: QmpLike, action: str | None) -> None:
    """Carry out the plan's ``target`` action on the target QEMU (kill is the caller's)."""
    if action in (KEEP, RESUME, KILL):
        _quietly(qmp, "nbd-server-stop")
    if action == RESUME:
        _resume(qmp)


def cleanup(source: QmpLike | None, target: QmpLike | None, *,
            settle: float = 10.0) -> CleanupPlan:
    """``gnt-instance migrate --cleanup`` with both QEMUs at hand (None for a side without
    a QEMU process): classify both sides, decide with :func:`decide_cleanup`, carry out the
    QMP part with :func:`cleanup_source`/:func:`cleanup_target`. Quitting/killing QEMUs and
    recording the primary node are the caller's; the plan says which. Across two nodes the
    master does the same in three steps: :func:`side_state` on each node, the decision,
    then each node's cleanup_* call."""
    src = side_state(source, "source")
    dst = side_state(target, "target")
    end = time.monotonic() + settle
    # a target still loading the last of a completed migration is about to run: let it
    while settling(src, dst) and time.monotonic() < end:
        time.sleep(POLL)
        dst = side_state(target, "target")
    plan = decide_cleanup(src, dst)
    if source is not None:
        cleanup_source(source, plan.source)
    if target is not None:
        cleanup_target(target, plan.target)
    return plan


# --- small helpers ------------------------------------------------------------------------

def _status(qmp: QmpLike) -> str:
    return str((qmp.execute("query-status") or {}).get("status", "unknown"))


def _migration(qmp: QmpLike) -> dict[str, Any]:
    return dict(qmp.execute("query-migrate") or {})


def _quietly(qmp: QmpLike, command: str, **arguments: Any) -> None:
    try:
        qmp.execute(command, **arguments)
    except Exception:  # (best-effort teardown)
        pass
