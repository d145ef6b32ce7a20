"""The cluster's resources: /, /version, /2, /2/info, /2/features, /2/os, /2/tags,
/2/modify and /2/redistribute-config."""

from __future__ import annotations

import platform
import struct
from typing import Any

from cardume.rapi import bodies, tags
from cardume.rapi.base import Call

FEATURES = ["instance-create-reqv1", "node-evac-res1", "instance-reinstall-reqv1",
            "node-migrate-reqv1"]
"""Ganeti's feature strings: the request and result formats a client may use."""

OS_API_VERSION = 20
EXPORT_VERSION = 0

# /2/info's keys, in Ganeti's order; those cardume's cluster has come from QueryClusterInfo
# (named as Ganeti names them), the rest are null.
INFO_KEYS = (
    "software_version", "protocol_version", "config_version", "os_api_version",
    "export_version", "vcs_version", "architecture", "name", "master", "default_hypervisor",
    "enabled_hypervisors", "hvparams", "os_hvp", "beparams", "osparams", "ipolicy",
    "nicparams", "ndparams", "diskparams", "candidate_pool_size", "max_running_jobs",
    "max_tracked_jobs", "mac_prefix", "master_netdev", "master_netmask",
    "use_external_mip_script", "volume_group_name", "drbd_usermode_helper",
    "file_storage_dir", "shared_file_storage_dir", "gluster_storage_dir",
    "maintain_node_health", "ctime", "mtime", "uuid", "tags", "uid_pool",
    "default_iallocator", "default_iallocator_params", "reserved_lvs", "primary_ip_version",
    "prealloc_wipe_disks", "hidden_os", "blacklisted_os", "enabled_disk_templates",
    "install_image", "instance_communication_network", "zeroing_image",
    "compression_tools", "enabled_user_shutdown", "enabled_data_collectors",
    "data_collector_interval", "modify_ssh_setup", "ssh_key_type", "ssh_key_bits",
    "vg_name", "drbd_helper",
)


async def root(call: Call) -> Any:
    return None


async def version(call: Call) -> Any:
    return 2


async def features(call: Call) -> Any:
    return list(FEATURES)


def _merged(base: dict[str, Any] | None, filled: dict[str, Any] | None) -> dict[str, Any]:
    """Per-key dicts (hypervisor, disk template) with the filled defaults under own values."""
    result = {k: dict(v) for k, v in (filled or {}).items()}
    for key, value in (base or {}).items():
        result[key] = {**result.get(key, {}), **(value or {})}
    return result


def info_reply(data: dict[str, Any]) -> dict[str, Any]:
    """Ganeti's /2/info from the master's QueryClusterInfo."""
    bits = f"{struct.calcsize('P') * 8}bits"
    values: dict[str, Any] = {
        **data,
        "config_version": data.get("protocol_version"),
        "os_api_version": OS_API_VERSION,
        "export_version": EXPORT_VERSION,
        "vcs_version": f"(cardume) version {data.get('software_version')}",
        "architecture": [bits, platform.machine()],
        "hvparams": _merged(data.get("hvparams"), data.get("hvparams_filled")),
        "os_hvp": data.get("os_hvp") or {},
        "beparams": {"default": data.get("beparams_filled")
                     or (data.get("beparams") or {}).get("default") or {}},
        "nicparams": {"default": data.get("nicparams_filled")
                      or (data.get("nicparams") or {}).get("default") or {}},
        "ndparams": data.get("ndparams_filled") or data.get("ndparams") or {},
        "diskparams": _merged(data.get("diskparams"), data.get("diskparams_filled")),
        "ipolicy": data.get("ipolicy_filled") or data.get("ipolicy") or {},
        "osparams": data.get("osparams") or {},
        "primary_ip_version": data.get("primary_ip_family", 4),
        "vg_name": data.get("volume_group_name"),
        "drbd_helper": data.get("drbd_usermode_helper"),
        "tags": sorted(data.get("tags") or []),
    }
    return {key: values.get(key) for key in INFO_KEYS}


async def info(call: Call) -> Any:
    return info_reply(await call.master.call("QueryClusterInfo"))


async def operating_systems(call: Call) -> Any:
    """The valid OS definitions as name+variant (a name alone when it has no variants)."""
    names: list[str] = []
    for entry in await call.master.call("QueryOs"):
        if not entry.get("valid"):
            continue
        variants = entry.get("variants") or []
        if variants:
            names.extend(f"{entry['name']}+{v}" for v in variants)
        else:
            names.append(entry["name"])
    return names


async def modify(call: Call) -> Any:
    return await bodies.submit_op(call, "OP_CLUSTER_SET_PARAMS", bodies.body_dict(call))


async def redistribute_config(call: Call) -> Any:
    return await bodies.submit_op(call, "OP_CLUSTER_REDIST_CONF")


async def _cluster_tags(call: Call) -> list[str]:
    data = await call.master.call("QueryClusterInfo")
    return sorted(data.get("tags") or [])


get_tags = tags.getter(_cluster_tags)
put_tags = tags.setter("cluster", None)
delete_tags = tags.deleter("cluster", None)
