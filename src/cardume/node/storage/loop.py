"""Loop devices: how image files reach OS scripts, which expect block devices.

``exposed(paths)`` attaches every regular file among ``paths`` to a free loop device
(``losetup --find --show``) and always detaches them again (``losetup -d``) when the block
ends, whether it ended normally, by an exception or by a timeout. Before detaching it
flushes each device (fsync), so nothing a script wrote stays behind in the device's cache.
While attached, each device is recorded (node/children.py), so that if the node daemon is
killed meanwhile its sentinel detaches it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterator

from cardume import errors
from cardume.node import children
from cardume.node.cmd import Result, default_runner

log = logging.getLogger(__name__)

SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
COMMAND_TIMEOUT = 60.0
DETACH_TRIES = 20


def losetup() -> str:
    found = shutil.which("losetup", path=SEARCH_PATH)
    if found is None:
        raise errors.EnvironmentProblem(
            "losetup is not available on this node: file disks reach OS scripts through "
            "loop devices", "install util-linux (apt-get install mount)")
    return found


def _run(argv: list[str]) -> Result:
    """losetup through the node's command runner: recorded while it runs, like every
    command of a call (children.py)."""
    return default_runner().run(argv, timeout=COMMAND_TIMEOUT, check=False)


class LoopDevices:
    """The loop devices one operation attached; ``detach_all`` releases every one."""

    def __init__(self) -> None:
        self.attached: list[str] = []
        self.flush_errors: list[str] = []
        self._records: dict[str, str | None] = {}

    def attach(self, path: str) -> str:
        proc = _run([losetup(), "--find", "--show", path])
        device = proc.stdout.strip()
        if proc.rc != 0 or not device.startswith("/dev/"):
            reason = (proc.stderr.strip() or proc.stdout.strip()
                      or f"exit code {proc.rc}").splitlines()[-1]
            raise errors.EnvironmentProblem(
                f"can't attach {path} to a loop device: {reason}",
                "loop devices need root and the loop kernel module (modprobe loop)")
        self.attached.append(device)
        # a node daemon killed while the script runs can't detach it: its sentinel will
        self._records[device] = children.record_loop(device, path)
        return device

    def detach_all(self) -> list[str]:
        """Detach every attached device, newest first; returns the ones that stayed."""
        stuck = []
        while self.attached:
            device = self.attached.pop()
            problem = flush(device)
            if problem:
                log.error("%s", problem)
                self.flush_errors.append(problem)
            if not detach(device):
                stuck.append(device)
            children.forget(self._records.pop(device, None))
        return stuck


def flush(device: str) -> str | None:
    """Write the device's cached data through to its file. A script's writes reach the
    file when the last opener closes the device; if anything else (a concurrent losetup
    probing devices, udev) had it open at that moment, they are still cached, and
    ``losetup -d`` would drop them.

    Returns why it failed, or None."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        return f"can't open {device} to flush it: {err.strerror}"
    try:
        os.fsync(fd)
    except OSError as err:
        return f"can't flush {device}: {err.strerror}"
    finally:
        os.close(fd)
    return None


def detach(device: str) -> bool:
    """``losetup -d``, retried while the device is busy (udev may still hold it)."""
    reason = ""
    for attempt in range(DETACH_TRIES):
        try:
            proc = _run([losetup(), "-d", device])
        except errors.CardumeError as err:
            reason = str(err)
            break
        if proc.rc == 0:
            return True
        reason = proc.stderr.strip() or f"exit code {proc.rc}"
        if "No such device" in reason:
            return True
        time.sleep(min(0.05 * (attempt + 1), 0.5))
    log.error("could not detach loop device %s: %s", device, reason)
    return False


@contextlib.contextmanager
def exposed(paths: list[str]) -> Iterator[list[str]]:
    """``paths`` with every regular file replaced by a loop device attached to it."""
    loops = LoopDevices()
    try:
        result = []
        for path in paths:
            result.append(loops.attach(path) if os.path.isfile(path) else path)
        yield result
    finally:
        stuck = loops.detach_all()
        if stuck:
            log.error("loop devices left attached: %s", ", ".join(stuck))
    if loops.flush_errors:  # only reached when the block itself succeeded
        raise errors.ExecError("what the script wrote may not have reached the disk image: "
                               + loops.flush_errors[0])
