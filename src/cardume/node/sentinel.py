"""The sentinel of a node daemon, and the sweeps that kill what its calls left.

The records of a call's children are children.py's; this module acts on them: ``sweep`` of
one daemon's records (by the sentinel when the daemon died, or by the daemon at a clean
stop), ``sweep_stale`` of dead daemons' records at start-up, and ``guard``, which a node
daemon calls at start-up to record its calls' children and start its sentinel. The sentinel
runs ``python -m cardume.node.sentinel DIR`` once the daemon is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from dataclasses import dataclass

from cardume.node import children
from cardume.node.children import DIRECTORY, GROUP, LOOP, SEARCH_PATH, forget, kill_group
from cardume.node.storage import loop

log = logging.getLogger(__name__)

SENTINEL_NAME = "cardume-noded-sentinel"
# Fixed text; the directory and the interpreter come as arguments, never inside it. A line
# on the pipe (a clean stop) makes it leave; end-of-file (the daemon died) makes it sweep.
SENTINEL_SCRIPT = 'read -r _ && exit 0; exec "$@"'
SENTINEL_WAIT = 5.0


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
    fields = children.proc_stat(int(pid))
    return (fields is not None and fields[:1] != ["Z"]
            and children.start_time(int(pid)) == int(started))


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
        children.disable()
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
    directory = os.path.join(run_dir, DIRECTORY, f"{pid}-{children.start_time(pid) or 0}")
    os.makedirs(os.path.dirname(directory), mode=0o700, exist_ok=True)
    children.enable(directory)
    try:
        sentinel, pipe = start_sentinel(directory)
    except OSError as err:  # the daemon still runs; a later start-up sweep covers it
        log.error("can't start the sentinel that kills call children if the node daemon "
                  "dies: %s", err.strerror)
        return Guard(directory, None, None)
    return Guard(directory, sentinel, pipe)


# --- the sentinel's sweep -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m cardume.node.sentinel DIR``: the node daemon died; sweep DIR."""
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
