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

from cardume import constants, errors
from cardume.rules import paramtypes

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


# --- checking a policy and changes to it (the logical units, for the CLI and RAPI alike) -------

MINMAX, STD, DISK_TEMPLATES, VCPU_RATIO, SPINDLE_RATIO = (
    "minmax", "std", "disk-templates", "vcpu-ratio", "spindle-ratio")
POLICY_KEYS = (MINMAX, STD, DISK_TEMPLATES, VCPU_RATIO, SPINDLE_RATIO)
BOUNDS = ("min", "max")
SIZE_KEYS = (MEMORY, DISK_SIZE)
#: The value that resets a group's key to the cluster's (Ganeti's VALUE_DEFAULT).
DEFAULT = "default"


def spec_value(key: str, value: Any, where: str) -> int:
    """One spec value as a whole number: sizes may carry a unit (``4g``), counts may not."""
    if key not in SPEC_KEYS:
        raise errors.WrongInput(f"unknown spec '{key}' in the {where}: expected "
                                f"{', '.join(SPEC_KEYS)}")
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    elif isinstance(value, str) and key in SIZE_KEYS:
        try:
            number = paramtypes.parse_size(value, multiple=1)
        except errors.WrongInput:
            number = -1
    else:
        number = -1
    if number < 0:
        unit = " (MiB, or with a m/g/t suffix)" if key in SIZE_KEYS else ""
        raise errors.WrongInput(f"invalid value {value!r} for {key} in the {where}: "
                                f"expected a whole number{unit}, 0 or more")
    return number


def check_specs(specs: Any, where: str, complete: bool) -> dict[str, int]:
    """A spec dict with known keys and whole values; ``complete``: every key given."""
    if not isinstance(specs, dict):
        raise errors.WrongInput(f"invalid {where}: expected a mapping of "
                                f"{', '.join(SPEC_KEYS)}")
    checked = {key: spec_value(key, value, where) for key, value in specs.items()}
    missing = [key for key in SPEC_KEYS if key not in checked]
    if complete and missing:
        raise errors.WrongInput(f"missing parameters in the {where}: {', '.join(missing)}",
                                f"give all of {', '.join(SPEC_KEYS)}")
    return checked


def check_minmax(pairs: Any) -> list[dict[str, dict[str, int]]]:
    """The bounds: a non-empty list of {min, max} pairs, each complete, min <= max."""
    if not isinstance(pairs, list) or not pairs:
        raise errors.WrongInput("invalid bounds specs: expected a list of {min, max} pairs")
    checked = []
    for index, pair in enumerate(pairs):
        if not isinstance(pair, dict):
            raise errors.WrongInput(f"invalid bounds specs pair {index}: expected min and max")
        unknown = [key for key in pair if key not in BOUNDS]
        if unknown:
            raise errors.WrongInput(f"invalid key '{unknown[0]}' in the bounds specs: "
                                    "expected min and max")
        for bound in BOUNDS:
            if bound not in pair:
                raise errors.WrongInput(f"missing {bound} specs in bounds specs pair {index}",
                                        "give min:...,/max:... together")
        low = check_specs(pair["min"], f"min specs of pair {index}", complete=True)
        high = check_specs(pair["max"], f"max specs of pair {index}", complete=True)
        for key in SPEC_KEYS:
            if low[key] > high[key]:
                raise errors.WrongInput(
                    f"invalid bounds for {key} in pair {index}: min {low[key]} is above "
                    f"max {high[key]}")
        checked.append({"min": low, "max": high})
    return checked


def check_ratio(key: str, value: Any) -> float:
    if isinstance(value, bool):
        value = None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not number > 0 or number == float("inf"):
        raise errors.WrongInput(f"invalid {key} {value!r}: expected a number above 0")
    return number


def check_changes(changes: dict[str, Any], cluster: bool) -> dict[str, Any]:
    """A change set to a policy (an opcode's ``ipolicy``), normalised: values checked, the
    group's ``default`` (or None) meaning "inherit the cluster's" turned into None."""
    result: dict[str, Any] = {}
    for key, value in changes.items():
        if key not in POLICY_KEYS:
            raise errors.WrongInput(f"unknown instance policy key '{key}': expected "
                                    f"{', '.join(POLICY_KEYS)}")
        if key == STD and not cluster:
            raise errors.WrongInput("the std specs are set on the cluster only, not on a "
                                    "node group")
        if value is None or value == DEFAULT:
            if cluster:
                raise errors.WrongInput(f"can't unset instance policy key '{key}' on the "
                                        "cluster", "give it a value")
            result[key] = None
        elif key == MINMAX:
            result[key] = check_minmax(value)
        elif key == STD:
            result[key] = check_specs(value, "std specs", complete=False)
        elif key == DISK_TEMPLATES:
            result[key] = check_templates(value)
        else:
            result[key] = check_ratio(key, value)
    return result


def check_templates(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) \
            or not value:
        raise errors.WrongInput(f"invalid disk templates {value!r}: expected a non-empty "
                                "list of disk template names")
    unknown = [name for name in value if name not in constants.DISK_TEMPLATES]
    if unknown:
        raise errors.WrongInput(f"invalid disk template(s) {', '.join(unknown)} in the "
                                f"instance policy: expected some of "
                                f"{', '.join(constants.DISK_TEMPLATES)}")
    return list(dict.fromkeys(value))


def apply_changes(own: dict[str, Any], changes: dict[str, Any],
                  std_base: dict[str, Any] | None = None) -> dict[str, Any]:
    """An object's own policy with checked ``changes``: std merges key by key over
    ``std_base`` (the std in force, so that the stored std is whole), the others replace;
    None removes the key (back to the inherited value)."""
    result = dict(own)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        elif key == STD:
            result[key] = {**(std_base or {}), **(result.get(key) or {}), **value}
        else:
            result[key] = value
    return result


def check_filled(policy: dict[str, Any], check_std: bool,
                 enabled_templates: Sequence[str] | None = None) -> None:
    """A whole (filled) policy: its bounds sound, the std specs (the cluster's) inside one
    pair, its templates enabled on the cluster (when ``enabled_templates`` is given)."""
    pairs = check_minmax(policy.get(MINMAX))
    if check_std:
        std = check_specs(policy.get(STD) or {}, "std specs", complete=True)
        spec = InstanceSpec(memory=std[MEMORY], cpus=std[CPUS],
                            disk_sizes=(std[DISK_SIZE],) * std[DISK_COUNT],
                            nic_count=std[NIC_COUNT], spindles=std[SPINDLES])
        errs = violations({MINMAX: pairs}, spec)
        if errs:
            raise errors.WrongInput(f"invalid std specs: not within the bounds specs "
                                    f"({', '.join(errs)})")
    if enabled_templates is not None:
        off = [t for t in policy.get(DISK_TEMPLATES) or [] if t not in enabled_templates]
        if off:
            raise errors.WrongInput(
                f"the following disk templates are allowed by the instance policy, but not "
                f"enabled on the cluster: {', '.join(off)}",
                f"enabled: {', '.join(enabled_templates)}")
