"""The kvm migration engine (cardume.node.hypervisor.kvm_migrate) against real QEMU
processes under software emulation, on 127.0.0.1: a plain live migration with a shared
disk, a block-mirrored live migration of a local disk with writes before and during it, and
a target killed in the middle (the source must keep running).

Every QEMU started here is killed by its PID when the test ends, whatever happened."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cardume import errors
from cardume.node.hypervisor import kvm_migrate
from cardume.rules import migration

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for kvmguest

QEMU = shutil.which("qemu-system-x86_64")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed")]

HOST = "127.0.0.1"
T = TypeVar("T")
DISK_MIB = 32


class Qmp:
    """A minimal synchronous QMP client on a unix socket (a QmpLike)."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)
        self.sock.settimeout(60)
        self.file = self.sock.makefile("rwb")
        self.events: list[dict[str, Any]] = []
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict[str, Any]:
        line = self.file.readline()
        if not line:
            raise ConnectionError("QMP connection closed")
        return dict(json.loads(line))

    def execute(self, command: str, **arguments: Any) -> Any:
        msg: dict[str, Any] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.file.write(json.dumps(msg).encode() + b"\n")
        self.file.flush()
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise RuntimeError(reply["error"].get("desc", str(reply["error"])))
            return reply.get("return")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class Console:
    """The guest's serial console on a unix socket, read by a thread into a buffer."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)
        self.text = ""
        self.lock = threading.Lock()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.text += data.decode(errors="replace").replace("\r", "")

    def mark(self) -> int:
        with self.lock:
            return len(self.text)

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def wait(self, pattern: str, since: int = 0, timeout: float = 60.0) -> re.Match[str]:
        end = time.monotonic() + timeout
        while True:
            with self.lock:
                found = re.search(pattern, self.text[since:])
            if found:
                return found
            if time.monotonic() > end:
                with self.lock:
                    tail = self.text[-2000:]
                raise AssertionError(f"no {pattern!r} on the console within {timeout}s; "
                                     f"last output:\n{tail}")
            time.sleep(0.05)

    def run(self, command: str, expect: str, timeout: float = 60.0) -> re.Match[str]:
        since = self.mark()
        self.send(command)
        return self.wait(expect, since, timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def until(probe: Callable[[], T], done: Callable[[T], bool], what: str,
          timeout: float = 60.0) -> T:
    """Probe until ``done`` accepts what it found; that. Fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if done(found):
            return found
        assert time.monotonic() < deadline, f"no {what} within {timeout}s (last: {found!r})"
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Vm:
    def __init__(self, proc: subprocess.Popen[bytes], qmp: Qmp, console: Console) -> None:
        self.proc, self.qmp, self.console = proc, qmp, console


@pytest.fixture(scope="module")
def guest() -> Any:
    try:
        import kvmguest
        return kvmguest.build()
    except Exception as err:  # no network, no dpkg-deb ...
        pytest.skip(f"can't build the test guest: {err}")


@pytest.fixture
def qemus(tmp_path: Path, guest: Any) -> Iterator[Any]:
    """A factory of QEMU processes; every one is killed by PID at the end."""
    started: list[Vm] = []

    def start(name: str, disk: Path | None, incoming: bool = False) -> Vm:
        qmp_path, serial_path = tmp_path / f"{name}.qmp", tmp_path / f"{name}.serial"
        args = [str(QEMU), "-accel", "tcg", "-m", "128", "-nodefaults", "-display", "none",
                "-name", name, "-kernel", str(guest.kernel), "-initrd", str(guest.initrd),
                "-append", "console=ttyS0 quiet",
                "-serial", f"unix:{serial_path},server=on,wait=off",
                "-qmp", f"unix:{qmp_path},server=on,wait=off"]
        if disk is not None:
            args += ["-drive", f"file={disk},format=raw,if=none,id=disk0",
                     "-device", "virtio-blk-pci,drive=disk0,id=vda"]
        if incoming:
            args += kvm_migrate.incoming_args()
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                stdout=open(tmp_path / f"{name}.log", "wb"),  # noqa: SIM115
                                stderr=subprocess.STDOUT)
        try:
            vm = Vm(proc, Qmp(qmp_path), Console(serial_path))
        except Exception:
            proc.kill()
            proc.wait()
            raise
        started.append(vm)
        return vm

    try:
        yield start
    finally:
        for vm in started:
            vm.qmp.close()
            vm.console.close()
            if vm.proc.poll() is None:
                os.kill(vm.proc.pid, 9)
            vm.proc.wait(timeout=30)


def boot(vm: Vm) -> None:
    vm.console.wait(r"cardume-guest: up", timeout=180)
    vm.console.run("echo ready-$((1+1))", r"ready-2")


def answers(vm: Vm) -> None:
    vm.console.run("echo hello-$((6*7))", r"hello-42", timeout=60)


def raw_disk(path: Path) -> Path:
    with open(path, "wb") as f:
        f.truncate(DISK_MIB << 20)
    return path


def report(what: str, figures: dict[str, Any]) -> None:
    print(f"\n{what}: total {figures['total_time_ms']} ms, downtime {figures['downtime_ms']} ms"
          f" (QMP), setup {figures['setup_time_ms']} ms, RAM {figures['transferred_bytes']} B,"
          f" mirror {figures['mirror_bytes']} B in {figures['mirror_time_ms']} ms,"
          f" all in {figures['elapsed_ms']} ms,"
          f" disk {DISK_MIB} MiB")


def test_live_migration_shared_disk(qemus: Any, tmp_path: Path) -> None:
    disk = raw_disk(tmp_path / "shared.img")
    src = qemus("src", disk)
    boot(src)
    src.console.run("echo SHARED-MARK | dd of=/dev/vda bs=512 seek=7 conv=fsync 2>&1"
                    " && echo wrote-$((3*3))", r"wrote-9")
    dst = qemus("dst", disk, incoming=True)
    assert dst.qmp.execute("query-status")["status"] == "inmigrate"
    info = kvm_migrate.accept(dst.qmp, listen_host=HOST, port=free_port(), mirror_disks=None)
    assert info["exports"] == [] and info["nbd_port"] is None
    seen: list[dict[str, Any]] = []
    figures = kvm_migrate.migrate(src.qmp, info, live=True, downtime_ms=30, bandwidth_mib=32,
                                  mirror=False, timeout=120, progress=seen.append)
    report("shared-disk live migration", figures)
    assert figures["status"] == "completed" and figures["total_time_ms"] > 0
    assert seen and all(p["phase"] == "migrate" for p in seen)
    assert src.qmp.execute("query-status")["status"] == "postmigrate"
    kvm_migrate.finalize_target(dst.qmp, True)
    kvm_migrate.finalize_source(src.qmp, True)
    assert dst.qmp.execute("query-status")["status"] == "running"
    src.qmp.execute("quit")
    answers(dst)
    dst.console.run("echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/vda bs=512 skip=7 count=1"
                    " 2>/dev/null | head -c 11; echo", r"SHARED-MARK\n")


def test_non_live_migration_resumes_on_target(qemus: Any, tmp_path: Path) -> None:
    src = qemus("src", None)
    boot(src)
    dst = qemus("dst", None, incoming=True)
    info = kvm_migrate.accept(dst.qmp, listen_host=HOST, port=free_port(), mirror_disks=[])
    figures = kvm_migrate.migrate(src.qmp, info, live=False, downtime_ms=30, bandwidth_mib=64,
                                  mirror=False, timeout=120)
    report("diskless non-live migration", figures)
    assert dst.qmp.execute("query-status")["status"] == "paused"  # the source was stopped
    kvm_migrate.finalize_target(dst.qmp, True)
    assert dst.qmp.execute("query-status")["status"] == "running"
    answers(dst)


# A writer that never stops (until killed on the target): write i goes to sector
# 4096 + i % RING, then "W<i>" on the console once dd's fsync returned. Each round forks a
# dd and dirties guest memory: at 8 MiB/s the RAM copy converges within a 300 ms downtime
# target, not within Ganeti's default 30 ms (QEMU then keeps iterating until the timeout).
RING = 4000
LOOP = ("i=0; while true; do i=$((i+1)); echo LOOP-$i | dd of=/dev/vda bs=512 "
        f"seek=$((4096+i%{RING})) conv=fsync 2>/dev/null; echo W$i; usleep 20000; done &")


def sector(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(n * 512)
        return f.read(512).split(b"\n")[0]


def test_block_mirrored_live_migration(qemus: Any, tmp_path: Path) -> None:
    src_disk, dst_disk = raw_disk(tmp_path / "src.img"), raw_disk(tmp_path / "dst.img")
    src = qemus("src", src_disk)
    boot(src)
    src.console.run("echo MARK-BEFORE | dd of=/dev/vda bs=512 seek=1 conv=fsync 2>/dev/null"
                    " && echo wrote-$((2*2))", r"wrote-4")
    dst = qemus("dst", dst_disk, incoming=True)
    port, nbd_port = free_port(), free_port()
    info = kvm_migrate.accept(dst.qmp, listen_host=HOST, port=port, nbd_port=nbd_port,
                              mirror_disks=[{"device": "disk0"}])
    assert info["nbd_port"] == nbd_port and info["exports"][0]["device"] == "disk0"

    phases: list[str] = []
    outcome: dict[str, Any] = {}
    mirroring, written = threading.Event(), threading.Event()

    trail: list[tuple[float, str, Any]] = []

    def note(p: dict[str, Any]) -> None:
        phases.append(p["phase"])
        state = (p["phase"], p.get("status"), p.get("remaining"))
        if not trail or trail[-1][1:] != state[:2] + (None,) and trail[-1][1:3] != state[:2]:
            trail.append((round(time.monotonic(), 2), *state[:2], p.get("remaining")))
        if p["phase"] == "mirror" and not mirroring.is_set():
            # The engine waits here, its mirror job started, until the test's write is
            # acknowledged: the write then lands while the mirror runs, however slowly the
            # guest answers on a loaded machine (the mirror copies on meanwhile; a mirror
            # that is ready still carries every write until the switch-over).
            mirroring.set()
            written.wait(90)

    def run() -> None:
        try:
            outcome["figures"] = kvm_migrate.migrate(
                src.qmp, info, live=True, downtime_ms=300, bandwidth_mib=8, mirror=True,
                timeout=120, progress=note)
        except Exception as err:
            outcome["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert mirroring.wait(60), outcome
        # written while the mirror runs, then a writer that keeps going through "ready",
        # the RAM copy and the switch-over
        src.console.run("echo MARK-DURING | dd of=/dev/vda bs=512 seek=3 conv=fsync"
                        " 2>/dev/null && echo wrote-$((4*4))", r"wrote-16")
        assert "migrate" not in phases  # still in the mirror phase
        src.console.send(LOOP)
    finally:
        written.set()
        thread.join(timeout=150)
    assert "error" not in outcome, (outcome.get("error"), trail)
    figures = outcome["figures"]
    report("block-mirrored live migration", figures)
    assert figures["mirror_bytes"] >= DISK_MIB << 20
    acked = [int(n) for n in re.findall(r"^W(\d+)$", src.console.text, re.M)]
    kvm_migrate.finalize_target(dst.qmp, True)
    kvm_migrate.finalize_source(src.qmp, True)
    src.qmp.execute("quit")
    answers(dst)
    dst.console.run("kill %1 2>/dev/null; kill $(pidof dd) 2>/dev/null; echo killed-$((5*5))",
                    r"killed-25")
    # in the guest, from the disk rather than the page cache that came with its RAM
    dst.console.run("echo 3 > /proc/sys/vm/drop_caches; for s in 1 3; do dd if=/dev/vda "
                    "bs=512 skip=$s count=1 2>/dev/null | head -c 11; echo; done",
                    r"MARK-BEFORE\nMARK-DURING\n")
    # and on the target's image itself: every write the source acknowledged is there
    assert sector(dst_disk, 1) == b"MARK-BEFORE" and sector(dst_disk, 3) == b"MARK-DURING"
    print(f"writes acknowledged on the source during the migration: {len(acked)}")
    assert acked, "the writer loop never ran on the source"
    # the ring holds, for each of the last RING acknowledged writes, that write or a later
    # one (the loop went on on the target): never an older one
    last = max(acked)
    for n in range(max(1, last - RING + 1), last + 1):
        found = sector(dst_disk, 4096 + n % RING)
        assert found.startswith(b"LOOP-"), (n, found)
        written = int(found[5:])
        assert written >= n and written % RING == n % RING, (n, written)


def test_target_dies_mid_migration_source_keeps_running(qemus: Any, tmp_path: Path) -> None:
    src_disk, dst_disk = raw_disk(tmp_path / "src.img"), raw_disk(tmp_path / "dst.img")
    src = qemus("src", src_disk)
    boot(src)
    dst = qemus("dst", dst_disk, incoming=True)
    info = kvm_migrate.accept(dst.qmp, listen_host=HOST, port=free_port(),
                              nbd_port=free_port(), mirror_disks=[{"device": "disk0"}])
    killed: list[bool] = []

    def kill_target(progress: dict[str, Any]) -> None:
        if not killed and progress["done"] > 0:
            os.kill(dst.proc.pid, 9)
            killed.append(True)

    with pytest.raises(errors.ExecError, match="mirror of disk disk0") as caught:
        kvm_migrate.migrate(src.qmp, info, live=True, downtime_ms=30, bandwidth_mib=2,
                            mirror=True, timeout=120, progress=kill_target)
    print(f"\nthe error: {caught.value}")
    assert killed
    assert src.qmp.execute("query-status")["status"] == "running"
    assert src.qmp.execute("query-block-jobs") == []
    assert src.qmp.execute("query-migrate").get("status", "none") == "none"  # never started
    answers(src)

    # and in the RAM phase, without a mirror: a new target, killed while RAM is copied
    dst2 = qemus("dst2", src_disk, incoming=True)
    info = kvm_migrate.accept(dst2.qmp, listen_host=HOST, port=free_port(), mirror_disks=None)
    killed.clear()

    def kill_target2(progress: dict[str, Any]) -> None:
        if not killed and progress["phase"] == "migrate" and progress["done"] > 0:
            os.kill(dst2.proc.pid, 9)
            killed.append(True)

    with pytest.raises(errors.ExecError, match="migration to 127.0.0.1") as caught:
        kvm_migrate.migrate(src.qmp, info, live=True, downtime_ms=30, bandwidth_mib=1,
                            mirror=False, timeout=120, progress=kill_target2)
    print(f"the error: {caught.value}")
    assert killed
    assert src.qmp.execute("query-status")["status"] == "running"
    answers(src)
    plan = kvm_migrate.cleanup(src.qmp, None)
    assert plan.runs_on == "source" and plan.target is None


def test_cleanup_after_interrupted_migrations(qemus: Any, tmp_path: Path) -> None:
    disk = raw_disk(tmp_path / "shared.img")
    src = qemus("src", disk)
    boot(src)
    # interrupted in the middle: the migration was started (slowly) and nobody watched it
    dst = qemus("dst", disk, incoming=True)
    info = kvm_migrate.accept(dst.qmp, listen_host=HOST, port=free_port(), mirror_disks=None)
    src.qmp.execute("migrate-set-parameters", **{"max-bandwidth": 1 << 20})
    src.qmp.execute("migrate", uri=f"tcp:{HOST}:{info['port']}")
    # 'setup' first, then 'active' for a long while at 1 MiB/s
    status = until(lambda: src.qmp.execute("query-migrate")["status"],
                   lambda found: found != "setup", "the migration past its setup")
    assert status == "active"
    plan = kvm_migrate.cleanup(src.qmp, dst.qmp)
    print(f"\nmid-migration: {plan}")
    assert (plan.runs_on, plan.source, plan.target) == ("source", migration.KEEP,
                                                        migration.KILL)
    assert src.qmp.execute("query-migrate")["status"] == "cancelled"
    os.kill(dst.proc.pid, 9)
    answers(src)
    # interrupted at the switch-over (the guest paused, as with the mirror): back to the source
    dst3 = qemus("dst3", disk, incoming=True)
    info = kvm_migrate.accept(dst3.qmp, listen_host=HOST, port=free_port(), mirror_disks=None)
    src.qmp.execute("migrate-set-capabilities", capabilities=[
        {"capability": "pause-before-switchover", "state": True}])
    src.qmp.execute("migrate-set-parameters", **{"max-bandwidth": 64 << 20})
    src.qmp.execute("migrate", uri=f"tcp:{HOST}:{info['port']}")
    until(lambda: src.qmp.execute("query-migrate")["status"],
          lambda found: found == "pre-switchover", "the migration at its switch-over")
    assert src.qmp.execute("query-status")["status"] != "running"
    plan = kvm_migrate.cleanup(src.qmp, dst3.qmp)
    print(f"at the switch-over: {plan}")
    assert (plan.runs_on, plan.source, plan.target) == ("source", migration.RESUME,
                                                        migration.KILL)
    assert src.qmp.execute("query-status")["status"] == "running"
    os.kill(dst3.proc.pid, 9)
    answers(src)
    # interrupted after the hand-over, before anyone finalized: the target keeps it
    dst2 = qemus("dst2", disk, incoming=True)
    info = kvm_migrate.accept(dst2.qmp, listen_host=HOST, port=free_port(), mirror_disks=None)
    kvm_migrate.migrate(src.qmp, info, live=False, bandwidth_mib=64, timeout=120)
    plan = kvm_migrate.cleanup(src.qmp, dst2.qmp)
    print(f"after the hand-over: {plan}")
    assert (plan.runs_on, plan.source, plan.target) == ("target", migration.QUIT,
                                                        migration.RESUME)
    assert dst2.qmp.execute("query-status")["status"] == "running"
    src.qmp.execute("quit")
    answers(dst2)
