"""The watcher's memory between passes, kept in the master node's state directory
(``NodePaths.watcher_state``, private): each node's boot id as last seen, each instance's
restart attempts, and what the last pass decided. A lock file beside it keeps two passes
(the timer's and one run by hand) from overlapping.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

VERSION = 1


@dataclass
class WatcherState:
    nodes: dict[str, str] = field(default_factory=dict)
    """node name -> its boot id when the last pass saw it"""
    restarts: dict[str, int] = field(default_factory=dict)
    """instance name -> start attempts since it was last seen running"""
    last_pass: dict[str, Any] = field(default_factory=dict)
    """the last pass: start, end, master, paused, decisions (see run.PassReport)"""

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, "nodes": dict(sorted(self.nodes.items())),
                "restarts": dict(sorted(self.restarts.items())),
                "last_pass": self.last_pass}

    @classmethod
    def from_dict(cls, data: Any) -> WatcherState:
        """The state in ``data``; what isn't of the expected shape is forgotten (a state
        file that can't be read costs the pass some memory, never the pass)."""
        if not isinstance(data, dict):
            return cls()
        nodes = data.get("nodes")
        restarts = data.get("restarts")
        last = data.get("last_pass")
        return cls(
            nodes={str(k): str(v) for k, v in nodes.items()} if isinstance(nodes, dict)
            else {},
            restarts={str(k): v for k, v in restarts.items()
                      if isinstance(v, int) and not isinstance(v, bool) and v > 0}
            if isinstance(restarts, dict) else {},
            last_pass=last if isinstance(last, dict) else {})


def load(path: str) -> WatcherState:
    try:
        with open(path, encoding="utf-8") as handle:
            return WatcherState.from_dict(json.load(handle))
    except (OSError, ValueError):
        return WatcherState()


def save(path: str, state: WatcherState) -> None:
    """Write the state private (0600) and atomically: a reader sees the old or the new."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, json.dumps(state.to_dict(), indent=1).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class Busy(Exception):
    """Another watcher pass holds the lock."""


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """Hold the watcher's lock (``path``.lock) for a pass; Busy if another pass has it."""
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(path) from None
        yield
    finally:
        os.close(fd)
