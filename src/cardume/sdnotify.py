"""Telling systemd that a daemon is ready (``Type=notify`` units), standard library only.

Outside systemd (a local cluster, a test) ``NOTIFY_SOCKET`` is unset and every call here
does nothing.
"""

from __future__ import annotations

import os
import socket

ENV_SOCKET = "NOTIFY_SOCKET"
ENV_JOURNAL = "JOURNAL_STREAM"


def notify(state: str, env: dict[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``READY=1``) to the service manager. True if it was sent."""
    address = (os.environ if env is None else env).get(ENV_SOCKET, "")
    if not address or address[0] not in "/@":
        return False
    if address[0] == "@":  # an abstract socket: its name starts with a NUL byte
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False  # the manager went away: nothing to tell, the daemon runs on
    return True


def ready(status: str = "") -> bool:
    """The daemon listens: systemd may go on with the units that wait for it."""
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def under_journal() -> bool:
    """Whether stderr goes to the journal (systemd started this process so), which stamps
    each line with the time itself."""
    stream = os.environ.get(ENV_JOURNAL, "")
    device, _, inode = stream.partition(":")
    try:
        st = os.fstat(2)
        return bool(stream) and (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):
        return False


def log_format(daemon: str) -> str:
    """The daemons' log line: without the time when the journal adds its own."""
    prefix = "" if under_journal() else "%(asctime)s "
    return f"{prefix}{daemon} %(levelname)s %(message)s"
