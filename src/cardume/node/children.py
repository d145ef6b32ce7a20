"""What a node call starts outside the daemon dies with the daemon, even a SIGKILLed one:
the records of those children (this module) and the sentinel that sweeps them (sentinel.py).

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
``python -m cardume.node.sentinel DIR``, which kills the recorded groups, detaches the
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
from collections.abc import Iterator

log = logging.getLogger(__name__)

DIRECTORY = "children"  # under the node's run directory
GROUP = "pg-"
LOOP = "loop-"
SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

_records: str | None = None  # this daemon's directory of records; None: not recording


# --- /proc ----------------------------------------------------------------------------------


def proc_stat(pid: int) -> list[str] | None:
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
    fields = proc_stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def process_group(pid: int) -> int | None:
    fields = proc_stat(pid)
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
