"""Starting and stopping the daemons of one node (used by init, master-failover, vcluster)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

from cardume import errors
from cardume.paths import NodePaths

MODULES = {"noded": "cardume.node.daemon", "masterd": "cardume.master.daemon",
           "rapi": "cardume.rapi.daemon"}


def read_pid(paths: NodePaths, daemon: str) -> int | None:
    try:
        with open(paths.pidfile(daemon), encoding="ascii") as handle:
            pid = int(handle.read().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    if _is_zombie(pid):  # killed, not yet reaped by its parent: it is not running
        return None
    return pid


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return False
    # "pid (comm) state ...": comm may hold spaces and parentheses, the state follows the last ")"
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def start(paths: NodePaths, daemon: str, extra: list[str] | None = None,
          wait: float = 15.0) -> int:
    """Start a daemon detached from the caller; wait until it answers. Returns its pid."""
    running = read_pid(paths, daemon)
    if running is not None:
        return running
    paths.make_private()
    # the log is root's alone, whoever's umask started it (vcluster, master-failover)
    fd = os.open(paths.logfile(daemon), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    log = os.fdopen(fd, "ab")
    argv = [sys.executable, "-m", MODULES[daemon], "--root", paths.root, *(extra or [])]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True, close_fds=True)
    log.close()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise errors.EnvironmentProblem(
                f"cardume-{daemon} exited at start-up with code {proc.returncode}: "
                f"{_tail(paths.logfile(daemon))}")
        if _ready(paths, daemon):
            return proc.pid
        time.sleep(0.02)
    raise errors.EnvironmentProblem(f"cardume-{daemon} did not become ready in {wait:.0f}s",
                                    f"see {paths.logfile(daemon)}")


def _ready(paths: NodePaths, daemon: str) -> bool:
    if daemon == "rapi":  # it writes its pidfile once it listens
        return read_pid(paths, daemon) is not None
    if daemon == "masterd":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(paths.master_socket)
            return True
        except OSError:
            return False
        finally:
            sock.close()
    identity = paths.read_identity()
    address = identity.get("address") or "127.0.0.1"
    try:
        with socket.create_connection((address, int(identity.get("port", 1811))), 0.2):
            return read_pid(paths, daemon) is not None
    except OSError:
        return False


def _tail(path: str, lines: int = 3) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return " | ".join(line.strip() for line in handle.readlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(paths: NodePaths, daemon: str, timeout: float = 15.0,
         sig: signal.Signals = signal.SIGTERM) -> bool:
    """Stop a daemon; SIGKILL after timeout. True if one was running."""
    pid = read_pid(paths, daemon)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        if _is_zombie(pid):
            break
        time.sleep(0.02)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(paths.pidfile(daemon))
    return True
