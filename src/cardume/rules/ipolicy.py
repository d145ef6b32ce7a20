"""Instance policies (ipolicy) as Ganeti 3.0 has them: what an instance may look like.

A policy is a dict in Ganeti's own form (the config, ``gnt-cluster info`` and the iallocator
request all carry it so): ``minmax`` (a list of {min, max} spec pairs: an instance must fit
between one pair's bounds), ``std`` (the standard instance, what capacity is counted in),
``disk-templates``, ``vcpu-ratio`` and ``spindle-ratio``. Pure functions, no I/O, shared by
the logical units, the allocator and ``gnt-cluster verify``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MEMORY, CPUS, DISK_COUNT, DISK_SIZE, NIC_COUNT, SPINDLES = (
    "memory-size", "cpu-count", "disk-count", "disk-size", "nic-count", "spindle-use")
SPEC_KEYS = (MEMORY, CPUS, DISK_COUNT, DISK_SIZE, NIC_COUNT, SPINDLES)


@dataclass(frozen=True)
class InstanceSpec:
    """What a policy looks at in one instance (None: not known, not checked)."""
    memory: int | None = None
    cpus: int | None = None
    disk_sizes: Sequence[int] = field(default_factory=tuple)
    nic_count: int | None = None
    spindles: int | None = None
    disk_template: str | None = None


def _range_errors(name: str, value: int | None, low: int, high: int) -> list[str]:
    if value is None or low <= value <= high:
        return []
    return [f"{name} value {value} is not in range [{low}, {high}]"]


def _minmax_errors(pair: dict[str, Any], spec: InstanceSpec) -> list[str]:
    low, high = pair.get("min") or {}, pair.get("max") or {}

    def check(key: str, value: int | None, name: str | None = None) -> list[str]:
        if key not in low or key not in high:
            return []
        return _range_errors(name or key, value, int(low[key]), int(high[key]))

    errors = check(MEMORY, spec.memory) + check(CPUS, spec.cpus)
    # Ganeti's rule: a diskless instance's disk count is not held against the minimum
    if spec.disk_template != "diskless":
        errors += check(DISK_COUNT, len(spec.disk_sizes))
    for index, size in enumerate(spec.disk_sizes):
        errors += check(DISK_SIZE, size, f"{DISK_SIZE}/{index}")
    errors += check(NIC_COUNT, spec.nic_count) + check(SPINDLES, spec.spindles)
    return errors


def violations(policy: dict[str, Any], spec: InstanceSpec) -> list[str]:
    """What in ``spec`` breaks ``policy``, in Ganeti's words (``nic-count value 0 is not in
    range [1, 8]``); empty when it complies. With several min/max pairs the instance needs
    to fit one: the pair it misses by the least is reported."""
    found: list[str] = []
    allowed = policy.get("disk-templates")
    if spec.disk_template is not None and allowed is not None \
            and spec.disk_template not in allowed:
        found.append(f"Disk template {spec.disk_template} is not allowed (allowed templates: "
                     f"{', '.join(allowed)})")
    best: list[str] | None = None
    for pair in policy.get("minmax") or []:
        errors = _minmax_errors(pair, spec)
        if best is None or len(errors) < len(best):
            best = errors
    return found + (best or [])


def group_violation_message(group_uuid: str, group_name: str, errors: list[str]) -> str:
    """The one-line refusal Ganeti gives for an instance its group's policy forbids."""
    return (f"Instance allocation to group {group_uuid} ({group_name}) violates policy: "
            f"{', '.join(errors)}")
