"""Children of node calls are bound to the node daemon's life (node/children.py): their
process groups and loop devices are recorded while they live, swept (killed, detached) when
the daemon dies — by its sentinel, or by the next daemon at start-up — and never anything
else: a recycled pid, a live daemon's children, an instance's daemonized QEMU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from loop_kit import attached, loop_works

from cardume.node import children, sentinel
from cardume.node.cmd import SubprocessRunner
from cardume.node.hypervisor import kvm
from cardume.node.storage import loop

# A node daemon in miniature: its guard, and one call running an "OS script" (through
# osapi.execute, as instance_os_add does) that starts a child of its own. A line on stdin
# stops it cleanly.
DAEMON = r"""
import sys, threading
from cardume.node import osapi, sentinel
run_dir, out = sys.argv[1], sys.argv[2]
guard = sentinel.guard(run_dir)
script = 'echo $$ > "$1/script.tmp"; mv "$1/script.tmp" "$1/script"; ' \
         'sleep 300 >/dev/null 2>&1 & echo $! > "$1/child.tmp"; mv "$1/child.tmp" "$1/child"; ' \
         'sleep 301'
def call():
    with open(out + "/log", "ab") as log:
        osapi.execute(["/bin/sh", "-c", script, "create", out], cwd="/",
                      env={"PATH": "/usr/bin:/bin"}, output=log, timeout=600)
threading.Thread(target=call, daemon=True).start()
print(guard.sentinel.pid, guard.directory, flush=True)
sys.stdin.readline()
guard.close()
"""

# What QEMU's -daemonize does: fork, the child starts a session of its own and forks the
# real process, which drops its standard descriptors and tells the first one it is up; the
# command the node ran then returns while the "guest" lives on.
FAKE_QEMU = r"""#!{python}
import os, sys
args = sys.argv[1:]
pidfile, name = args[args.index("-pidfile") + 1], args[args.index("-name") + 1]
ready, up = os.pipe()
if os.fork():
    os.close(up)
    os.read(ready, 1)
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
null = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)
with open(pidfile, "w") as handle:
    handle.write(str(os.getpid()))
os.write(up, b"x")
os.execv(sys.executable, ["qemu-fake", "-c", "import time; time.sleep(600)", "-name", name])
"""


def alive(pid: int) -> bool:
    """A live process (a zombie is dead: it may wait long for a reaper here)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rpartition(")")[2].split()[:1] != ["Z"]
    except OSError:
        return False


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


@pytest.fixture()
def records(tmp_path: Path) -> Iterator[Path]:
    """A records directory, as a running node daemon has; recording stops afterwards."""
    directory = tmp_path / "run" / "children" / "1-1"
    children.enable(str(directory))
    try:
        yield directory
    finally:
        children.disable()


class Spawned:
    """Processes SIGKILLed at the end whatever happened, with the group each one leads (the
    test's own sleepers and scripts: a failed test leaves nothing running)."""

    def __init__(self) -> None:
        self.started: dict[int, int] = {}

    def add(self, *pids: int) -> None:
        for pid in pids:
            when = children.start_time(pid)  # now, so a recycled pid is never hit later
            if when is not None:
                self.started[pid] = when

    def kill(self) -> None:
        for pid, when in self.started.items():
            children.kill_group(pid, when)
            if children.start_time(pid) == when and alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture()
def spawned() -> Iterator[Spawned]:
    found = Spawned()
    yield found
    found.kill()


def sleeper(seconds: int = 300) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", str(seconds)], start_new_session=True)


# --- records ----------------------------------------------------------------------------


def test_nothing_is_recorded_outside_a_node_daemon(tmp_path: Path) -> None:
    assert children.recording() is None
    proc = sleeper()
    try:
        assert children.record_group(proc.pid) is None
        assert children.record_loop("/dev/loop7", str(tmp_path)) is None
    finally:
        proc.kill()
        proc.wait()


def test_a_command_is_recorded_while_it_runs_and_its_sweep_kills_its_children(
        records: Path, tmp_path: Path, spawned: Spawned) -> None:
    kid = tmp_path / "kid"
    result: dict[str, Any] = {}

    def call() -> None:
        result["r"] = SubprocessRunner().run(
            ["sh", "-c", f'sleep 300 >/dev/null 2>&1 & echo $! > {kid}; sleep 301'],
            timeout=120, check=False)
    worker = threading.Thread(target=call)
    worker.start()
    wait_for(lambda: read_pid(kid), "the command's child")
    child = read_pid(kid)
    assert child is not None
    spawned.add(child)
    [name] = os.listdir(records)
    pgid, started = name.removeprefix("pg-").split("-")
    spawned.add(int(pgid))
    assert children.process_group(child) == int(pgid)
    assert children.start_time(int(pgid)) == int(started)

    swept = sentinel.sweep(str(records))  # what the sentinel does when the daemon dies
    assert swept.groups == 1
    worker.join(30)
    assert result["r"].rc == -signal.SIGKILL
    wait_for(lambda: not alive(child), "the command's child to die")
    assert not records.exists()


def test_a_finished_command_leaves_no_record_and_no_child(records: Path,
                                                          spawned: Spawned) -> None:
    result = SubprocessRunner().run(["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"])
    child = int(result.stdout)
    spawned.add(child)
    wait_for(lambda: not alive(child), "the child it left in its group to die")
    assert os.listdir(records) == []


def test_a_recycled_pid_is_never_killed(tmp_path: Path, spawned: Spawned) -> None:
    """A record whose start time is not that of the process now holding the number."""
    directory = tmp_path / "records"
    directory.mkdir()
    proc = sleeper()
    spawned.add(proc.pid)
    started = children.start_time(proc.pid)
    assert started is not None
    (directory / f"pg-{proc.pid}-{started - 1}").touch()
    assert sentinel.sweep(str(directory)).groups == 0
    assert alive(proc.pid)
    assert not directory.exists()  # the record is gone all the same


def test_a_group_whose_leader_exited_is_still_killed(tmp_path: Path,
                                                     spawned: Spawned) -> None:
    directory = tmp_path / "records"
    directory.mkdir()
    kid = tmp_path / "kid"
    leader = subprocess.Popen(["sh", "-c", f"sleep 300 >/dev/null 2>&1 & echo $! > {kid}"],
                              start_new_session=True)
    started = children.start_time(leader.pid)
    (directory / f"pg-{leader.pid}-{started}").touch()
    leader.wait()
    child = read_pid(kid)
    assert child is not None and alive(child)
    spawned.add(child)
    assert sentinel.sweep(str(directory)).groups == 1
    wait_for(lambda: not alive(child), "the group's last member to die")


def test_start_up_sweeps_dead_daemons_records_and_spares_live_ones(
        tmp_path: Path, spawned: Spawned) -> None:
    run_dir = tmp_path / "run"
    gone = subprocess.Popen(["true"])
    gone_started = children.start_time(gone.pid)
    gone.wait()
    victim, bystander = sleeper(), sleeper()
    spawned.add(victim.pid, bystander.pid)
    me = f"{os.getpid()}-{children.start_time(os.getpid())}"
    dead = run_dir / "children" / f"{gone.pid}-{gone_started}"
    live = run_dir / "children" / me
    for directory, proc in ((dead, victim), (live, bystander)):
        directory.mkdir(parents=True)
        (directory / f"pg-{proc.pid}-{children.start_time(proc.pid)}").touch()
    swept = sentinel.sweep_stale(str(run_dir))
    assert swept.groups == 1
    wait_for(lambda: not alive(victim.pid), "the dead daemon's child to die")
    assert alive(bystander.pid)
    assert os.listdir(run_dir / "children") == [me]


# --- loop devices -------------------------------------------------------------------------


def test_a_recorded_loop_device_is_detached_by_the_sweep(records: Path,
                                                         tmp_path: Path) -> None:
    if not loop_works(tmp_path):
        pytest.skip("losetup can't attach loop devices here (needs root and /dev/loop*)")
    image = tmp_path / "disk.img"
    with open(image, "wb") as handle:
        handle.truncate(1024 * 1024)
    devices = loop.LoopDevices()
    device = devices.attach(str(image))  # the daemon dies before it can detach it
    try:
        name = os.path.basename(device)
        assert (records / f"loop-{name}").read_text() == str(image.resolve())
        assert sentinel.sweep(str(records)).loops == 1
        assert attached(image) == ""
    finally:
        loop.detach(device)
    # a record naming a device that serves another file now is left alone
    assert not sentinel.release_loop(name, str(tmp_path / "another.img"))


def test_a_normal_attach_and_detach_leaves_no_record(records: Path, tmp_path: Path) -> None:
    if not loop_works(tmp_path):
        pytest.skip("losetup can't attach loop devices here (needs root and /dev/loop*)")
    image = tmp_path / "disk.img"
    with open(image, "wb") as handle:
        handle.truncate(1024 * 1024)
    with loop.exposed([str(image)]) as devices:
        assert os.listdir(records) == [f"loop-{os.path.basename(devices[0])}"]
    assert os.listdir(records) == []
    assert attached(image) == ""


# --- the sentinel ---------------------------------------------------------------------------


def start_daemon(tmp_path: Path) -> tuple[subprocess.Popen[str], int, Path, int, int]:
    """The miniature daemon, its sentinel's pid, its records, and its call's script and
    the script's child, both running."""
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", DAEMON, str(tmp_path / "run"), str(out)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    sentinel, directory = proc.stdout.readline().split()
    wait_for(lambda: read_pid(out / "script") and read_pid(out / "child"),
             "the call's script and its child")
    script, child = read_pid(out / "script"), read_pid(out / "child")
    assert script is not None and child is not None
    assert alive(int(sentinel))
    return proc, int(sentinel), Path(directory), script, child


def test_the_sentinel_kills_a_call_s_script_and_its_child_when_the_daemon_is_killed(
        tmp_path: Path, spawned: Spawned) -> None:
    daemon, guard_pid, directory, script, child = start_daemon(tmp_path)
    spawned.add(daemon.pid, guard_pid, script, child)
    assert [n.startswith("pg-") for n in os.listdir(directory)] == [True]
    daemon.kill()  # SIGKILL: nothing of the daemon's own runs any more
    daemon.wait()
    wait_for(lambda: not alive(script) and not alive(child), "the script and its child to die")
    wait_for(lambda: not directory.exists(), "the records to go")
    wait_for(lambda: not alive(sentinel), "the sentinel to leave")


def test_a_clean_stop_kills_the_call_and_sends_the_sentinel_away(
        tmp_path: Path, spawned: Spawned) -> None:
    daemon, sentinel, directory, script, child = start_daemon(tmp_path)
    spawned.add(daemon.pid, sentinel, script, child)
    daemon.communicate("stop\n", timeout=60)
    assert daemon.returncode == 0
    assert not alive(script) and not alive(child)
    assert not directory.exists()
    wait_for(lambda: not alive(sentinel), "the sentinel to leave")


def test_the_sentinel_is_a_small_shell_while_the_daemon_lives(tmp_path: Path,
                                                               spawned: Spawned) -> None:
    daemon, guard_pid, directory, script, child = start_daemon(tmp_path)
    spawned.add(daemon.pid, guard_pid, script, child)
    try:
        argv = Path(f"/proc/{guard_pid}/cmdline").read_bytes().split(b"\0")[:-1]
        assert argv[:3] == [b"/bin/sh", b"-c", sentinel.SENTINEL_SCRIPT.encode()]
        assert argv[-1] == str(directory).encode()  # an argument, not part of the script
        # its own session: a Ctrl-C meant for the daemon's terminal does not reach it
        assert os.getsid(guard_pid) == guard_pid
    finally:
        daemon.communicate("stop\n", timeout=60)


# --- an instance's QEMU is not a call's child -------------------------------------------------


def test_a_daemonized_qemu_started_by_the_hypervisor_is_not_recorded_nor_swept(
        records: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        spawned: Spawned) -> None:
    fake = tmp_path / "qemu-system-x86_64"
    fake.write_text(FAKE_QEMU.format(python=sys.executable))
    fake.chmod(0o755)
    monkeypatch.setattr(kvm, "QEMU", str(fake))
    hv = kvm.KvmHypervisor(str(tmp_path / "hv" / "kvm"), runner=SubprocessRunner(), netns="")
    spec = {"name": "vm1", "uuid": "0d9c3f4e-7c59-4c1e-9f57-3a4b5c6d7e8f",
            "hypervisor": "kvm", "hvparams": {"kvm_flag": "disabled", "acpi": True,
                                              "serial_console": False},
            "beparams": {"maxmem": 128, "minmem": 128, "vcpus": 1}, "disks": [], "nics": []}
    hv.start(spec)
    pid = int(hv.read_runtime("vm1")["pid"])
    spawned.add(pid)
    assert kvm.qemu_alive(pid, "vm1")
    assert os.listdir(records) == []  # nothing of it was left recorded
    # the daemon dies: its sentinel sweeps, then the next daemon's start-up sweep
    sentinel.sweep(str(records))
    sentinel.sweep_stale(str(records.parent.parent))
    assert kvm.qemu_alive(pid, "vm1")
