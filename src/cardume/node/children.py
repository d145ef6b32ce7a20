"""What a node call starts outside the daemon dies with the daemon, even a SIGKILLed one.

Node calls run commands (cmd.py), OS scripts (osapi.py) and attach loop devices for them
(storage/loop.py). Each such child gets a record while it lives: an empty file
``pg-<pgid>-<start time>`` per process group (every child is started in a session of its
own, so its group holds whatever it starts, debootstrap included) and ``loop-<device>``
holding the backing file of each loop device, in a directory of the running daemon,
``<run>/children/<daemon pid>-<daemon start time>/``.

A SIGKILL can't be caught, and PR_SET_PDEATHSIG reaches neither the script's own children
nor survives the worker thread that forked, so a sentinel watches the daemon instead: a
``/bin/sh`` started by the daemon at start-up, blocked reading a pipe whose only writer is
the daemon. When the daemon dies the pipe reads end-of-file and the sentinel becomes
``python -m cardume.node.children DIR``, which kills the recorded groups, detaches the
recorded loop devices and removes DIR. The idle sentinel is a shell (about 1 MiB), not a
Python interpreter. On a clean stop the daemon sweeps its directory itself and writes a
line to the pipe, which tells the sentinel to leave quietly. At start-up, the daemon also
sweeps the directories of previous daemons that are no longer alive (a sentinel may have
been killed too).

The start time (field 22 of /proc/PID/stat) makes sure a recycled pid is never killed: a
group's id stays taken while any member lives, so a group whose leader is gone is still
ours, and a leader with another start time is somebody else's process. Instances' QEMUs
are never recorded: QEMU daemonizes into a session of its own and outlives the command
that started it, so instances survive a node daemon restart (hypervisor/kvm.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

DIRECTORY = "children"  # under the node's run directory
GROUP = "pg-"
LOOP = "loop-"
SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
SENTINEL_NAME = "cardume-noded-sentinel"
# Fixed text; the directory and the interpreter come as arguments, never inside it. A line
# on the pipe (a clean stop) makes it leave; end-of-file (the daemon died) makes it sweep.
SENTINEL_SCRIPT = 'read -r _ && exit 0; exec "$@"'
SENTINEL_WAIT = 5.0

_records: str | None = None  # this daemon's directory of records; None: not recording


# --- /proc ----------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name ([0] is the state, field 3)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    # "pid (comm) state ...": comm may hold spaces and parentheses
    return data.rpartition(b")")[2].decode("ascii", errors="replace").split()


def start_time(pid: int) -> int | None:
    """When pid started (clock ticks after boot), None if there is no such process."""
    fields = _stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def process_group(pid: int) -> int | None:
    fields = _stat(pid)
    try:
        return int(fields[2]) if fields else None
    except (IndexError, ValueError):
        return None


# --- records --------------------------------------------------------------------------------


def enable(directory: str) -> None:
    """Record the children started from now on in directory (created private)."""
    global _records
    os.makedirs(directory, mode=0o700, exist_ok=True)
    _records = directory


def disable() -> None:
    global _records
    _records = None


def recording() -> str | None:
    """Where children are recorded, None when they are not (tools, tests, the CLI)."""
    return _records


def _create(directory: str, name: str, content: bytes = b"") -> str | None:
    path = os.path.join(directory, name)
    try:
        if content:
            tmp = os.path.join(directory, f".{name}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, content)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    except OSError as err:  # the daemon is stopping (its directory went): not fatal
        log.warning("can't record %s in %s: %s", name, directory, err.strerror)
        return None
    return path


def record_group(pid: int) -> str | None:
    """Record the process group a child started with start_new_session leads; the record's
    path (for forget), None when nothing is recorded."""
    directory = _records
    if directory is None:
        return None
    started = start_time(pid)  # not reaped yet, so it is still there (maybe a zombie)
    if started is None:
        return None
    return _create(directory, f"{GROUP}{pid}-{started}")


def record_loop(device: str, backing: str) -> str | None:
    """Record a loop device attached to backing for a call."""
    directory = _records
    if directory is None:
        return None
    name = os.path.basename(device)
    return _create(directory, f"{LOOP}{name}", os.path.realpath(backing).encode())


def forget(record: str | None) -> None:
    if record is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(record)


@contextlib.contextmanager
def bound(pid: int) -> Iterator[None]:
    """The group pid leads is recorded while the block runs (the block kills what is left
    of the group before it ends, so nothing unrecorded outlives it)."""
    record = record_group(pid)
    try:
        yield
    finally:
        forget(record)


# --- sweeping -------------------------------------------------------------------------------


def kill_group(pgid: int, started: int) -> bool:
    """SIGKILL process group pgid if it is the one whose leader started at ``started``.
    True if a signal went out."""
    now = start_time(pgid)
    if now is not None and now != started:
        return False  # the number names a newer process now: not ours
    # the leader is ours, or gone while the group's id is still taken by its members
    # (a live group's id is never given to a new process), or nothing is left
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _backing_file(device: str) -> str | None:
    try:
        with open(f"/sys/block/{device}/loop/backing_file", encoding="utf-8",
                  errors="replace") as handle:
            return handle.read().strip().removesuffix(" (deleted)")
    except OSError:
        return None


def release_loop(device: str, backing: str) -> bool:
    """Flush and detach /dev/device if it is still attached to backing. True if detached."""
    if not device.startswith("loop") or "/" in device or _backing_file(device) != backing:
        return False  # detached already, or attached to something else since
    from cardume.node.storage import loop  # the sweep alone needs losetup
    path = f"/dev/{device}"
    problem = loop.flush(path)
    if problem:
        log.error("%s", problem)
    return loop.detach(path)


@dataclass
class Swept:
    groups: int = 0
    loops: int = 0

    def __bool__(self) -> bool:
        return bool(self.groups or self.loops)

    def add(self, other: Swept) -> None:
        self.groups += other.groups
        self.loops += other.loops


def sweep(directory: str, remove: bool = True) -> Swept:
    """Kill every recorded group, then detach every recorded loop device (their users are
    gone), forgetting each record; remove the directory when it is empty."""
    swept = Swept()
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return swept
    loops = []
    for name in names:
        path = os.path.join(directory, name)
        if name.startswith(GROUP):
            pgid, _, started = name.removeprefix(GROUP).partition("-")
            if pgid.isdigit() and started.isdigit() and kill_group(int(pgid), int(started)):
                swept.groups += 1
            forget(path)
        elif name.startswith(LOOP):
            loops.append(path)
        else:  # a half-written record (the daemon died while writing it)
            forget(path)
    for path in loops:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                backing = handle.read().strip()
        except OSError:
            backing = ""
        if backing and release_loop(os.path.basename(path).removeprefix(LOOP), backing):
            swept.loops += 1
        forget(path)
    if remove:
        with contextlib.suppress(OSError):  # a record made meanwhile keeps it
            os.rmdir(directory)
    return swept


def _owner_alive(entry: str) -> bool:
    """Whether the daemon a directory of records is named after still runs (a killed one
    may stay a zombie for a while: that one is dead)."""
    pid, _, started = entry.partition("-")
    if not (pid.isdigit() and started.isdigit()):
        return False
    fields = _stat(int(pid))
    return fields is not None and fields[:1] != ["Z"] and start_time(int(pid)) == int(started)


def sweep_stale(run_dir: str) -> Swept:
    """Sweep what node daemons that are no longer alive recorded under run_dir."""
    top = os.path.join(run_dir, DIRECTORY)
    swept = Swept()
    try:
        entries = sorted(os.listdir(top))
    except FileNotFoundError:
        return swept
    for entry in entries:
        if not _owner_alive(entry):
            swept.add(sweep(os.path.join(top, entry)))
    return swept


# --- the guard: the daemon's side -----------------------------------------------------------


def _import_root() -> str:
    """The directory this package is imported from, for the sentinel's interpreter."""
    import cardume
    return os.path.dirname(os.path.dirname(os.path.abspath(cardume.__file__)))


class Guard:
    """This daemon's records and its sentinel (see the module's docstring)."""

    def __init__(self, directory: str, sentinel: subprocess.Popen[bytes] | None,
                 pipe: int | None) -> None:
        self.directory = directory
        self.sentinel = sentinel
        self._pipe = pipe

    def close(self) -> Swept:
        """A clean stop: what children are left die now, and the sentinel leaves."""
        disable()
        swept = sweep(self.directory)
        if swept:
            log.warning("killed %d process group(s) and detached %d loop device(s) of "
                        "unfinished calls", swept.groups, swept.loops)
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                os.write(self._pipe, b"stop\n")
            os.close(self._pipe)
            self._pipe = None
        if self.sentinel is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.sentinel.wait(timeout=SENTINEL_WAIT)
        return swept


def start_sentinel(directory: str) -> tuple[subprocess.Popen[bytes], int]:
    """The sentinel process and the pipe's write end, which only this process holds."""
    read_end, write_end = os.pipe()  # both close-on-exec: no other child inherits them
    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", SENTINEL_SCRIPT, SENTINEL_NAME,
             sys.executable, "-m", __name__, directory],
            stdin=read_end, stdout=subprocess.DEVNULL, cwd="/",
            env={"PATH": SEARCH_PATH, "LC_ALL": "C", "PYTHONPATH": _import_root()},
            close_fds=True, start_new_session=True)  # a Ctrl-C to the daemon spares it
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return proc, write_end


def guard(run_dir: str) -> Guard:
    """At the daemon's start-up: sweep what dead daemons left, record this one's children
    and start the sentinel that sweeps them if this daemon dies."""
    swept = sweep_stale(run_dir)
    if swept:
        log.warning("killed %d process group(s) and detached %d loop device(s) left by a "
                    "previous node daemon", swept.groups, swept.loops)
    pid = os.getpid()
    directory = os.path.join(run_dir, DIRECTORY, f"{pid}-{start_time(pid) or 0}")
    os.makedirs(os.path.dirname(directory), mode=0o700, exist_ok=True)
    enable(directory)
    try:
        sentinel, pipe = start_sentinel(directory)
    except OSError as err:  # the daemon still runs; a later start-up sweep covers it
        log.error("can't start the sentinel that kills call children if the node daemon "
                  "dies: %s", err.strerror)
        return Guard(directory, None, None)
    return Guard(directory, sentinel, pipe)


# --- the sentinel's sweep -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m cardume.node.children DIR``: the node daemon died; sweep DIR."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m {__name__} RECORDS_DIRECTORY", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s noded-sentinel %(levelname)s %(message)s")
    swept = sweep(args[0])
    if swept:
        log.warning("the node daemon died: killed %d process group(s) and detached %d loop "
                    "device(s) of its calls", swept.groups, swept.loops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
