"""Checks and computations shared by several logical units."""

from __future__ import annotations

import re
from typing import Any

from cardume import constants, errors, objects
from cardume.config.writer import ConfigWriter
from cardume.rules import hvparams as hvparams_rules
from cardume.rules.paramtypes import check_param_types

# Names of instances, nodes and the cluster are DNS names (RFC 1123): dot-separated labels
# of 1-63 ASCII letters, digits and '-', neither first nor last a '-'.
_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", re.ASCII)
# DNS allows 253 characters, but an instance's name also goes into file names, whose
# limit is 255 bytes: the longest is an OS script's log, "<script>-NAME-<26-character
# timestamp>.log" (NAME + 38 with the 6-letter script names), next the hypervisors'
# runtime files while they are written, "NAME.json.tmp<pid>.<thread id>" (NAME + up to
# 37). 200 leaves room for both, and for a longer suffix to come. (Sockets are named by
# a hash of the name, so the 107-byte limit of their paths does not depend on it.)
MAX_NAME_LENGTH = 200
_GROUP_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9_.+-]{0,62}", re.ASCII)
# Ganeti's tag rule, ASCII only: \w would let in every Unicode letter and digit.
_TAG_RE = re.compile(r"[A-Za-z0-9.+*/:@_-]{1,128}", re.ASCII)
_TAG_RULE = "1-128 ASCII letters, digits or .+*/:@_-"


def _shown(name: str) -> str:
    """A name as an error quotes it: a very long one cut, so the line stays readable."""
    return name if len(name) <= 40 else f"{name[:32]}..."


def check_hostname(name: str, what: str = "node") -> str:
    """The one check of instance, node and cluster names: a DNS name short enough for
    every file name cardume builds from it (see MAX_NAME_LENGTH)."""
    if not isinstance(name, str) or not name:
        raise errors.WrongInput(f"invalid {what} name {name!r}: expected a DNS name")
    if len(name) > MAX_NAME_LENGTH:
        raise errors.WrongInput(f"{what} name '{_shown(name)}' is too long: {len(name)} "
                                f"characters, at most {MAX_NAME_LENGTH}")
    for label in name.split("."):
        if len(label) > 63:
            raise errors.WrongInput(
                f"invalid {what} name '{_shown(name)}': its label '{_shown(label)}' has "
                f"{len(label)} characters, at most 63")
        if not _LABEL_RE.fullmatch(label):
            raise errors.WrongInput(
                f"invalid {what} name {_shown(name)!r}: expected a DNS name, dot-separated "
                "labels of 1-63 ASCII letters, digits and '-' (not first or last)")
    return name


def check_group_name(name: str) -> str:
    if not isinstance(name, str) or not _GROUP_RE.fullmatch(name):
        raise errors.WrongInput(
            f"invalid group name {_shown(str(name))!r}: expected up to 63 ASCII letters, "
            "digits and '_.+-' (not starting with '.', '+' or '-')")
    return name


def check_tags(tags: list[str]) -> None:
    """Ganeti's tag syntax, for cluster, node, group and instance tags alike."""
    for tag in tags:
        if not isinstance(tag, str) or not _TAG_RE.fullmatch(tag):
            shown = _shown(tag) if isinstance(tag, str) else tag
            raise errors.WrongInput(f"invalid tag {shown!r}: expected {_TAG_RULE}")


def check_params(values: dict[str, Any] | None, types: dict[str, str], what: str,
                 ) -> dict[str, Any]:
    """Validate a parameter dict against its type table (values from the CLI or a submitted job)."""
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
        hvparams_rules.check(hv, result[hv])
    return result


def check_instance_hvparams(hypervisor: str, values: dict[str, Any]) -> dict[str, Any]:
    """An instance's own hypervisor parameters: checked, and none of the global ones."""
    used = sorted(constants.HVC_GLOBALS.intersection(values))
    if used:
        # the hint shows the values only once they pass the cluster's checks
        example = ",".join(f"{key}={values[key]}" for key in used)
        try:
            check_hvparams({hypervisor: {key: values[key] for key in used}})
        except errors.WrongInput:
            example = ",".join(f"{key}=..." for key in used)
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


def named_group(cfg: ConfigWriter, name: str) -> objects.NodeGroup:
    """The node group an allocator's operation names (by name or uuid)."""
    group = cfg.find_group(name)
    if group is None:
        raise errors.UnknownEntity(f"node group '{name}' not found")
    return group


def default_group(cfg: ConfigWriter) -> objects.NodeGroup:
    """Where new nodes go: the group named 'default', else the first by name."""
    group = cfg.find_group(constants.DEFAULT_GROUP)
    if group is not None:
        return group
    return sorted(cfg.groups.values(), key=lambda g: g.name)[0]
