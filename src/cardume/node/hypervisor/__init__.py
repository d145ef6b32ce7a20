"""Hypervisors a node can run, by Ganeti name."""

from __future__ import annotations

import os

from cardume import errors
from cardume.node.hypervisor.base import Hypervisor


def get(name: str, state_dir: str) -> Hypervisor:
    if name == "fake":
        from cardume.node.hypervisor.fake import FakeHypervisor
        return FakeHypervisor(os.path.join(state_dir, "hv", "fake"))
    raise errors.WrongInput(f"hypervisor '{name}' is not supported on this node")
