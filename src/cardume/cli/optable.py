"""Every operation's parameters, as plain data for the ``gnt-*`` option parsers.

The parameters are declared once, in ``cardume/opcodes/``, which also checks every opcode
the master receives. The part of this module below the marker line is a copy of that table
written by ``python -m cardume.opcodes_gen`` (run it after changing opcodes/;
tests/unit/test_optable.py fails while the copy is stale). It is a copy because importing
opcodes (dataclasses, typing) would slow the start of every command; this module imports
nothing.

Use the accessors, not the dicts: ``default("OP_INSTANCE_REBOOT", "reboot_type")`` is
``"hard"``, ``choices(...)`` is ``("soft", "hard", "full")``, ``help_text(...)`` gives a
help line for argparse. Every accessor raises KeyError for an unknown operation or parameter.
"""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any

    #: (type name, default, choices or None, required, doc) of one parameter.
    Entry = tuple[str, Any, tuple[Any, ...] | None, bool, str]


def _entry(op_id: str, name: str) -> Entry:
    own = OPS.get(op_id)
    if own is None:
        raise KeyError(f"unknown operation {op_id!r}")
    entry = own.get(name) or COMMON.get(name)
    if entry is None:
        raise KeyError(f"{op_id} has no parameter {name!r}")
    return entry


def op_ids() -> list[str]:
    """Every operation's OP_ID, sorted."""
    return sorted(OPS)


def names(op_id: str) -> list[str]:
    """The operation's parameter names: its own, then those every operation has."""
    if op_id not in OPS:
        raise KeyError(f"unknown operation {op_id!r}")
    return [*OPS[op_id], *COMMON]


def op_doc(op_id: str) -> str:
    """What the operation does, in one sentence."""
    return OP_DOCS[op_id]


def default(op_id: str, name: str) -> Any:
    """The value the master uses when the parameter is left out (a fresh copy)."""
    value = _entry(op_id, name)[1]
    return type(value)(value) if isinstance(value, (list, dict)) else value


def choices(op_id: str, name: str) -> tuple[Any, ...] | None:
    """The only values allowed, or None when the set is not fixed."""
    return _entry(op_id, name)[2]


def doc(op_id: str, name: str) -> str:
    """What the parameter means, short (no default, no choices)."""
    return _entry(op_id, name)[4]


def type_name(op_id: str, name: str) -> str:
    """The parameter's type as messages name it (``"non-negative int"``)."""
    return _entry(op_id, name)[0]


def required(op_id: str, name: str) -> bool:
    """Whether an opcode without this parameter is refused."""
    return _entry(op_id, name)[3]


def help_text(op_id: str, name: str) -> str:
    """The doc with the choices and the default, ready for argparse's ``help=`` (a ``%``
    is doubled: argparse formats help strings)."""
    _, value, allowed, _, text = _entry(op_id, name)
    notes = []
    if allowed:
        notes.append("one of " + ", ".join(map(str, allowed)))
    if value is not None and not isinstance(value, (bool, list, dict)) and value != "":
        notes.append(f"default {value}")
    if notes:
        text += f" ({'; '.join(notes)})"
    return text.replace("%", "%%")


# --- written by `python -m cardume.opcodes_gen` from opcodes/: do not edit below ---

#: Parameters every operation has.
COMMON: dict[str, Entry] = {
    "dry_run": ("bool", False, None, False, "check prerequisites only, change nothing"),
    "debug_level": ("non-negative int", 0, None, False, "debug level"),
    "priority": ("priority -20..19", 0, None, False, "job priority, -20 (high)..19"),
    "depends": ("list | None", None, None, False,
                "jobs this one waits for: [[job_id, [statuses]]]"),
    "comment": ("string | None", None, None, False, "free-form comment"),
    "reason": ("list", [], None, False, "reason trail: [[source, reason, timestamp]]"),
}

#: Each operation's own parameters, by OP_ID.
OPS: dict[str, dict[str, Entry]] = {
    "OP_BACKUP_EXPORT": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
        "target_node": ("string | None", None, None, False,
                        "node receiving the export (mode local)"),
        "shutdown": ("bool", True, None, False, "stop the instance while its disks are read"),
        "shutdown_timeout": ("non-negative int", 120, None, False,
                             "seconds to wait for a clean shutdown"),
        "remove_instance": ("bool", False, None, False, "remove the instance after the export"),
        "ignore_remove_failures": ("bool", False, None, False,
                                   "remove it from the config even if removing its disks fails"),
        "mode": ("non-empty string", "local", ("local", "remote"), False, "export mode"),
        "compress": ("non-empty string", "none", ("none",), False,
                     "compression of the disk dumps"),
        "zero_free_space": ("bool", False, None, False,
                            "zero the free space first (not supported)"),
        "zeroing_timeout_fixed": ("non-negative int | None", None, None, False,
                                  "zeroing: fixed timeout"),
        "zeroing_timeout_per_mib": ("non-negative int | None", None, None, False,
                                    "zeroing: timeout per MiB"),
        "long_sleep": ("bool", False, None, False,
                       "allow the instance to stay down while disks without snapshots are read"),
        "x509_key_name": ("list of strings | None", None, None, False,
                          "remote mode: the key's name"),
        "destination_x509_ca": ("string | None", None, None, False, "remote mode: destination CA"),
    },
    "OP_BACKUP_PREPARE": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
        "mode": ("non-empty string", None, ("local", "remote"), True, "export mode"),
    },
    "OP_BACKUP_QUERY": {
        "nodes": ("list of strings | None", None, None, False, "nodes to ask (default: all)"),
        "use_locking": ("bool", False, None, False, "accepted for Ganeti's clients"),
    },
    "OP_BACKUP_REMOVE": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
    },
    "OP_CLUSTER_BALANCE": {
        "max_moves": ("non-negative int | None", None, None, False,
                      "at most this many moves; unset: no limit"),
        "min_gain": ("non-negative float", 0.01, None, False,
                     "smallest gain of a move (hbal -g) under min_gain_limit"),
        "min_gain_limit": ("non-negative float", 0.1, None, False,
                           "score under which min_gain applies"),
        "group_name": ("string | None", None, None, False,
                       "only this node group; unset: every group"),
    },
    "OP_CLUSTER_CAPACITY": {
        "spec": ("dict | None", None, None, False,
                 "memory-size, disk-size (MiB), cpu-count; unset: the std spec's"),
        "disk_template": ("string | None", None,
                          ("diskless", "file", "sharedfile", "plain", "drbd", "blockdev", "rbd",
                           "ext", "gluster"), False, "disk template; unset: the policy's first"),
        "group_name": ("string | None", None, None, False,
                       "only this node group; unset: every group"),
    },
    "OP_CLUSTER_DESTROY": {},
    "OP_CLUSTER_REDIST_CONF": {},
    "OP_CLUSTER_SET_PARAMS": {
        "vg_name": ("string | None", None, None, False, "volume group for plain and drbd disks"),
        "enabled_hypervisors": ("list of strings | None", None, None, False,
                                "hypervisors instances may use"),
        "enabled_disk_templates": ("list of strings | None", None, None, False,
                                   "disk templates allowed"),
        "hvparams": ("dict | None", None, None, False, "hypervisor defaults {hv: {k: v}}"),
        "beparams": ("dict | None", None, None, False, "backend defaults"),
        "nicparams": ("dict | None", None, None, False, "NIC defaults"),
        "ndparams": ("dict | None", None, None, False, "node defaults"),
        "diskparams": ("dict | None", None, None, False, "disk defaults {template: {k: v}}"),
        "osparams": ("dict | None", None, None, False, "OS defaults {os: {k: v}}"),
        "ipolicy": ("dict | None", None, None, False, "instance policy"),
        "file_storage_dir": ("string | None", None, None, False, "file storage directory"),
        "shared_file_storage_dir": ("string | None", None, None, False,
                                    "shared file storage directory"),
        "master_netdev": ("string | None", None, None, False, "network device of the master IP"),
        "candidate_pool_size": ("int | None", None, None, False,
                                "number of master candidates wanted"),
        "mac_prefix": ("string | None", None, None, False, "prefix of generated MAC addresses"),
        "max_running_jobs": ("int | None", None, None, False, "jobs allowed to run at once"),
        "max_tracked_jobs": ("int | None", None, None, False, "jobs tracked at once"),
        "default_iallocator": ("string | None", None, None, False, "default instance allocator"),
        "drbd_helper": ("string | None", None, None, False, "DRBD user-mode helper"),
        "os_search_path": ("list of strings | None", None, None, False,
                           "directories searched for OSes"),
        "uid_pool": ("list | None", None, None, False, "uid ranges [[low, high], ...] (replaces)"),
        "add_uids": ("list | None", None, None, False, "uid ranges added to the pool"),
        "remove_uids": ("list | None", None, None, False, "uid ranges removed from the pool"),
        "add_tags": ("list of strings | None", None, None, False, "tags to add"),
        "remove_tags": ("list of strings | None", None, None, False, "tags to remove"),
    },
    "OP_CLUSTER_VERIFY": {
        "group_name": ("string | None", None, None, False, "verify only this node group"),
        "error_codes": ("bool", False, None, False, "print machine-parsable error codes"),
        "skip_checks": ("list of strings", [], None, False, "checks to skip"),
        "ignore_errors": ("list of strings", [], None, False, "error codes to report as warnings"),
        "verbose": ("bool", False, None, False, "verbose output"),
    },
    "OP_CLUSTER_VERIFY_DISKS": {
        "group_name": ("string | None", None, None, False, "only this node group"),
    },
    "OP_GROUP_ADD": {
        "group_name": ("non-empty string", None, None, True, "name of the group"),
        "alloc_policy": ("string | None", None, ("preferred", "last_resort", "unallocable"), False,
                         "allocation policy"),
        "ndparams": ("dict | None", None, None, False, "node parameters"),
        "diskparams": ("dict | None", None, None, False, "disk parameters"),
        "ipolicy": ("dict | None", None, None, False, "instance policy"),
    },
    "OP_GROUP_ASSIGN_NODES": {
        "group_name": ("non-empty string", None, None, True, "target group"),
        "nodes": ("list of strings", None, None, True, "nodes to move"),
        "force": ("bool", False, None, False, "allow splitting instances across groups"),
    },
    "OP_GROUP_REMOVE": {
        "group_name": ("non-empty string", None, None, True, "name of the group"),
    },
    "OP_GROUP_RENAME": {
        "group_name": ("non-empty string", None, None, True, "current name"),
        "new_name": ("non-empty string", None, None, True, "new name"),
    },
    "OP_GROUP_SET_PARAMS": {
        "group_name": ("non-empty string", None, None, True, "name of the group"),
        "alloc_policy": ("string | None", None, ("preferred", "last_resort", "unallocable"), False,
                         "allocation policy"),
        "ndparams": ("dict | None", None, None, False, "node parameters"),
        "diskparams": ("dict | None", None, None, False, "disk parameters"),
        "hvparams": ("dict | None", None, None, False, "hypervisor parameters"),
        "ipolicy": ("dict | None", None, None, False, "instance policy"),
    },
    "OP_INSTANCE_ACTIVATE_DISKS": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
        "ignore_size": ("bool", False, None, False, "ignore recorded sizes"),
        "wait_for_sync": ("bool", False, None, False, "wait for mirrored disks to sync"),
    },
    "OP_INSTANCE_CHANGE_GROUP": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
        "iallocator": ("string | None", None, None, False,
                       "allocator; unset: the cluster's default"),
        "target_groups": ("list of strings | None", None, None, False,
                          "groups it may go to; unset: any group but its own"),
        "early_release": ("bool", False, None, False, "accepted for Ganeti's clients"),
    },
    "OP_INSTANCE_CREATE": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
        "mode": ("string", "create", ("create", "import", "remote-import"), False,
                 "creation mode"),
        "disk_template": ("string | None", None,
                          ("diskless", "file", "sharedfile", "plain", "drbd", "blockdev", "rbd",
                           "ext", "gluster"), False,
                          "disk template (required, but for an import: the export's)"),
        "disks": ("list of dicts", [], None, False, "disks: [{size, mode, name, vg, adopt}]"),
        "nics": ("list of dicts", [], None, False, "NICs: [{mac, ip, mode, link, name, network}]"),
        "beparams": ("dict", {}, None, False, "backend parameters"),
        "hvparams": ("dict", {}, None, False, "hypervisor parameters"),
        "hypervisor": ("string | None", None,
                       ("xen-pvm", "xen-hvm", "kvm", "lxc", "chroot", "fake"), False,
                       "hypervisor; unset: the cluster's first"),
        "osparams": ("dict", {}, None, False, "OS parameters"),
        "os_type": ("string | None", None, None, False, "OS, as name+variant"),
        "force_variant": ("bool", False, None, False, "accept an unknown OS variant"),
        "pnode": ("string | None", None, None, False, "primary node"),
        "snode": ("string | None", None, None, False, "secondary node"),
        "iallocator": ("string | None", None, None, False, "allocator choosing the nodes"),
        "group_name": ("string | None", None, None, False, "node group to allocate in"),
        "ignore_ipolicy": ("bool", False, None, False, "create it even if it breaks the policy"),
        "name_check": ("bool", True, None, False, "check the name resolves"),
        "ip_check": ("bool", True, None, False, "check the resolved address is not in use"),
        "conflicts_check": ("bool", True, None, False, "check for conflicting IPs"),
        "start": ("bool", True, None, False, "start the instance after creation"),
        "no_install": ("bool", False, None, False, "don't run the OS create script"),
        "wait_for_sync": ("bool", True, None, False, "wait for mirrored disks to sync"),
        "file_storage_dir": ("string | None", None, None, False,
                             "directory below the storage dir"),
        "file_driver": ("string | None", None, ("loop", "blktap", "blktap2"), False,
                        "file driver (only loop works yet)"),
        "tags": ("list of strings", [], None, False, "tags"),
        "src_node": ("string | None", None, None, False, "import: source node"),
        "src_path": ("string | None", None, None, False, "import: source path"),
    },
    "OP_INSTANCE_DEACTIVATE_DISKS": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
        "force": ("bool", False, None, False, "even if the instance runs"),
    },
    "OP_INSTANCE_FAILOVER": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
        "ignore_consistency": ("bool", False, None, False, "the old primary is dead"),
        "shutdown_timeout": ("non-negative int", 120, None, False,
                             "seconds to wait for a clean shutdown"),
        "target_node": ("string | None", None, None, False, "target node (shared storage)"),
        "iallocator": ("string | None", None, None, False, "allocator choosing the target"),
        "cleanup": ("bool", False, None, False, "clean up after a failed failover"),
    },
    "OP_INSTANCE_GROW_DISK": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
        "disk": ("non-negative int", None, None, True, "disk index"),
        "amount": ("non-negative int", None, None, True, "MiB to add (or the new size)"),
        "absolute": ("bool", False, None, False, "amount is the new size"),
        "wait_for_sync": ("bool", True, None, False, "wait for mirrored disks to sync"),
    },
    "OP_INSTANCE_MIGRATE": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
        "mode": ("string | None", None, ("live", "non-live"), False,
                 "migration mode; unset: the hypervisor's"),
        "live": ("bool | None", None, None, False, "old spelling of mode"),
        "target_node": ("string | None", None, None, False, "target node (shared storage)"),
        "iallocator": ("string | None", None, None, False, "allocator choosing the target"),
        "cleanup": ("bool", False, None, False, "recover from an interrupted migration"),
        "allow_failover": ("bool", False, None, False, "fail over if migration is impossible"),
        "ignore_ipolicy": ("bool", False, None, False, "ignore the instance policy"),
        "mirror_disks": ("bool", False, None, False,
                         "copy local (file, plain) disks to the target during a live migration"),
        "allow_runtime_changes": ("bool", True, None, False, "accepted for Ganeti's clients"),
        "ignore_hvversions": ("bool", False, None, False, "accepted for Ganeti's clients"),
    },
    "OP_INSTANCE_MOVE": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
        "target_node": ("non-empty string", None, None, True, "new primary node"),
        "shutdown_timeout": ("non-negative int", 120, None, False,
                             "seconds to wait for a clean shutdown"),
        "ignore_consistency": ("bool", False, None, False, "ignore disk consistency"),
    },
    "OP_INSTANCE_MULTI_ALLOC": {
        "instances": ("list of dicts", None, None, True,
                      "the instances: OP_INSTANCE_CREATE parameters without nodes"),
        "iallocator": ("string | None", None, None, False,
                       "allocator; unset: the cluster's default"),
        "opportunistic_locking": ("bool", False, None, False, "accepted for Ganeti's clients"),
    },
    "OP_INSTANCE_QUERY_DATA": {
        "use_locking": ("bool", False, None, False,
                        "hold shared locks on the instances and nodes"),
        "instances": ("list of strings", [], None, False,
                      "instances to describe (all when empty)"),
        "static": ("bool", False, None, False, "only the configuration: ask no node"),
    },
    "OP_INSTANCE_REBOOT": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
        "reboot_type": ("string", "hard", ("soft", "hard", "full"), False, "reboot type"),
        "shutdown_timeout": ("non-negative int", 120, None, False,
                             "seconds to wait for a clean shutdown"),
        "ignore_secondaries": ("bool", False, None, False, "ignore secondary node errors"),
    },
    "OP_INSTANCE_REINSTALL": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
        "os_type": ("string | None", None, None, False, "new OS"),
        "osparams": ("dict | None", None, None, False, "new OS parameters"),
        "force_variant": ("bool", False, None, False, "accept an unknown variant"),
    },
    "OP_INSTANCE_REMOVE": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
        "ignore_failures": ("bool", False, None, False,
                            "remove from the config even if cleanup fails"),
        "shutdown_timeout": ("non-negative int", 120, None, False,
                             "seconds to wait for a clean shutdown"),
    },
    "OP_INSTANCE_RENAME": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
        "new_name": ("non-empty string", None, None, True, "new name"),
        "ip_check": ("bool", False, None, False, "check the new address is not in use"),
        "name_check": ("bool", True, None, False, "check the new name resolves"),
    },
    "OP_INSTANCE_REPLACE_DISKS": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
        "mode": ("string", None,
                 ("replace_on_primary", "replace_on_secondary", "replace_new_secondary",
                  "replace_auto"), True, "where to replace"),
        "disks": ("list of ints", [], None, False, "disk indices (all when empty)"),
        "remote_node": ("string | None", None, None, False, "new secondary node"),
        "iallocator": ("string | None", None, None, False, "allocator choosing the new secondary"),
        "early_release": ("bool", False, None, False, "release locks early"),
        "ignore_ipolicy": ("bool", False, None, False, "ignore the instance policy"),
    },
    "OP_INSTANCE_SET_PARAMS": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
        "beparams": ("dict", {}, None, False, "backend parameters"),
        "hvparams": ("dict", {}, None, False, "hypervisor parameters"),
        "osparams": ("dict | None", None, None, False, "OS parameters"),
        "os_name": ("string | None", None, None, False, "new OS (applies at next reinstall)"),
        "force_variant": ("bool", False, None, False, "accept an unknown variant"),
        "disks": ("list of [op, index, params]", [], None, False,
                  "disk changes: [[op, index, params]]"),
        "nics": ("list of [op, index, params]", [], None, False,
                 "NIC changes: [[op, index, params]]"),
        "offline": ("bool | None", None, None, False, "mark offline (True) or online (False)"),
        "disk_template": ("string | None", None,
                          ("diskless", "file", "sharedfile", "plain", "drbd", "blockdev", "rbd",
                           "ext", "gluster"), False, "convert to this disk template"),
        "remote_node": ("string | None", None, None, False, "secondary node for a conversion"),
        "wait_for_sync": ("bool", True, None, False, "wait for mirrored disks to sync"),
        "runtime_mem": ("non-negative int | None", None, None, False,
                        "balloon the running instance (MiB)"),
        "force": ("bool", False, None, False, "force"),
        "ignore_ipolicy": ("bool", False, None, False, "ignore the instance policy"),
    },
    "OP_INSTANCE_SHUTDOWN": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
        "force": ("bool", False, None, False, "force"),
        "ignore_offline_nodes": ("bool", False, None, False, "ignore offline nodes"),
        "timeout": ("non-negative int", 120, None, False, "seconds to wait for a clean shutdown"),
        "no_remember": ("bool", False, None, False, "don't record the instance as down"),
    },
    "OP_INSTANCE_STARTUP": {
        "instance_name": ("non-empty string", None, None, True, "name of the instance"),
        "force": ("bool", False, None, False, "force"),
        "ignore_offline_nodes": ("bool", False, None, False, "ignore offline nodes"),
        "hvparams": ("dict", {}, None, False, "temporary hypervisor parameters"),
        "beparams": ("dict", {}, None, False, "temporary backend parameters"),
        "no_remember": ("bool", False, None, False, "don't record the instance as up"),
        "startup_paused": ("bool", False, None, False, "start paused"),
    },
    "OP_NETWORK_ADD": {
        "network_name": ("non-empty string", None, None, True, "name of the network"),
        "network": ("non-empty string", None, None, True, "IPv4 subnet, CIDR"),
        "gateway": ("string | None", None, None, False, "IPv4 gateway"),
        "network6": ("string | None", None, None, False, "IPv6 subnet, CIDR"),
        "gateway6": ("string | None", None, None, False, "IPv6 gateway"),
        "mac_prefix": ("string | None", None, None, False,
                       "MAC prefix of the network's NICs, XX:XX:XX"),
        "add_reserved_ips": ("list of strings | None", None, None, False,
                             "addresses to reserve externally"),
        "conflicts_check": ("bool", True, None, False, "check for conflicting IPs"),
        "tags": ("list of strings", [], None, False, "tags"),
    },
    "OP_NETWORK_CONNECT": {
        "group_name": ("non-empty string", None, None, True, "node group"),
        "network_name": ("non-empty string", None, None, True, "name of the network"),
        "network_mode": ("non-empty string", None, ("bridged", "routed", "openvswitch"), True,
                         "NIC mode"),
        "network_link": ("non-empty string", None, None, True, "NIC link"),
        "network_vlan": ("string", "", None, False, "VLAN"),
        "conflicts_check": ("bool", True, None, False, "check for conflicting IPs"),
    },
    "OP_NETWORK_DISCONNECT": {
        "group_name": ("non-empty string", None, None, True, "node group"),
        "network_name": ("non-empty string", None, None, True, "name of the network"),
    },
    "OP_NETWORK_REMOVE": {
        "network_name": ("non-empty string", None, None, True, "name of the network"),
        "force": ("bool", False, None, False, "force"),
    },
    "OP_NETWORK_RENAME": {
        "network_name": ("non-empty string", None, None, True, "name of the network"),
        "new_name": ("non-empty string", None, None, True, "new name"),
    },
    "OP_NETWORK_SET_PARAMS": {
        "network_name": ("non-empty string", None, None, True, "name of the network"),
        "gateway": ("string | None", None, None, False, "IPv4 gateway ('none' removes it)"),
        "network6": ("string | None", None, None, False, "IPv6 subnet ('none' removes it)"),
        "gateway6": ("string | None", None, None, False, "IPv6 gateway ('none' removes it)"),
        "mac_prefix": ("string | None", None, None, False, "MAC prefix ('none' removes it)"),
        "add_reserved_ips": ("list of strings | None", None, None, False,
                             "addresses to reserve externally"),
        "remove_reserved_ips": ("list of strings | None", None, None, False,
                                "external reservations to drop"),
    },
    "OP_NODE_ADD": {
        "node_name": ("non-empty string", None, None, True, "name of the node"),
        "primary_ip": ("string | None", None, None, False,
                       "primary address (default: resolved name)"),
        "secondary_ip": ("string | None", None, None, False, "replication address"),
        "readd": ("bool", False, None, False, "re-add a node that is already in the config"),
        "group": ("string | None", None, None, False, "node group (default: the default group)"),
        "master_capable": ("bool | None", None, None, False, "may become master candidate"),
        "vm_capable": ("bool | None", None, None, False, "may host instances"),
        "ndparams": ("dict | None", None, None, False, "node parameters"),
        "port": ("int | None", None, None, False, "port of the node daemon"),
        "join_token": ("string | None", None, None, False,
                       "the node's join token (fingerprint+secret)"),
    },
    "OP_NODE_EVACUATE": {
        "node_name": ("non-empty string", None, None, True, "node to evacuate"),
        "mode": ("string", "all", ("primary-only", "secondary-only", "all"), False,
                 "what to move"),
        "remote_node": ("string | None", None, None, False, "new secondary for every instance"),
        "iallocator": ("string | None", None, None, False, "allocator choosing the new nodes"),
        "early_release": ("bool", False, None, False, "release locks early"),
    },
    "OP_NODE_QUERY_STORAGE": {
        "output_fields": ("list of strings", None, None, True,
                          "columns: node, type, name, size, used, free, allocatable"),
        "storage_type": ("string | None", None, ("file", "sharedfile", "lvm-vg", "lvm-pv"), False,
                         "storage type; unset: the first enabled disk template's"),
        "nodes": ("list of strings", [], None, False, "nodes to ask (all when empty)"),
        "name": ("string | None", None, None, False, "only the storage unit of this name"),
    },
    "OP_NODE_REMOVE": {
        "node_name": ("non-empty string", None, None, True, "name of the node"),
    },
    "OP_NODE_SET_PARAMS": {
        "node_name": ("non-empty string", None, None, True, "name of the node"),
        "force": ("bool", False, None, False, "force the change"),
        "master_candidate": ("bool | None", None, None, False, "master candidate role"),
        "offline": ("bool | None", None, None, False, "offline flag"),
        "drained": ("bool | None", None, None, False, "drained flag"),
        "auto_promote": ("bool", False, None, False, "promote other nodes to keep the pool full"),
        "master_capable": ("bool | None", None, None, False, "master_capable flag"),
        "vm_capable": ("bool | None", None, None, False, "vm_capable flag"),
        "secondary_ip": ("string | None", None, None, False, "replication address"),
        "ndparams": ("dict | None", None, None, False, "node parameters"),
        "powered": ("bool | None", None, None, False, "powered flag"),
    },
    "OP_TAGS_DEL": {
        "kind": ("non-empty string", None, ("cluster", "node", "nodegroup", "instance", "network"),
                 True, "object kind"),
        "name": ("string | None", None, None, False, "object name (not for the cluster)"),
        "tags": ("list of strings", None, None, True, "tags"),
    },
    "OP_TAGS_SET": {
        "kind": ("non-empty string", None, ("cluster", "node", "nodegroup", "instance", "network"),
                 True, "object kind"),
        "name": ("string | None", None, None, False, "object name (not for the cluster)"),
        "tags": ("list of strings", None, None, True, "tags"),
    },
    "OP_TEST_ALLOCATOR": {
        "direction": ("string", "in", ("in", "out"), False,
                      "in: the request; out: the allocator's answer"),
        "mode": ("string", "allocate",
                 ("allocate", "multi-allocate", "relocate", "node-evacuate", "change-group"),
                 False, "request type"),
        "name": ("non-empty string", None, None, True, "instance name"),
        "iallocator": ("string | None", None, None, False,
                       "allocator; unset: the cluster's default"),
        "memory": ("non-negative int | None", None, None, False, "memory of the instance (MiB)"),
        "vcpus": ("non-negative int | None", None, None, False, "CPU count of the instance"),
        "disks": ("list of dicts", [], None, False, "disks: [{size, mode}]"),
        "disk_template": ("string | None", None,
                          ("diskless", "file", "sharedfile", "plain", "drbd", "blockdev", "rbd",
                           "ext", "gluster"), False, "disk template"),
        "nics": ("list of dicts", [], None, False, "NICs: [{mac, ip, link}]"),
        "os": ("string | None", None, None, False, "OS, as name+variant"),
        "hypervisor": ("string | None", None,
                       ("xen-pvm", "xen-hvm", "kvm", "lxc", "chroot", "fake"), False,
                       "hypervisor"),
        "tags": ("list of strings", [], None, False, "tags"),
        "spindle_use": ("non-negative int | None", None, None, False,
                        "spindles the instance uses"),
        "group_name": ("string | None", None, None, False, "node group to allocate in"),
        "evac_mode": ("string | None", None, ("primary-only", "secondary-only", "all"), False,
                      "node-evacuate: which instances move"),
        "instances": ("list of strings | None", None, None, False,
                      "node-evacuate, change-group: instances"),
        "target_groups": ("list of strings | None", None, None, False,
                          "change-group: target groups"),
        "count": ("non-negative int | None", None, None, False,
                  "multi-allocate: how many instances"),
    },
    "OP_TEST_DELAY": {
        "duration": ("seconds, 0 to 86400", None, None, True, "seconds to sleep"),
        "on_master": ("bool", True, None, False, "sleep on the master"),
        "on_nodes": ("list of strings", [], None, False,
                     "nodes to sleep on (through their daemons)"),
        "on_node_uuids": ("list of strings | None", None, None, False, "node uuids to sleep on"),
        "repeat": ("int 0..1000", 0, None, False, "repeat the sleep this many times"),
        "interruptible": ("bool", False, None, False, "may be canceled while sleeping"),
        "no_locks": ("bool", True, None, False, "take no locks"),
    },
}

#: What each operation does.
OP_DOCS: dict[str, str] = {
    "OP_BACKUP_EXPORT":
        "Export an instance's configuration and disks to a node's export directory.",
    "OP_BACKUP_PREPARE": "Prepare an instance's export (what a remote export needs first).",
    "OP_BACKUP_QUERY": "The exports on each node (gnt-backup list).",
    "OP_BACKUP_REMOVE": "Remove an instance's exports from every node.",
    "OP_CLUSTER_BALANCE":
        "Plan the moves that even out a node group's load (hbal); nothing moves.",
    "OP_CLUSTER_CAPACITY": "Count how many more instances of a spec fit, per node group (hspace).",
    "OP_CLUSTER_DESTROY": "Destroy the cluster: forget every node and stop the master.",
    "OP_CLUSTER_REDIST_CONF":
        "Push the configuration to every master candidate and ssconf to every node again.",
    "OP_CLUSTER_SET_PARAMS": "Change cluster-wide parameters and defaults.",
    "OP_CLUSTER_VERIFY": "Check the health of the cluster and report every problem found.",
    "OP_CLUSTER_VERIFY_DISKS":
        "Find mirrored disks that are degraded or disconnected, and reconnect them.",
    "OP_GROUP_ADD": "Create a node group.",
    "OP_GROUP_ASSIGN_NODES": "Move nodes into a node group.",
    "OP_GROUP_REMOVE": "Remove an empty node group.",
    "OP_GROUP_RENAME": "Rename a node group.",
    "OP_GROUP_SET_PARAMS": "Change a node group's parameters.",
    "OP_INSTANCE_ACTIVATE_DISKS": "Make an instance's disks usable on its nodes.",
    "OP_INSTANCE_CHANGE_GROUP":
        "Move an instance to another node group, where an allocator places it.",
    "OP_INSTANCE_CREATE": "Create an instance: disks, OS installation, config entry, start.",
    "OP_INSTANCE_DEACTIVATE_DISKS": "Release an instance's disks on its nodes.",
    "OP_INSTANCE_FAILOVER": "Stop an instance and start it on another node.",
    "OP_INSTANCE_GROW_DISK": "Grow one disk of an instance.",
    "OP_INSTANCE_MIGRATE": "Move a running instance to another node without stopping it.",
    "OP_INSTANCE_MOVE": "Copy an instance's disks to another node and make it the primary.",
    "OP_INSTANCE_MULTI_ALLOC":
        "Place several new instances at once with an allocator, then create each.",
    "OP_INSTANCE_QUERY_DATA":
        "Describe instances: configuration, and unless static their run and disk state.",
    "OP_INSTANCE_REBOOT": "Reboot an instance.",
    "OP_INSTANCE_REINSTALL": "Reinstall an instance's OS.",
    "OP_INSTANCE_REMOVE": "Remove an instance and its disks.",
    "OP_INSTANCE_RENAME": "Rename an instance.",
    "OP_INSTANCE_REPLACE_DISKS":
        "Replace the storage under a mirrored instance's disks, or its secondary node.",
    "OP_INSTANCE_SET_PARAMS": "Change an instance's parameters, disks and NICs.",
    "OP_INSTANCE_SHUTDOWN": "Stop an instance.",
    "OP_INSTANCE_STARTUP": "Start an instance.",
    "OP_NETWORK_ADD": "Create an IP network and its address pool.",
    "OP_NETWORK_CONNECT": "Connect a network to a node group with a NIC mode, link and VLAN.",
    "OP_NETWORK_DISCONNECT": "Disconnect a network from a node group.",
    "OP_NETWORK_REMOVE": "Remove a network connected to no node group.",
    "OP_NETWORK_RENAME": "Rename a network (Ganeti 3.1's operation).",
    "OP_NETWORK_SET_PARAMS":
        "Change a network's gateways, IPv6 subnet, MAC prefix and reserved addresses.",
    "OP_NODE_ADD": "Add a node to the cluster; the node daemon must be running on it.",
    "OP_NODE_EVACUATE":
        "Move instances off a node: secondaries to other nodes, primaries by failover.",
    "OP_NODE_QUERY_STORAGE":
        "Report the storage units of nodes (what gnt-node list-storage shows), as rows.",
    "OP_NODE_REMOVE": "Remove a node from the cluster.",
    "OP_NODE_SET_PARAMS": "Change a node's roles (candidate, drained, offline) and parameters.",
    "OP_TAGS_DEL": "Remove tags from an object.",
    "OP_TAGS_SET": "Add tags to an object.",
    "OP_TEST_ALLOCATOR":
        "Show an allocator request (direction in) or ask the allocator (direction out).",
    "OP_TEST_DELAY": "Sleep for a while, on the master and/or nodes; the unit of job benchmarks.",
}
