"""Starting and stopping the daemons of one node (used by init, master-failover, vcluster).

On a real node that systemd runs, with the package's units installed, the node and master
daemons are systemd's: they are started and stopped with ``systemctl``, so that systemd
restarts them and starts them again at boot. Everywhere else (a local cluster, a node
without systemd) this process starts them itself, detached, logging to the node's log
directory. The REST daemon is always the master daemon's child (see master/rapi_keeper.py).

``python3 -m cardume.daemons is-master`` is the master daemon unit's ``ExecCondition``: it
exits 0 when this node is the master, 1 when it is not (systemd then skips the unit
without calling it failed).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

from cardume import errors, sdnotify
from cardume.paths import DEFAULT_STATE_DIR, NodePaths, read_json

MODULES = {"noded": "cardume.node.daemon", "masterd": "cardume.master.daemon",
           "rapi": "cardume.rapi.daemon"}
UNITS = {"noded": "cardume-noded.service", "masterd": "cardume-masterd.service"}
SYSTEMD_RUNNING = "/run/systemd/system"  # exists only when systemd is the init system
UNIT_DIRS = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
SYSTEMCTL = "systemctl"
ONCE_ENV = "once.env"
"""``RUN/DAEMON.once.env``: arguments for the next start of a unit only (``--no-voting``
after a master failover), read by the unit as ``$CARDUME_ONCE_ARGS``."""
ONCE_ARGS = frozenset({"--no-voting"})


def unit_of(paths: NodePaths, daemon: str) -> str | None:
    """The systemd unit that runs ``daemon`` on this node, or None when it is this
    process's to start: a local cluster's node, no systemd, or the unit not installed."""
    unit = UNITS.get(daemon)
    if unit is None or not paths.fhs or not os.path.isdir(SYSTEMD_RUNNING):
        return None
    return unit if any(os.path.exists(os.path.join(d, unit)) for d in UNIT_DIRS) else None


def once_env(paths: NodePaths, daemon: str) -> str:
    return os.path.join(paths.run, f"{daemon}.{ONCE_ENV}")


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
    unit = unit_of(paths, daemon)
    if unit is not None:
        return _start_unit(paths, daemon, unit, extra or [], wait)
    paths.make_private()
    argv = [sys.executable, "-m", MODULES[daemon], "--root", paths.root, *(extra or [])]
    where = paths.logfile(daemon)
    if sdnotify.under_journal():
        # a child of a daemon systemd runs (the REST daemon): its lines go to the journal
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True,
                                close_fds=True)
        where = "the journal"
    else:
        # the log is root's alone, whoever's umask started it (vcluster, master-failover)
        fd = os.open(paths.logfile(daemon), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        log = os.fdopen(fd, "ab")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
        log.close()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise errors.EnvironmentProblem(
                f"cardume-{daemon} exited at start-up with code {proc.returncode}: "
                f"{_tail(where)}")
        if _ready(paths, daemon):
            return proc.pid
        time.sleep(0.02)
    raise errors.EnvironmentProblem(f"cardume-{daemon} did not become ready in {wait:.0f}s",
                                    f"see {where}")


def _systemctl(action: str, unit: str, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([SYSTEMCTL, action, unit], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise errors.EnvironmentProblem(f"'systemctl {action} {unit}' did not finish in "
                                        f"{timeout:.0f}s", f"see 'journalctl -u {unit}'") from None
    except OSError as err:
        raise errors.EnvironmentProblem(f"cannot run systemctl: {err.strerror or err}") from None


def _start_unit(paths: NodePaths, daemon: str, unit: str, extra: list[str],
                wait: float) -> int:
    """``systemctl start`` (Type=notify: it returns once the daemon is ready)."""
    unknown = [arg for arg in extra if arg not in ONCE_ARGS]
    if unknown:
        raise errors.InternalError(f"cannot pass {' '.join(unknown)} to {unit}")
    once = once_env(paths, daemon)
    paths.make_private()
    if extra:
        with open(once, "w", encoding="ascii") as handle:
            handle.write(f"CARDUME_ONCE_ARGS={' '.join(extra)}\n")
    try:
        done = _systemctl("start", unit, timeout=max(wait, 90.0))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(once)
    pid = read_pid(paths, daemon)
    if done.returncode != 0 or pid is None:
        why = done.stderr.strip().splitlines()[-1:] or ["it exited (its condition not met?)"]
        raise errors.EnvironmentProblem(f"{unit} did not start: {why[0]}",
                                        f"see 'journalctl -u {unit}'")
    return pid


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
    if not os.path.isabs(path):
        return f"see {path}"
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
    unit = unit_of(paths, daemon)
    if unit is not None and sig == signal.SIGTERM:
        done = _systemctl("stop", unit, timeout=timeout + 30.0)
        if done.returncode != 0:
            raise errors.EnvironmentProblem(f"{unit} did not stop: {done.stderr.strip()}")
        return True
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


def master_check(paths: NodePaths) -> tuple[bool, str]:
    """Whether this node is the master, by the newest of this node's copies: its ssconf,
    and its configuration replica when it has a newer one (master-failover commits the
    new master there before its master daemon starts and writes the ssconf)."""
    name = str(paths.read_identity().get("name") or "")
    summary = read_json(paths.ssconf) or {}
    master, serial = summary.get("master_node"), int(summary.get("serial") or 0)
    if os.path.exists(paths.config_db):
        try:
            from cardume.config.store import ConfigStore
            from cardume.config.writer import ConfigWriter
            store = ConfigStore(paths.config_db)
            try:
                if store.serial() > serial:
                    master = ConfigWriter(store).master_node().name
            finally:
                store.close()
        except Exception as err:  # an unreadable replica: the ssconf says it
            print(f"cardume: cannot read {paths.config_db}: {err}", file=sys.stderr)
    if not name or not master:
        return False, "this node is not part of a cluster"
    if master != name:
        return False, f"this node ({name}) is not the master; the master is {master}"
    return True, f"this node ({name}) is the master"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m cardume.daemons")
    parser.add_argument("check", choices=["is-master"],
                        help="exit 0 if this node is the master, 1 if not")
    parser.add_argument("--root", default=DEFAULT_STATE_DIR, help="the node's state directory")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    args = parser.parse_args(argv)
    master, why = master_check(NodePaths(args.root))
    if not args.quiet:
        print(why)
    return 0 if master else 1


if __name__ == "__main__":
    sys.exit(main())
