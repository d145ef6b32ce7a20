"""What the QA tests read back from the nodes themselves: command output, ``/proc/drbd`` and
``lvs``, so that what cardume reports is checked against the nodes' kernels."""

from __future__ import annotations

import re

from .cardume import VG
from .vm import AgentError, Node

_DRBD_LINE_RE = re.compile(r"^\s*(\d+): cs:(\S+) ro:(\S+) ds:(\S+)", re.MULTILINE)


def run(node: Node, cmd: str, timeout: float = 120.0) -> str:
    """``cmd`` on ``node``; its standard output, or AgentError naming the node and exit."""
    res = node.run(cmd, timeout=timeout)
    if not res.ok:
        raise AgentError(f"{node.name}: {cmd!r} exited {res.rc}:\n{res.out}{res.err}")
    return res.out


def proc_drbd(node: Node) -> dict[int, tuple[str, str, str]]:
    """minor -> (connection state, roles, disk states), as the node's kernel reports."""
    text = run(node, "cat /proc/drbd")
    return {int(m): (cs, ro, ds) for m, cs, ro, ds in _DRBD_LINE_RE.findall(text)}


def lv_sizes(node: Node) -> dict[str, float]:
    """The volume group's logical volumes on ``node`` and their sizes in MiB."""
    out = run(node, f"lvs --noheadings --units m --nosuffix -o lv_name,lv_size {VG}")
    return {name: float(size) for name, size in map(str.split, out.splitlines())}
