"""Instance policies (ipolicy) in the logical units: what an instance looks like to its
group's policy, the refusal when it breaks it, and the check of a changed policy.

The pure rules are in :mod:`cardume.rules.ipolicy`; this module joins them to the
configuration. Instance creation, modify, verify and the cluster and group modify use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cardume import errors, objects
from cardume.rules import ipolicy
from cardume.rules.ipolicy import InstanceSpec


def instance_spec(instance: objects.Instance, beparams: dict[str, Any],
                  memory: int | None = None) -> InstanceSpec:
    """The spec of ``instance`` as a policy sees it; ``beparams`` are its filled backend
    parameters; ``memory`` overrides maxmem (modify checks minmem this way too)."""
    return InstanceSpec(
        memory=int(beparams["maxmem"]) if memory is None else memory,
        cpus=int(beparams["vcpus"]),
        disk_sizes=tuple(int(disk.size) for disk in instance.disks),
        nic_count=len(instance.nics),
        spindles=int(beparams.get("spindle_use", 1)),
        disk_template=instance.disk_template)


def group_of_instance(cfg: Any, instance: objects.Instance) -> objects.NodeGroup | None:
    node = cfg.nodes.get(instance.primary_node)
    return cfg.groups.get(node.group) if node is not None else None


def filled_beparams(cfg: Any, instance: objects.Instance,
                    group: objects.NodeGroup | None = None) -> dict[str, Any]:
    return objects.fill_beparams(cfg.get_cluster(), group, instance.beparams)


def instance_violations(cfg: Any, instance: objects.Instance,
                        group: objects.NodeGroup | None = None) -> list[str]:
    """What in a configured instance breaks its group's policy (verify's check)."""
    group = group if group is not None else group_of_instance(cfg, instance)
    policy = objects.fill_ipolicy(cfg.get_cluster(), group)
    return ipolicy.violations(policy, instance_spec(instance,
                                                    filled_beparams(cfg, instance, group)))


def violations_of(cfg: Any, group: objects.NodeGroup | None,
                  specs: Iterable[InstanceSpec]) -> list[str]:
    """Every violation of the specs against the group's filled policy, each once."""
    policy = objects.fill_ipolicy(cfg.get_cluster(), group)
    found: dict[str, None] = {}
    for spec in specs:
        found.update(dict.fromkeys(ipolicy.violations(policy, spec)))
    return list(found)


def check_policy(cfg: Any, group: objects.NodeGroup | None,
                 spec: InstanceSpec | Sequence[InstanceSpec], ignore: bool,
                 warn: Callable[[str], None] | None = None) -> None:
    """Refuse (WrongInput, Ganeti's wording) an instance the group's policy forbids;
    with ``ignore`` (--ignore-ipolicy) let it be, telling ``warn`` if given."""
    specs = [spec] if isinstance(spec, InstanceSpec) else list(spec)
    found = violations_of(cfg, group, specs)
    if not found:
        return
    message = ipolicy.group_violation_message(group.uuid if group else "",
                                              group.name if group else "", found)
    if not ignore:
        raise errors.WrongInput(message, "use --ignore-ipolicy to do it anyway")
    if warn is not None:
        warn(message)


def out_of_policy(cfg: Any, instances: Iterable[objects.Instance]) -> list[str]:
    """Names of the instances that break their group's policy (sorted)."""
    return sorted(inst.name for inst in instances if instance_violations(cfg, inst))


def new_policy(cfg: Any, group: objects.NodeGroup | None,
               changes: dict[str, Any] | None,
               enabled_templates: Sequence[str] | None = None) -> dict[str, Any] | None:
    """The object's own policy after ``changes`` (the cluster's when ``group`` is None),
    checked as a whole: None when there is no change. The templates are checked against
    the enabled ones only when the change names them, as Ganeti does."""
    if not changes:
        return None
    cluster = cfg.get_cluster()
    checked = ipolicy.check_changes(changes, cluster=group is None)
    in_force = objects.fill_ipolicy(cluster, None)
    own = ipolicy.apply_changes(group.ipolicy if group else cluster.ipolicy, checked,
                                std_base=in_force.get(ipolicy.STD))
    filled = objects.fill_dict(in_force, own)
    enabled = (list(enabled_templates) if enabled_templates is not None
               else cluster.enabled_disk_templates)
    ipolicy.check_filled(filled, check_std=group is None,
                         enabled_templates=enabled if ipolicy.DISK_TEMPLATES in checked
                         and checked[ipolicy.DISK_TEMPLATES] is not None else None)
    return own


def warn_violators(cfg: Any, instances: Iterable[objects.Instance],
                   warn: Callable[[str], None]) -> None:
    """After a policy change: name the instances now outside it (Ganeti warns so)."""
    names = out_of_policy(cfg, instances)
    if names:
        warn(f"After the ipolicy change the following instances violate them: "
             f"{', '.join(names)}")
