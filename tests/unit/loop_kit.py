"""Loop devices in unit tests: whether this machine can attach one, and what a file is
attached to (shared by the tests of the OS API, the node handlers and call children)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def loop_works(tmp: Path) -> bool:
    """Whether a loop device can be attached here (a container may forbid it)."""
    if shutil.which("losetup") is None:
        return False
    probe = tmp / "probe.img"
    probe.write_bytes(b"\0" * 65536)
    proc = subprocess.run(["losetup", "--find", "--show", str(probe)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        return False
    subprocess.run(["losetup", "-d", proc.stdout.strip()], check=False)
    return True


def attached(image: Path) -> str:
    """losetup's line for the loop devices attached to image ('' when none is)."""
    return subprocess.run(["losetup", "-j", str(image)], capture_output=True,
                          text=True).stdout.strip()
