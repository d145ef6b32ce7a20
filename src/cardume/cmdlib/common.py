"""Checks and computations shared by several logical units."""

from __future__ import annotations

import re
from typing import Any

from cardume import constants, errors, objects
from cardume.cli.params import check_param_types
from cardume.config.writer import ConfigWriter

_NAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,251}[a-zA-Z0-9])?$")
_GROUP_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9_.+-]{0,62}$")
_TAG_RE = re.compile(r"^[\w.+*/:@-]{1,128}$")


def check_hostname(name: str, what: str = "node") -> str:
    if not _NAME_RE.match(name) or ".." in name:
        raise errors.WrongInput(
            f"invalid {what} name '{name}': expected letters, digits, '-', '.', '_'")
    return name


def check_group_name(name: str) -> str:
    if not _GROUP_RE.match(name):
        raise errors.WrongInput(
            f"invalid group name '{name}': expected up to 63 letters, digits, '_.+-'")
    return name


def check_tags(tags: list[str]) -> None:
    """Ganeti's tag syntax: 1-128 letters, digits or .+*/:@-_ each."""
    for tag in tags:
        if not isinstance(tag, str) or not _TAG_RE.match(tag):
            raise errors.WrongInput(f"invalid tag '{tag}': expected 1-128 letters, digits "
                                    "or .+*/:@-_")


def check_params(values: dict[str, Any] | None, types: dict[str, str], what: str,
                 ) -> dict[str, Any]:
    """Validate a parameter dict against its type table (values from the CLI or RAPI)."""
    return check_param_types(values or {}, types, f"{what} parameter")


def check_beparams(values: dict[str, Any] | None) -> dict[str, Any]:
    """Backend parameters; the old ``memory`` sets both maxmem and minmem."""
    checked = check_params(values, constants.BES_PARAMETER_TYPES, "backend")
    for key in ("memory", "maxmem", "minmem", "vcpus", "spindle_use"):
        value = checked.get(key)
        if value is not None and value < (0 if key == "spindle_use" else 1):
            raise errors.WrongInput(f"backend parameter '{key}' must be positive, not {value}")
    if "memory" in checked:
        memory = checked.pop("memory")
        checked.setdefault("maxmem", memory)
        checked.setdefault("minmem", memory)
    if (checked.get("maxmem") is not None and checked.get("minmem") is not None
            and checked["minmem"] > checked["maxmem"]):
        raise errors.WrongInput(
            f"backend parameter minmem ({checked['minmem']}) is bigger than "
            f"maxmem ({checked['maxmem']})")
    return checked


def check_hvparams(hvparams: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for hv, values in (hvparams or {}).items():
        if hv not in constants.HYPER_TYPES:
            raise errors.WrongInput(
                f"unknown hypervisor '{hv}' (known: {', '.join(constants.HYPER_TYPES)})")
        types = constants.HVS_PARAMETER_TYPES.get(hv, {})
        result[hv] = check_params(values or {}, types, f"hypervisor {hv}")
        if hv == constants.HT_KVM:
            from cardume.node.hypervisor.kvm import check_hvparams as check_kvm
            check_kvm(result[hv])
    return result


def check_instance_hvparams(hypervisor: str, values: dict[str, Any]) -> dict[str, Any]:
    """An instance's own hypervisor parameters: checked, and none of the global ones."""
    used = sorted(constants.HVC_GLOBALS.intersection(values))
    if used:
        example = ",".join(f"{key}={values[key]}" for key in used)
        raise errors.WrongInput(
            f"hypervisor parameter{'s' if len(used) > 1 else ''} {', '.join(used)} "
            f"{'are' if len(used) > 1 else 'is'} global and can't be set on an instance, only "
            "at cluster level", f"gnt-cluster modify -H {hypervisor}:{example}")
    return check_hvparams({hypervisor: values})[hypervisor]


def check_diskparams(diskparams: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for template, values in (diskparams or {}).items():
        if template not in constants.DISK_TEMPLATES:
            raise errors.WrongInput(f"unknown disk template '{template}' "
                                    f"(known: {', '.join(constants.DISK_TEMPLATES)})")
        types = constants.DISK_PARAMETER_TYPES.get(template, {})
        result[template] = check_params(values or {}, types, f"disk template {template}")
    return result


def check_nicparams(values: dict[str, Any] | None) -> dict[str, Any]:
    checked = check_params(values, constants.NICS_PARAMETER_TYPES, "NIC")
    mode = checked.get("mode")
    if mode is not None and mode not in constants.NIC_MODES:
        raise errors.WrongInput(
            f"invalid NIC mode '{mode}' (expected {', '.join(constants.NIC_MODES)})")
    return checked


def check_ndparams(values: dict[str, Any] | None) -> dict[str, Any]:
    return check_params(values, constants.NDS_PARAMETER_TYPES, "node")


def check_enabled_list(values: list[str], known: tuple[str, ...], what: str) -> list[str]:
    if not values:
        raise errors.WrongInput(f"at least one {what} must be enabled")
    for value in values:
        if value not in known:
            raise errors.WrongInput(f"unknown {what} '{value}' (known: {', '.join(known)})")
    return list(dict.fromkeys(values))


def desired_candidates(cfg: ConfigWriter) -> int:
    """How many master candidates the cluster wants: the pool size, capped by capable nodes."""
    capable = [n for n in cfg.nodes.values()
               if n.master_capable and not n.offline and not n.drained]
    return min(cfg.get_cluster().candidate_pool_size, len(capable))


def nodes_to_promote(cfg: ConfigWriter, exclude: set[str] | None = None,
                     ) -> list[objects.Node]:
    """Capable nodes to make candidates until the pool is full again (sorted by name)."""
    exclude = exclude or set()
    current = [n for n in cfg.candidates() if n.uuid not in exclude]
    capable = [n for n in cfg.sorted_nodes()
               if n.master_capable and not n.offline and not n.drained
               and n.uuid not in exclude]
    wanted = min(cfg.get_cluster().candidate_pool_size, len(capable))
    missing = wanted - len(current)
    if missing <= 0:
        return []
    return [n for n in capable if not n.master_candidate][:missing]


def node_role(cfg: ConfigWriter, node: objects.Node) -> str:
    if cfg.cluster is not None and node.uuid == cfg.cluster.master_node:
        return constants.NR_MASTER
    if node.master_candidate:
        return constants.NR_MCANDIDATE
    if node.drained:
        return constants.NR_DRAINED
    if node.offline:
        return constants.NR_OFFLINE
    return constants.NR_REGULAR


def instances_on_node(cfg: ConfigWriter, node_uuid: str) -> tuple[list[str], list[str]]:
    """(primary instance names, secondary instance names) of a node."""
    primary, secondary = [], []
    for inst in cfg.instances.values():
        if inst.primary_node == node_uuid:
            primary.append(inst.name)
        elif node_uuid in inst.secondary_nodes:
            secondary.append(inst.name)
    return sorted(primary), sorted(secondary)


def default_group(cfg: ConfigWriter) -> objects.NodeGroup:
    """Where new nodes go: the group named 'default', else the first by name."""
    group = cfg.find_group(constants.DEFAULT_GROUP)
    if group is not None:
        return group
    return sorted(cfg.groups.values(), key=lambda g: g.name)[0]
