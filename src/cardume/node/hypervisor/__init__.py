"""Hypervisors a node can run, by Ganeti name."""

from __future__ import annotations

import os
import shutil

from cardume import errors
from cardume.node.hypervisor.base import Hypervisor

SUPPORTED: tuple[str, ...] = ("fake", "kvm") if shutil.which("qemu-system-x86_64") \
    else ("fake",)
"""The hypervisors this node software can drive (kvm only where QEMU is installed)."""


_made: dict[tuple[str, str], Hypervisor] = {}


def get(name: str, state_dir: str) -> Hypervisor:
    """The hypervisor called name, keeping its state under the node's state_dir (one object
    per name and directory, so what it caches is shared)."""
    key = (name, state_dir)
    found = _made.get(key)
    if found is not None:
        return found
    if name == "fake":
        from cardume.node.hypervisor.fake import FakeHypervisor
        found = FakeHypervisor(os.path.join(state_dir, "hv", "fake"))
    elif name == "kvm" and name in SUPPORTED:
        from cardume.node.hypervisor.kvm import KvmHypervisor
        found = KvmHypervisor(os.path.join(state_dir, "hv", "kvm"))
    else:
        raise errors.WrongInput(f"hypervisor '{name}' is not supported on this node")
    return _made.setdefault(key, found)
