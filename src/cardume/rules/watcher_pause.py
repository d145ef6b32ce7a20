"""The watcher's pause file, which the node daemon writes (the master distributes a pause to
the master candidates) and the watcher reads before a pass.

As Ganeti's, the file holds one number: the time (seconds since the epoch) until which the
watcher is paused. A missing, unreadable or expired file means "not paused".
"""

from __future__ import annotations

import contextlib
import math
import os
import time


def read_pause(path: str, now: float | None = None) -> float | None:
    """Until when the watcher is paused, or None if it is not (any more)."""
    try:
        with open(path, encoding="ascii") as handle:
            until = float(handle.read().strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not math.isfinite(until):
        return None
    return until if until > (time.time() if now is None else now) else None


def write_pause(path: str, until: float | None) -> None:
    """Pause until ``until`` (a private file, replaced atomically), or remove the pause."""
    if until is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    if not math.isfinite(until):
        raise ValueError(f"invalid pause end {until!r}: expected a finite time")
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, f"{int(until)}\n".encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
