"""gnt-instance: create, list, inspect, start, stop, change, move and remove instances.

The ``build_*`` functions turn Ganeti's command-line syntax (``man gnt-instance``) into opcode
dicts and refuse bad input with :class:`cardume.errors.WrongInput` before anything is sent;
they need no cluster, so tests call them directly. The handlers submit what they build.
Only the standard library is imported: the CLI must start fast.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable, Sequence

from cardume import constants, errors
from cardume.cli import common
from cardume.cli import drbd as drbd_cli
from cardume.cli.listing import format_size, format_timestamp
from cardume.cli.params import (
    check_param_types,
    parse_ident_kv,
    parse_kv,
    parse_names_list,
    parse_size,
)

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any

DEFAULT_FIELDS = ["name", "hypervisor", "os", "pnode", "status", "oper_ram"]

DEFAULT_SHUTDOWN_TIMEOUT = 120
REBOOT_TYPES = ("soft", "hard", "full")
MIGRATION_MODES = constants.HT_MIGRATION_MODES
FILE_DRIVERS = ("loop", "blktap", "blktap2")
DISK_MODES = ("rw", "ro")
DISK_ACCESS_MODES = ("kernelspace", "userspace")

#: What ``--disk N:...`` accepts at creation, with the type of each value.
DISK_PARAMS = {"size": "size", "spindles": "int", "mode": "string", "name": "string",
               "vg": "string", "metavg": "string", "adopt": "string", "access": "string"}
#: What ``modify --disk N:modify,...`` may change.
DISK_MODIFIABLE = ("mode", "name")
NIC_PARAMS = ("mac", "ip", "mode", "link", "name", "network", "vlan")

#: Actions of ``modify --disk/--net``.
DDM_ADD = "add"
DDM_REMOVE = "remove"
DDM_MODIFY = "modify"
_DDM_ACTIONS = (DDM_ADD, DDM_REMOVE, DDM_MODIFY)

#: Multi-instance selection modes (Ganeti's ``_EXPAND_*``).
SEL_INSTANCES = "instances"
SEL_CLUSTER = "cluster"
SEL_NODES_BOTH = "nodes"
SEL_NODES_PRI = "nodes-pri"
SEL_NODES_SEC = "nodes-sec"
SEL_INSTANCE_TAGS = "instances-by-tags"
SEL_NODE_TAGS_BOTH = "nodes-by-tags"
SEL_NODE_TAGS_PRI = "nodes-pri-by-tags"
SEL_NODE_TAGS_SEC = "nodes-sec-by-tags"
_SELECTORS = (
    ("--instance", SEL_INSTANCES, "select instances by name (the default)"),
    ("--node", SEL_NODES_BOTH, "select the instances of these nodes (primary or secondary)"),
    ("--primary", SEL_NODES_PRI, "select the primary instances of these nodes"),
    ("--secondary", SEL_NODES_SEC, "select the secondary instances of these nodes"),
    ("--all", SEL_CLUSTER, "select every instance of the cluster"),
    ("--tags", SEL_INSTANCE_TAGS, "select instances carrying one of these tags"),
    ("--node-tags", SEL_NODE_TAGS_BOTH, "select the instances of nodes with these tags"),
    ("--pri-node-tags", SEL_NODE_TAGS_PRI,
     "select the primary instances of nodes with these tags"),
    ("--sec-node-tags", SEL_NODE_TAGS_SEC,
     "select the secondary instances of nodes with these tags"),
)
_NODE_MODES = {SEL_NODES_BOTH: (True, True), SEL_NODES_PRI: (True, False),
               SEL_NODES_SEC: (False, True), SEL_NODE_TAGS_BOTH: (True, True),
               SEL_NODE_TAGS_PRI: (True, False), SEL_NODE_TAGS_SEC: (False, True)}

#: (resource, fields, names) -> rows as dicts; :func:`common.query_objects` by default.
if TYPE_CHECKING:
    QueryFn = Callable[[str, list[str], list[str]], list[dict[str, Any]]]

_INT_RE = re.compile(r"-?[0-9]+", re.ASCII)


# --- option value types (they raise WrongInput while the arguments are parsed) -------------


def _choice(what: str, choices: Sequence[str]) -> Callable[[str], str]:
    def convert(value: str) -> str:
        if value not in choices:
            raise errors.WrongInput(
                f"invalid {what} {value!r}: expected one of {', '.join(choices)}")
        return value
    convert.__name__ = what
    return convert


def _seconds(what: str) -> Callable[[str], int]:
    def convert(value: str) -> int:
        if not value.strip().isdigit():
            raise errors.WrongInput(
                f"invalid {what} {value!r}: expected a whole number of seconds (0 or more)")
        return int(value)
    convert.__name__ = what
    return convert


_disk_template = _choice("disk template", constants.DISK_TEMPLATES)
_file_driver = _choice("file driver", FILE_DRIVERS)
_reboot_type = _choice("reboot type", REBOOT_TYPES)
_migration_mode = _choice("migration mode", MIGRATION_MODES)
_timeout = _seconds("timeout")
_shutdown_timeout = _seconds("shutdown timeout")


# --- parser ---------------------------------------------------------------------------------


def build(sub: Any) -> None:
    p = sub.add_parser("add", help="create an instance")
    _add_create_options(p)
    common.add_job_options(p)
    p.add_argument("instance", help="name of the new instance")
    p.set_defaults(func=add)

    p = sub.add_parser("list", help="list instances")
    common.add_list_options(p)
    p.set_defaults(func=lambda a: common.run_list(a, "instance", DEFAULT_FIELDS,
                                                  "GNT_INSTANCE_LIST"))
    p = sub.add_parser("list-fields", help="describe the fields of gnt-instance list")
    common.add_list_fields_options(p)
    p.set_defaults(func=lambda a: common.run_list_fields(a, "instance"))

    p = sub.add_parser("info", aliases=["show"], help="show instance details")
    p.add_argument("-s", "--static", action="store_true",
                   help="only the configuration, not the runtime state")
    p.add_argument("--all", dest="show_all", action="store_true", help="every instance")
    p.add_argument("--roman", action="store_true", help="accepted for compatibility")
    p.add_argument("instances", nargs="*", help="instances")
    p.set_defaults(func=info)

    p = sub.add_parser("watch-disks", help="watch the DRBD replication of instances' disks, "
                       "live, across nodes")
    drbd_cli.add_watch_options(p)
    p.set_defaults(func=drbd_cli.watch)

    p = sub.add_parser("startup", aliases=["start"], help="start instances")
    _add_selector_options(p)
    p.add_argument("-f", "--force", action="store_true", help="force the start")
    p.add_argument("--ignore-offline", action="store_true",
                   help="ignore offline nodes and do as much as possible")
    p.add_argument("--no-remember", action="store_true",
                   help="don't record the instance as up (the watcher won't restart it)")
    p.add_argument("--paused", action="store_true", help="start the instance paused")
    p.add_argument("-H", "--hypervisor-parameters", dest="hvparams",
                   help="temporary hypervisor parameters k=v,...")
    p.add_argument("-B", "--backend-parameters", dest="beparams",
                   help="temporary backend parameters k=v,...")
    common.add_job_options(p)
    p.add_argument("names", nargs="*", help="instances (or nodes/tags with a selector)")
    p.set_defaults(func=startup)

    p = sub.add_parser("shutdown", aliases=["stop"], help="stop instances")
    _add_selector_options(p)
    p.add_argument("-f", "--force", action="store_true", help="force the stop")
    p.add_argument("--timeout", type=_timeout, default=DEFAULT_SHUTDOWN_TIMEOUT,
                   help="seconds to wait for a clean shutdown (default 120)")
    p.add_argument("--ignore-offline", action="store_true",
                   help="ignore offline nodes and do as much as possible")
    p.add_argument("--no-remember", action="store_true",
                   help="don't record the instance as down")
    common.add_job_options(p)
    p.add_argument("names", nargs="*", help="instances (or nodes/tags with a selector)")
    p.set_defaults(func=shutdown)

    p = sub.add_parser("reboot", help="reboot instances")
    _add_selector_options(p)
    p.add_argument("-t", "--type", dest="reboot_type", type=_reboot_type, default="hard",
                   help="soft, hard (default) or full")
    p.add_argument("--ignore-secondaries", action="store_true",
                   help="ignore errors on secondary nodes (full reboot)")
    p.add_argument("--shutdown-timeout", type=_shutdown_timeout,
                   default=DEFAULT_SHUTDOWN_TIMEOUT,
                   help="seconds to wait for a clean shutdown (default 120)")
    common.add_job_options(p)
    p.add_argument("names", nargs="*", help="instances (or nodes/tags with a selector)")
    p.set_defaults(func=reboot)

    p = sub.add_parser("reinstall", help="reinstall the OS of stopped instances")
    _add_selector_options(p)
    p.add_argument("-f", "--force", action="store_true", help="don't ask for confirmation")
    p.add_argument("-o", "--os-type", dest="os", help="install this OS (OS+VARIANT)")
    p.add_argument("-O", "--os-parameters", dest="osparams", help="OS parameters k=v,...")
    p.add_argument("--force-variant", action="store_true", help="accept an unknown variant")
    common.add_job_options(p)
    p.add_argument("names", nargs="*", help="instances (or nodes/tags with a selector)")
    p.set_defaults(func=reinstall)

    p = sub.add_parser("remove", help="stop an instance and remove it with its disks")
    p.add_argument("-f", "--force", action="store_true", help="don't ask for confirmation")
    p.add_argument("--ignore-failures", action="store_true",
                   help="remove it from the configuration even if cleaning up fails")
    p.add_argument("--shutdown-timeout", type=_shutdown_timeout,
                   default=DEFAULT_SHUTDOWN_TIMEOUT,
                   help="seconds to wait for a clean shutdown (default 120)")
    common.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=remove)

    p = sub.add_parser("rename", help="rename an instance")
    p.add_argument("-f", "--force", action="store_true", help="don't ask for confirmation")
    p.add_argument("--no-ip-check", action="store_true",
                   help="don't check that the new address is unused")
    p.add_argument("--no-name-check", action="store_true",
                   help="don't check that the new name resolves (needs --no-ip-check)")
    common.add_job_options(p)
    p.add_argument("instance", help="current name")
    p.add_argument("new_name", help="new name")
    p.set_defaults(func=rename)

    p = sub.add_parser("modify", help="change an instance's parameters, disks and NICs")
    p.add_argument("-B", "--backend-parameters", dest="beparams", help="k=v,...")
    p.add_argument("-H", "--hypervisor-parameters", dest="hvparams", help="k=v,...")
    p.add_argument("-O", "--os-parameters", dest="osparams", help="k=v,...")
    p.add_argument("-o", "--os-type", dest="os", help="new OS (used at the next reinstall)")
    p.add_argument("--force-variant", action="store_true", help="accept an unknown variant")
    p.add_argument("--disk", dest="disks", action="append", default=[],
                   help="add[:size=S,...] | N:add,size=S,... | N:remove | N:modify,mode=,name=")
    p.add_argument("--net", dest="nics", action="append", default=[],
                   help="add[:mac=,ip=,mode=,link=,...] | N:add,... | N:remove | N:modify,...")
    p.add_argument("-t", "--disk-template", type=_disk_template,
                   help="convert the disks to this template (instance stopped)")
    p.add_argument("-n", "--node", help="secondary node for a conversion to drbd")
    p.add_argument("--no-wait-for-sync", dest="wait_for_sync", action="store_false",
                   help="don't wait for mirrored disks to sync")
    p.add_argument("-m", "--runtime-memory", dest="runtime_mem",
                   help="change the memory of the running instance")
    p.add_argument("--offline", action="store_true", help="mark the (stopped) instance offline")
    p.add_argument("--online", action="store_true", help="mark the instance online")
    p.add_argument("-f", "--force", action="store_true", help="force the change")
    common.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=modify)

    p = sub.add_parser("grow-disk", help="grow one disk of an instance")
    p.add_argument("--absolute", action="store_true", help="AMOUNT is the new size")
    p.add_argument("--no-wait-for-sync", dest="wait_for_sync", action="store_false",
                   help="don't wait for mirrored disks to sync")
    common.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.add_argument("disk", help="disk index")
    p.add_argument("amount", help="size to add (or the new size with --absolute)")
    p.set_defaults(func=grow_disk)

    p = sub.add_parser("activate-disks", help="make an instance's disks usable on its nodes")
    p.add_argument("--ignore-size", action="store_true", help="ignore the recorded sizes")
    p.add_argument("--wait-for-sync", action="store_true",
                   help="wait for mirrored disks to sync")
    common.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=activate_disks)

    p = sub.add_parser("deactivate-disks", help="release an instance's disks")
    p.add_argument("-f", "--force", action="store_true",
                   help="even if the instance is marked up")
    common.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=deactivate_disks)

    p = sub.add_parser("move", help="copy an instance's disks to another node and run it there")
    p.add_argument("-f", "--force", action="store_true", help="don't ask for confirmation")
    p.add_argument("-n", "--node", dest="target_node", required=True, help="target node")
    p.add_argument("--shutdown-timeout", type=_shutdown_timeout,
                   default=DEFAULT_SHUTDOWN_TIMEOUT,
                   help="seconds to wait for a clean shutdown (default 120)")
    p.add_argument("--ignore-consistency", action="store_true",
                   help="ignore disk consistency errors")
    common.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=move)

    p = sub.add_parser("failover", help="stop an instance and start it on another node")
    p.add_argument("-f", "--force", action="store_true", help="don't ask for confirmation")
    p.add_argument("--ignore-consistency", action="store_true",
                   help="fail over even if the disks are not consistent (dead primary)")
    p.add_argument("--shutdown-timeout", type=_shutdown_timeout,
                   default=DEFAULT_SHUTDOWN_TIMEOUT,
                   help="seconds to wait for a clean shutdown (default 120)")
    p.add_argument("-n", "--target-node", dest="target_node", help="target node")
    p.add_argument("-I", "--iallocator", help="allocator choosing the target node")
    p.add_argument("--cleanup", action="store_true", help="clean up after a failed failover")
    common.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=failover)

    p = sub.add_parser("migrate", help="move a running instance to another node")
    p.add_argument("-f", "--force", action="store_true", help="don't ask for confirmation")
    p.add_argument("--non-live", dest="non_live", action="store_true",
                   help="non-live migration (same as --migration-mode=non-live)")
    p.add_argument("--migration-mode", type=_migration_mode, help="live or non-live")
    p.add_argument("--cleanup", action="store_true",
                   help="recover from a failed migration")
    p.add_argument("-n", "--target-node", dest="target_node", help="target node")
    p.add_argument("-I", "--iallocator", help="allocator choosing the target node")
    p.add_argument("--allow-failover", action="store_true",
                   help="fail over if the instance cannot be migrated")
    p.add_argument("--mirror-disks", action="store_true",
                   help="file and plain instances: copy the disks to the target while the "
                        "instance runs (kvm)")
    common.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=migrate)

    p = sub.add_parser("replace-disks", help="replace the storage under a drbd instance's "
                       "mirror, or its secondary node")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("-p", "--on-primary", dest="replace_mode", action="store_const",
                       const="replace_on_primary", help="new volumes on the primary node")
    where.add_argument("-s", "--on-secondary", dest="replace_mode", action="store_const",
                       const="replace_on_secondary", help="new volumes on the secondary node")
    where.add_argument("-n", "--new-secondary", dest="remote_node",
                       help="move the secondary side to this node")
    where.add_argument("-a", "--auto", dest="replace_mode", action="store_const",
                       const="replace_auto", help="replace where the disks are faulty")
    where.add_argument("-I", "--iallocator", help="allocator choosing the new secondary")
    p.add_argument("--disks", help="disk indices, e.g. 0,2 (default: every disk)")
    p.add_argument("--early-release", action="store_true",
                   help="release the locks early (accepted for compatibility)")
    common.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=replace_disks)

    p = sub.add_parser("console", help="connect to the console of an instance")
    p.add_argument("--show-cmd", action="store_true",
                   help="print the command instead of running it")
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=console)

    for action in ("add-tags", "remove-tags", "list-tags"):
        p = sub.add_parser(action, help=f"{action.replace('-', ' ')} of an instance")
        p.add_argument("instance", help="name of the instance")
        if action != "list-tags":
            p.add_argument("--from", dest="tags_file",
                           help="read more tags from this file ('-' for stdin)")
            p.add_argument("tags", nargs="*", help="tags")
            common.add_job_options(p)
        p.set_defaults(func=tags, action=action)


def _add_create_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--disk-template", type=_disk_template, help="disk template")
    p.add_argument("--disk", dest="disks", action="append", default=[],
                   help="N:size=SIZE[,mode=ro|rw][,name=NAME][,vg=VG] (repeat per disk)")
    p.add_argument("-s", "--os-size", dest="sd_size", help="size of the single disk")
    p.add_argument("--net", dest="nics", action="append", default=[],
                   help="N[:mac=MAC|generate][,ip=IP][,mode=M][,link=L][,name=][,network=]")
    p.add_argument("--no-nics", action="store_true", help="create the instance without NICs")
    p.add_argument("-B", "--backend-parameters", dest="beparams", help="k=v,...")
    p.add_argument("-H", "--hypervisor-parameters", dest="hvparams",
                   help="HYPERVISOR[:k=v,...]")
    p.add_argument("-O", "--os-parameters", dest="osparams", help="k=v,...")
    p.add_argument("-o", "--os-type", dest="os", help="OS[+VARIANT]")
    p.add_argument("--force-variant", action="store_true", help="accept an unknown variant")
    p.add_argument("-n", "--node", help="PNODE[:SNODE]")
    p.add_argument("-I", "--iallocator", help="allocator choosing the nodes")
    p.add_argument("-g", "--node-group", dest="group_name", help="node group to allocate in")
    p.add_argument("--no-name-check", action="store_true",
                   help="don't check that the name resolves (needs --no-ip-check)")
    p.add_argument("--no-ip-check", action="store_true",
                   help="don't check that the resolved address is unused")
    p.add_argument("--no-conflicts-check", action="store_true",
                   help="don't check for conflicting IP addresses")
    p.add_argument("--no-start", action="store_true", help="don't start the instance")
    p.add_argument("--no-install", action="store_true", help="don't run the OS create script")
    p.add_argument("--file-storage-dir", help="directory below the file storage directory")
    p.add_argument("--file-driver", type=_file_driver, help="loop, blktap or blktap2")
    p.add_argument("--no-wait-for-sync", dest="wait_for_sync", action="store_false",
                   help="don't wait for mirrored disks to sync")
    p.add_argument("--tags", help="comma-separated tags")


def _add_selector_options(p: argparse.ArgumentParser) -> None:
    for flag, mode, text in _SELECTORS:
        p.add_argument(flag, dest="multi_mode", action="store_const", const=mode, help=text)
    p.add_argument("--force-multiple", action="store_true",
                   help="don't ask when more than one instance is affected")


# --- add ------------------------------------------------------------------------------------


def build_create_op(args: argparse.Namespace) -> dict[str, Any]:
    """OP_INSTANCE_CREATE from the options of ``gnt-instance add``."""
    template = args.disk_template
    disks = parse_disks(args.disks, args.sd_size, template)
    nics = parse_nics(args.nics, args.no_nics)
    pnode, snode = split_node_option(args.node)
    if pnode is not None and args.iallocator:
        raise errors.WrongInput(
            f"give either -n {args.node} or -I {args.iallocator}, not both")
    if args.no_name_check and not args.no_ip_check:
        raise errors.WrongInput(
            "--no-name-check needs --no-ip-check as well: without the name check there is "
            "no address to check")
    hypervisor, hvparams = parse_create_hvparams(args.hvparams)
    op: dict[str, Any] = {
        "OP_ID": "OP_INSTANCE_CREATE",
        "instance_name": args.instance,
        "mode": "create",
        "disk_template": template,
        "disks": disks,
        "nics": nics,
        "beparams": _beparams(args.beparams),
        "hvparams": hvparams,
        "hypervisor": hypervisor,
        "osparams": dict(parse_kv(args.osparams or "")),
        "os_type": args.os,
        "pnode": pnode,
        "snode": snode,
        "iallocator": args.iallocator,
        "name_check": not args.no_name_check,
        "ip_check": not args.no_ip_check,
        "start": not args.no_start,
        "no_install": args.no_install,
        "file_storage_dir": args.file_storage_dir,
        "file_driver": args.file_driver,
        "wait_for_sync": args.wait_for_sync,
        "tags": parse_names_list(args.tags or ""),
        "force_variant": args.force_variant,
        "group_name": args.group_name,
    }
    if args.no_conflicts_check:
        op["conflicts_check"] = False
    return op


def split_node_option(text: str | None) -> tuple[str | None, str | None]:
    """``-n PNODE[:SNODE]`` → (pnode, snode)."""
    if text is None:
        return None, None
    parts = text.split(":")
    if len(parts) > 2 or not all(parts):
        raise errors.WrongInput(
            f"invalid node specification {text!r}: expected PNODE or PNODE:SNODE")
    return parts[0], parts[1] if len(parts) == 2 else None


def parse_disks(specs: Sequence[str], sd_size: str | None,
                template: str | None) -> list[dict[str, Any]]:
    """The ``disks`` of a create: ``--disk N:k=v,...`` repeated, or ``-s SIZE``."""
    if template == constants.DT_DISKLESS:
        if specs or sd_size is not None:
            given = f"--disk {specs[0]}" if specs else f"-s {sd_size}"
            raise errors.WrongInput(
                f"{given}: the diskless template takes no disks")
        return []
    if specs and sd_size is not None:
        raise errors.WrongInput("give either --disk or -s, not both")
    if sd_size is not None:
        return [{"size": _disk_size(sd_size, "-s")}]
    if not specs:
        raise errors.WrongInput(
            "no disk given: use --disk 0:size=SIZE (or -s SIZE), or -t diskless")
    by_index: dict[int, dict[str, Any]] = {}
    for text in specs:
        index, values = _indexed_spec(text, "--disk", constants.MAX_DISKS, "disks",
                                      "N:size=SIZE[,mode=ro|rw][,name=NAME][,vg=VG]")
        if index in by_index:
            raise errors.WrongInput(f"--disk {text}: disk {index} is given twice")
        by_index[index] = _disk_params(values, text, f"disk {index}")
    _check_no_gaps(by_index, "disk", "--disk")
    return [by_index[i] for i in range(len(by_index))]


def parse_nics(specs: Sequence[str], no_nics: bool) -> list[dict[str, Any]]:
    """The ``nics`` of a create: ``--net N:k=v,...`` repeated; one default NIC without any.

    As in Ganeti, an index left out between given ones is a NIC with default parameters.
    """
    if no_nics:
        if specs:
            raise errors.WrongInput(f"--net {specs[0]} and --no-nics cannot be combined")
        return []
    if not specs:
        return [{}]
    by_index: dict[int, dict[str, Any]] = {}
    for text in specs:
        index, values = _indexed_spec(text, "--net", constants.MAX_NICS, "NICs",
                                      "N[:mac=MAC,ip=IP,mode=MODE,link=LINK,name=NAME]")
        if index in by_index:
            raise errors.WrongInput(f"--net {text}: NIC {index} is given twice")
        by_index[index] = _nic_params(values, f"--net {text}")
    return [by_index.get(i, {}) for i in range(max(by_index) + 1)]


def _indexed_spec(text: str, option: str, limit: int, what: str,
                  expected: str) -> tuple[int, dict[str, Any]]:
    ident, values = parse_ident_kv(text)
    if not isinstance(values, dict):
        raise errors.WrongInput(f"invalid {option} {text!r}: expected {expected}")
    if not ident.isdigit():
        raise errors.WrongInput(
            f"invalid {option} {text!r}: the index {ident!r} must be a number 0..{limit - 1}")
    index = int(ident)
    if index >= limit:
        raise errors.WrongInput(
            f"{option} {text}: index {index} is out of range: an instance has at most "
            f"{limit} {what} (0..{limit - 1})")
    return index, dict(values)


def _check_no_gaps(by_index: dict[int, Any], what: str, option: str) -> None:
    missing = [i for i in range(max(by_index) + 1) if i not in by_index]
    if missing:
        given = ", ".join(str(i) for i in sorted(by_index))
        raise errors.WrongInput(
            f"{option} indexes must be 0..N-1 without gaps: {what} {missing[0]} is missing "
            f"(given: {given})")


def _disk_size(value: str, where: str, what: str = "a disk") -> int:
    try:
        size = parse_size(value)
    except errors.WrongInput:
        raise errors.WrongInput(
            f"invalid size {value!r} in {where}: expected a number of MiB with an optional "
            "m/g/t suffix") from None
    if size <= 0:
        raise errors.WrongInput(f"invalid size {value!r} in {where}: {what} needs a size > 0")
    return size


def _string_values(values: dict[str, Any], where: str) -> None:
    for key, value in values.items():
        if not isinstance(value, str):
            raise errors.WrongInput(f"{where}: {key!r} needs a value ({key}=VALUE)")


def _disk_params(values: dict[str, Any], text: str, label: str,
                 allowed: Iterable[str] = DISK_PARAMS) -> dict[str, Any]:
    where = f"--disk {text}"
    known = list(allowed)
    for key in values:
        if key not in known:
            raise errors.WrongInput(
                f"{where}: unknown disk parameter {key!r} (known: {', '.join(known)})")
    _string_values(values, where)
    result = dict(values)
    if "size" in result and "adopt" in result:
        raise errors.WrongInput(f"{where}: give either size or adopt for {label}, not both")
    if "size" in result:
        result["size"] = _disk_size(result["size"], where)
    elif "adopt" in result:
        if "spindles" in result:
            raise errors.WrongInput(f"{where}: spindles cannot be given when adopting a disk")
        result["size"] = 0
    elif "size" in known:
        raise errors.WrongInput(f"{where}: {label} needs size=SIZE (or adopt=NAME)")
    if "mode" in result and result["mode"] not in DISK_MODES:
        raise errors.WrongInput(
            f"{where}: invalid disk mode {result['mode']!r}: expected rw or ro")
    if "access" in result and result["access"] not in DISK_ACCESS_MODES:
        raise errors.WrongInput(
            f"{where}: invalid disk access {result['access']!r}: expected "
            f"{' or '.join(DISK_ACCESS_MODES)}")
    if "spindles" in result:
        if not result["spindles"].isdigit():
            raise errors.WrongInput(
                f"{where}: invalid spindles {result['spindles']!r}: expected a number")
        result["spindles"] = int(result["spindles"])
    return result


def _nic_params(values: dict[str, Any], where: str) -> dict[str, Any]:
    for key in values:
        if key not in NIC_PARAMS:
            raise errors.WrongInput(
                f"{where}: unknown NIC parameter {key!r} (known: {', '.join(NIC_PARAMS)})")
    _string_values(values, where)
    mode = values.get("mode")
    if mode is not None and mode not in constants.NIC_MODES:
        raise errors.WrongInput(
            f"{where}: invalid NIC mode {mode!r}: expected one of "
            f"{', '.join(constants.NIC_MODES)}")
    return dict(values)


def _beparams(text: str | None, allow_default: bool = False) -> dict[str, Any]:
    """``-B k=v,...`` as given (the master converts; ``memory`` stays ``memory``), checked."""
    values: dict[str, Any] = dict(parse_kv(text or ""))
    if allow_default:
        values = _defaults_to_none(values)
    check_param_types(values, constants.BES_PARAMETER_TYPES, "backend parameter")
    return values


def _defaults_to_none(values: dict[str, Any]) -> dict[str, Any]:
    """``k=default`` (Ganeti's spelling) is ``-k``: reset to the inherited value."""
    return {k: None if isinstance(v, str) and v.lower() == "default" else v
            for k, v in values.items()}


def parse_create_hvparams(text: str | None) -> tuple[str | None, dict[str, Any]]:
    """``-H HYPERVISOR[:k=v,...]`` → (hypervisor, its parameters as given)."""
    if text is None:
        return None, {}
    hypervisor, values = parse_ident_kv(text)
    if hypervisor not in constants.HYPER_TYPES:
        raise errors.WrongInput(
            f"invalid -H {text!r}: expected HYPERVISOR[:key=value,...] with HYPERVISOR one "
            f"of {', '.join(constants.HYPER_TYPES)}")
    if not isinstance(values, dict):
        raise errors.WrongInput(
            f"invalid -H {text!r}: a hypervisor can't be removed or reset when creating")
    params = dict(values)
    check_param_types(params, constants.HVS_PARAMETER_TYPES.get(hypervisor, {}),
                      f"hypervisor {hypervisor} parameter")
    return hypervisor, params


def _flat_hvparams(text: str | None, allow_default: bool = False) -> dict[str, Any]:
    """``-H k=v,...`` of startup and modify: the instance's own hypervisor's parameters."""
    values: dict[str, Any] = dict(parse_kv(text or ""))
    if allow_default:
        values = _defaults_to_none(values)
    types: dict[str, str] = {}
    for table in constants.HVS_PARAMETER_TYPES.values():
        for key, kind in table.items():
            types.setdefault(key, kind)
    check_param_types(values, types, "hypervisor parameter")
    return values


# --- single-instance operations -------------------------------------------------------------


def build_remove_op(args: argparse.Namespace) -> dict[str, Any]:
    return {"OP_ID": "OP_INSTANCE_REMOVE", "instance_name": args.instance,
            "ignore_failures": args.ignore_failures,
            "shutdown_timeout": args.shutdown_timeout}


def build_rename_op(args: argparse.Namespace) -> dict[str, Any]:
    if args.no_name_check and not args.no_ip_check:
        raise errors.WrongInput(
            "--no-name-check needs --no-ip-check as well: without the name check there is "
            "no address to check")
    return {"OP_ID": "OP_INSTANCE_RENAME", "instance_name": args.instance,
            "new_name": args.new_name, "ip_check": not args.no_ip_check,
            "name_check": not args.no_name_check}


def build_modify_op(args: argparse.Namespace) -> dict[str, Any]:
    """OP_INSTANCE_SET_PARAMS from the options of ``gnt-instance modify``."""
    if args.offline and args.online:
        raise errors.WrongInput("give either --offline or --online, not both")
    if args.node and not args.disk_template:
        raise errors.WrongInput(
            f"-n {args.node} names the new secondary of a disk template conversion; "
            "give -t TEMPLATE with it")
    op: dict[str, Any] = {
        "OP_ID": "OP_INSTANCE_SET_PARAMS",
        "instance_name": args.instance,
        "beparams": _beparams(args.beparams, allow_default=True),
        "hvparams": _flat_hvparams(args.hvparams, allow_default=True),
        "osparams": dict(parse_kv(args.osparams)) if args.osparams is not None else None,
        "os_name": args.os,
        "disks": parse_modifications(args.disks, "disk"),
        "nics": parse_modifications(args.nics, "nic"),
        "offline": True if args.offline else False if args.online else None,
        "disk_template": args.disk_template,
        "remote_node": args.node,
        "wait_for_sync": args.wait_for_sync,
    }
    if args.force_variant:
        op["force_variant"] = True
    if args.force:
        op["force"] = True
    if args.runtime_mem is not None:
        op["runtime_mem"] = _disk_size(args.runtime_mem, "-m", "the memory")
    if not (op["beparams"] or op["hvparams"] or op["osparams"] or op["os_name"]
            or op["disks"] or op["nics"] or op["offline"] is not None or op["disk_template"]
            or "runtime_mem" in op):
        raise errors.WrongInput(
            "nothing to change: give at least one of -B, -H, -O, -o, --disk, --net, -t, "
            "-m, --offline, --online")
    return op


def parse_modifications(specs: Sequence[str], kind: str) -> list[list[Any]]:
    """``modify --disk/--net`` values → ``[[action, index_or_-1, params], ...]``.

    ``add[:k=v]`` appends (index -1), ``remove`` drops the last one; ``N:add,k=v`` inserts at
    N, ``ID:remove`` removes, ``ID:modify,k=v`` or ``ID:k=v`` changes (ID: an index, or a name
    or UUID, passed as a string).
    """
    option = "--disk" if kind == "disk" else "--net"
    changes: list[list[Any]] = []
    for text in specs:
        where = f"{option} {text}"
        ident, values = parse_ident_kv(text)
        if not isinstance(values, dict):
            raise errors.WrongInput(
                f"invalid {where}: expected add[:k=v,...], N:add,k=v,..., ID:remove or "
                "ID:modify,k=v,...")
        params: dict[str, Any] = dict(values)
        identifier: int | str
        if ident in (DDM_ADD, DDM_REMOVE):
            action, identifier = ident, -1
            if any(a in params for a in _DDM_ACTIONS):
                raise errors.WrongInput(f"invalid {where}: more than one action given")
        elif ident in ("attach", "detach", DDM_MODIFY):
            raise errors.WrongInput(
                f"invalid {where}: expected add, remove, N:add, ID:remove or ID:modify")
        else:
            identifier = int(ident) if _INT_RE.fullmatch(ident) else ident
            actions = [a for a in _DDM_ACTIONS if a in params]
            if len(actions) > 1:
                raise errors.WrongInput(
                    f"invalid {where}: give only one of {', '.join(actions)}")
            action = actions[0] if actions else DDM_MODIFY
            if actions and params.pop(action) is not True:
                raise errors.WrongInput(
                    f"invalid {where}: {action!r} is an action and takes no value")
            if action == DDM_ADD and not isinstance(identifier, int):
                raise errors.WrongInput(
                    f"invalid {where}: adding needs a numeric index, not {ident!r}")
            if isinstance(identifier, int) and identifier < -1:
                raise errors.WrongInput(
                    f"invalid {where}: index {identifier} is out of range (-1 means the last)")
        if action == DDM_REMOVE:
            if params:
                raise errors.WrongInput(f"invalid {where}: removal takes no parameters")
        elif kind == "disk":
            label = "the new disk" if identifier == -1 else f"disk {identifier}"
            if action == DDM_ADD:
                allowed = [k for k in DISK_PARAMS if k != "adopt"]
                params = _disk_params(params, text, label, allowed)
            else:
                if not params:
                    raise errors.WrongInput(f"invalid {where}: nothing to modify")
                params = _disk_params(params, text, label, DISK_MODIFIABLE)
        else:
            if action == DDM_MODIFY and not params:
                raise errors.WrongInput(f"invalid {where}: nothing to modify")
            params = _nic_params(params, where)
        changes.append([action, identifier, params])
    return changes


def build_grow_disk_op(args: argparse.Namespace) -> dict[str, Any]:
    if not args.disk.isdigit():
        raise errors.WrongInput(
            f"invalid disk index {args.disk!r}: expected a number (0 is the first disk)")
    try:
        amount = parse_size(args.amount)
    except errors.WrongInput:
        raise errors.WrongInput(
            f"invalid amount {args.amount!r}: expected a size in MiB with an optional "
            "m/g/t suffix") from None
    op: dict[str, Any] = {"OP_ID": "OP_INSTANCE_GROW_DISK", "instance_name": args.instance,
                          "disk": int(args.disk), "amount": amount,
                          "absolute": args.absolute}
    if not args.wait_for_sync:
        op["wait_for_sync"] = False
    return op


def build_activate_disks_op(args: argparse.Namespace) -> dict[str, Any]:
    return {"OP_ID": "OP_INSTANCE_ACTIVATE_DISKS", "instance_name": args.instance,
            "ignore_size": args.ignore_size, "wait_for_sync": args.wait_for_sync}


def build_deactivate_disks_op(args: argparse.Namespace) -> dict[str, Any]:
    return {"OP_ID": "OP_INSTANCE_DEACTIVATE_DISKS", "instance_name": args.instance,
            "force": args.force}


def build_move_op(args: argparse.Namespace) -> dict[str, Any]:
    op: dict[str, Any] = {"OP_ID": "OP_INSTANCE_MOVE", "instance_name": args.instance,
                          "target_node": args.target_node,
                          "shutdown_timeout": args.shutdown_timeout}
    if args.ignore_consistency:
        op["ignore_consistency"] = True
    return op


def build_failover_op(args: argparse.Namespace) -> dict[str, Any]:
    _target_or_allocator(args)
    op: dict[str, Any] = {"OP_ID": "OP_INSTANCE_FAILOVER", "instance_name": args.instance,
                          "ignore_consistency": args.ignore_consistency,
                          "shutdown_timeout": args.shutdown_timeout,
                          "target_node": args.target_node, "cleanup": args.cleanup}
    if args.iallocator:
        op["iallocator"] = args.iallocator
    return op


def build_migrate_op(args: argparse.Namespace) -> dict[str, Any]:
    _target_or_allocator(args)
    if args.non_live and args.migration_mode is not None:
        raise errors.WrongInput(
            "give either --non-live or --migration-mode, not both")
    mode = "non-live" if args.non_live else args.migration_mode
    op: dict[str, Any] = {"OP_ID": "OP_INSTANCE_MIGRATE", "instance_name": args.instance,
                          "mode": mode, "target_node": args.target_node,
                          "cleanup": args.cleanup, "allow_failover": args.allow_failover}
    if args.mirror_disks:
        op["mirror_disks"] = True
    if args.iallocator:
        op["iallocator"] = args.iallocator
    return op


def _target_or_allocator(args: argparse.Namespace) -> None:
    if args.target_node and args.iallocator:
        raise errors.WrongInput(
            f"give either a target node (-n {args.target_node}) or an allocator "
            f"(-I {args.iallocator}), not both")


def build_tags_op(args: argparse.Namespace) -> dict[str, Any]:
    names = list(args.tags)
    if args.tags_file:
        names.extend(_read_tags(args.tags_file))
    if not names:
        raise errors.WrongInput(f"{args.action}: no tags given")
    op_id = "OP_TAGS_SET" if args.action == "add-tags" else "OP_TAGS_DEL"
    return {"OP_ID": op_id, "kind": "instance", "name": args.instance, "tags": names}


def _read_tags(path: str) -> list[str]:
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as err:
        raise errors.WrongInput(f"cannot read tags from {path}: {err.strerror}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


# --- multi-instance operations --------------------------------------------------------------


def build_startup_op(name: str, args: argparse.Namespace) -> dict[str, Any]:
    op: dict[str, Any] = {"OP_ID": "OP_INSTANCE_STARTUP", "instance_name": name,
                          "force": args.force, "no_remember": args.no_remember,
                          "hvparams": _flat_hvparams(args.hvparams),
                          "beparams": _beparams(args.beparams),
                          "ignore_offline_nodes": args.ignore_offline}
    if args.paused:
        op["startup_paused"] = True
    return op


def build_shutdown_op(name: str, args: argparse.Namespace) -> dict[str, Any]:
    return {"OP_ID": "OP_INSTANCE_SHUTDOWN", "instance_name": name, "timeout": args.timeout,
            "no_remember": args.no_remember, "force": args.force,
            "ignore_offline_nodes": args.ignore_offline}


def build_reboot_op(name: str, args: argparse.Namespace) -> dict[str, Any]:
    return {"OP_ID": "OP_INSTANCE_REBOOT", "instance_name": name,
            "reboot_type": args.reboot_type, "shutdown_timeout": args.shutdown_timeout,
            "ignore_secondaries": args.ignore_secondaries}


def build_reinstall_op(name: str, args: argparse.Namespace) -> dict[str, Any]:
    return {"OP_ID": "OP_INSTANCE_REINSTALL", "instance_name": name, "os_type": args.os,
            "osparams": dict(parse_kv(args.osparams)) if args.osparams is not None else None,
            "force_variant": args.force_variant}


def resolve_instances(mode: str | None, names: Sequence[str],
                      query: QueryFn) -> list[str]:
    """The instances a selector picks (Ganeti's ``_ExpandMultiNames``), in query order."""
    mode = mode or SEL_INSTANCES
    names = list(names)
    if mode == SEL_CLUSTER:
        if names:
            raise errors.WrongInput(
                f"--all takes no names, but {', '.join(names)} given")
        return [row["name"] for row in query("instance", ["name"], [])]
    if mode == SEL_INSTANCES:
        if not names:
            raise errors.WrongInput("no instance names given")
        return _unique(row["name"] for row in query("instance", ["name"], names))
    if mode == SEL_INSTANCE_TAGS:
        if not names:
            raise errors.WrongInput("no instance tags given")
        wanted = set(names)
        return [row["name"] for row in query("instance", ["name", "tags"], [])
                if wanted.intersection(row["tags"])]
    if mode not in _NODE_MODES:
        raise errors.InternalError(f"unknown selection mode {mode!r}")
    if mode in (SEL_NODE_TAGS_BOTH, SEL_NODE_TAGS_PRI, SEL_NODE_TAGS_SEC):
        if not names:
            raise errors.WrongInput("no node tags given")
        wanted = set(names)
        nodes = {row["name"] for row in query("node", ["name", "tags"], [])
                 if wanted.intersection(row["tags"])}
    else:
        if not names:
            raise errors.WrongInput("no node names given")
        nodes = {row["name"] for row in query("node", ["name"], names)}
    primary, secondary = _NODE_MODES[mode]
    selected = []
    for row in query("instance", ["name", "pnode", "snodes"], []):
        if (primary and row["pnode"] in nodes) or (
                secondary and nodes.intersection(row["snodes"] or [])):
            selected.append(row["name"])
    return selected


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def select_instances(args: argparse.Namespace, operation: str,
                     query: QueryFn | None = None) -> tuple[list[str], bool]:
    """Resolve the selector and check --force-multiple; (names, whether it is a multi-op).

    ``query`` defaults to a LUXI query; tests inject a stub.
    """
    mode = args.multi_mode or SEL_INSTANCES
    names = resolve_instances(mode, args.names, query or common.query_objects)
    if not names:
        if mode == SEL_CLUSTER:
            return [], False
        raise errors.WrongInput("the selection does not match any instance")
    multi = mode != SEL_INSTANCES or len(names) > 1
    if multi and not args.force_multiple:
        question = (f"The {operation} will operate on {len(names)} instances.\n"
                    "Do you want to continue?\nAffected instances:\n"
                    + "\n".join(f"  {name}" for name in names))
        if not common.confirm(question):
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            count = f"{len(names)} instance" + ("s" if len(names) != 1 else "")
            raise errors.WrongInput(
                f"{operation} would act on {count} ({shown}); pass --force-multiple to "
                "confirm")
    return names, multi


def run_many(args: argparse.Namespace, names: Sequence[str],
             build_op: Callable[[str, argparse.Namespace], dict[str, Any]],
             verbose: bool) -> int:
    """One job per instance, submitted at once; wait for each and report its outcome."""
    from cardume.luxi import Client
    extra = common.op_common(args)
    jobs = [[{**extra, **build_op(name, args)}] for name in names]
    failed = False
    with Client() as client:
        submitted = client.call("SubmitManyJobs", jobs)
        if getattr(args, "print_jobid", False):
            for ok, data in submitted:
                if ok:
                    print(data, flush=True)
        if getattr(args, "submit", False):
            for (ok, data), name in zip(submitted, names, strict=True):
                if ok:
                    print(f"{data}: {name}")
                else:
                    print(f"Failure for {name}: {data}", file=sys.stderr)
                    failed = True
            return 1 if failed else 0
        ids = [str(data) for ok, data in submitted if ok]
        if verbose and ids:
            print(f"Submitted jobs {', '.join(ids)}", flush=True)
        for (ok, data), name in zip(submitted, names, strict=True):
            if not ok:
                print(f"Failed to submit job for {name}: {data}", file=sys.stderr)
                failed = True
        for (ok, data), name in zip(submitted, names, strict=True):
            if not ok:
                continue
            print(f"Waiting for job {data} for {name} ...", flush=True)
            try:
                client.wait_job(int(data))
            except errors.CardumeError as err:
                print(f"Job {data} for {name} has failed: {err}", file=sys.stderr, flush=True)
                failed = True
    return 1 if failed else 0


def _many(operation: str, build_op: Callable[[str, argparse.Namespace], dict[str, Any]],
          ) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        build_op("", args)  # refuse bad options before querying anything
        names, multi = select_instances(args, operation)
        if not names:
            print(f"Cluster is empty, no instances to {operation}")
            return 0
        return run_many(args, names, build_op, multi)
    return handler


startup = _many("startup", build_startup_op)
shutdown = _many("shutdown", build_shutdown_op)
reboot = _many("reboot", build_reboot_op)


def reinstall(args: argparse.Namespace) -> int:
    build_reinstall_op("", args)
    names, multi = select_instances(args, "reinstall")
    if not names:
        print("Cluster is empty, no instances to reinstall")
        return 0
    if not multi and not (args.force or args.force_multiple):
        what = f"change the OS to '{args.os}'" if args.os else "keep the same OS"
        _confirm(f"Reinstalling '{names[0]}' (and {what}) erases everything on its disks. "
                 "Go on?", f"reinstalling {names[0]} removes all its data; "
                 "pass -f to confirm")
    return run_many(args, names, build_reinstall_op, multi)


def _confirm(question: str, refusal: str) -> None:
    """Ask on a terminal; without one (or on 'no'), refuse with a one-line error."""
    if not common.confirm(question):
        raise errors.WrongInput(refusal)


# --- handlers -------------------------------------------------------------------------------


def add(args: argparse.Namespace) -> int:
    common.run_job(args, [build_create_op(args)])
    return 0


def remove(args: argparse.Namespace) -> int:
    op = build_remove_op(args)
    if not args.force:
        _confirm(f"Removing {args.instance} deletes its disks on every node, and every byte "
                 "of its data with them. Go on?",
                 f"removing {args.instance} deletes all its data; pass -f to confirm")
    common.run_job(args, [op])
    return 0


def rename(args: argparse.Namespace) -> int:
    op = build_rename_op(args)
    if args.no_name_check and not args.force:
        _confirm(f"Without the name check nothing confirms that '{args.new_name}' is the "
                 "instance's full DNS name. Use it anyway?",
                 f"renaming without the name check needs -f to confirm that "
                 f"'{args.new_name}' is right")
    result = common.run_job(args, [op])
    if result and result[0]:
        print(f"Instance '{args.instance}' renamed to '{result[0]}'")
    return 0


def modify(args: argparse.Namespace) -> int:
    op = build_modify_op(args)
    result = common.run_job(args, [op])
    if result and result[0]:
        print(f"Modified instance {args.instance}")
        for param, value in result[0]:
            print(f" - {param:<5} -> {value}")
        print("Most changes apply when the cluster next starts the instance "
              "(gnt-instance reboot); a reboot from inside the guest does not apply them.")
        if op["hvparams"]:
            print("Until then the running instance keeps its old hypervisor parameters, and "
                  "a live migration uses those.")
    return 0


def build_replace_disks_op(args: argparse.Namespace) -> dict[str, Any]:
    mode = args.replace_mode
    if args.remote_node or args.iallocator:
        mode = "replace_new_secondary"
    op: dict[str, Any] = {"OP_ID": "OP_INSTANCE_REPLACE_DISKS", "instance_name": args.instance,
                          "mode": mode, "early_release": args.early_release}
    if args.remote_node:
        op["remote_node"] = args.remote_node
    if args.iallocator:
        op["iallocator"] = args.iallocator
    if args.disks:
        indices = []
        for text in args.disks.split(","):
            if not text.strip().isdigit():
                raise errors.WrongInput(f"invalid disk index '{text}' in --disks "
                                        f"'{args.disks}': expected numbers like 0,1")
            indices.append(int(text))
        op["disks"] = indices
    return op


def replace_disks(args: argparse.Namespace) -> int:
    common.run_job(args, [build_replace_disks_op(args)])
    return 0


def grow_disk(args: argparse.Namespace) -> int:
    common.run_job(args, [build_grow_disk_op(args)])
    return 0


def activate_disks(args: argparse.Namespace) -> int:
    result = common.run_job(args, [build_activate_disks_op(args)])
    if result and result[0]:
        for host, iv_name, device in result[0]:
            print(f"{host}:{iv_name}:{device}")
    return 0


def deactivate_disks(args: argparse.Namespace) -> int:
    common.run_job(args, [build_deactivate_disks_op(args)])
    return 0


def move(args: argparse.Namespace) -> int:
    op = build_move_op(args)
    if not args.force:
        _confirm(f"Moving {args.instance} stops it while its disks are copied. Go on?",
                 f"moving {args.instance} shuts it down; pass -f to confirm")
    common.run_job(args, [op])
    return 0


def failover(args: argparse.Namespace) -> int:
    op = build_failover_op(args)
    if not args.force:
        _confirm(f"Failing over {args.instance} stops it and starts it on another node. "
                 "Go on?",
                 f"failing over {args.instance} shuts it down; pass -f to confirm")
        if args.ignore_consistency:
            _confirm(f"--ignore-consistency is safe only when {args.instance}'s node is dead "
                     "and marked offline. Is it?",
                     "--ignore-consistency needs the source node marked offline; pass -f "
                     "to confirm")
    common.run_job(args, [op])
    return 0


def migrate(args: argparse.Namespace) -> int:
    op = build_migrate_op(args)
    if not args.force:
        if args.cleanup:
            text = f"Cleaning up after an interrupted migration of {args.instance}"
        else:
            text = f"Migrating {args.instance} while it runs"
        _confirm(text + " can disturb it if the hypervisor fails half-way. Go on?",
                 f"migrating {args.instance} needs -f to confirm")
    common.run_job(args, [op])
    return 0


def tags(args: argparse.Namespace) -> int:
    if args.action == "list-tags":
        rows = common.query_objects("instance", ["tags"], [args.instance])
        for tag in sorted(rows[0]["tags"] if rows else []):
            print(tag)
        return 0
    common.run_job(args, [build_tags_op(args)])
    return 0


def console(args: argparse.Namespace) -> int:
    import os
    import shlex

    from cardume.luxi import Client
    with Client() as client:
        data = client.call("InstanceConsole", args.instance)
    kind = data.get("kind")
    if kind == "message":
        print(data.get("message", ""))
        return 0
    if kind != "command":
        raise errors.InternalError(f"unknown console kind {kind!r} for {args.instance}")
    command = [str(part) for part in data.get("command") or []]
    if not command:
        raise errors.InternalError(f"empty console command for {args.instance}")
    if args.show_cmd:
        print(shlex.join(command))
        return 0
    if data.get("vnc"):
        print(f"VNC of {data.get('instance', args.instance)}: {data['vnc']}", file=sys.stderr)
    sys.stdout.flush()
    try:
        os.execvp(command[0], command)
    except OSError as err:
        raise errors.EnvironmentProblem(
            f"cannot run the console command {command[0]}: {err.strerror}") from None
    return 1  # not reached: execvp replaces this process


# --- info -----------------------------------------------------------------------------------

INFO_FIELDS = ["name", "uuid", "serial_no", "ctime", "mtime", "admin_state", "pnode",
               "snodes", "os", "osparams", "custom_osparams", "network_port", "hypervisor",
               "hvparams", "custom_hvparams", "beparams", "custom_beparams", "nics",
               "disk_template", "disks"]
NODE_INFO_FIELDS = ["name", "uuid", "group", "group.uuid"]


def info(args: argparse.Namespace) -> int:
    if not args.instances and not args.show_all:
        raise errors.WrongInput(
            "no instance selected: name the instances, or pass --all for every instance")
    if args.instances and args.show_all:
        raise errors.WrongInput("--all cannot be combined with instance names")
    from cardume.luxi import Client
    fields = INFO_FIELDS if args.static else [*INFO_FIELDS, "oper_state", "console"]
    with Client() as client:
        reply = client.call("Query", "instance", fields, list(args.instances))
        rows = [dict(zip(fields, row, strict=True)) for row in reply["data"]]
        if not rows:
            print("No instances.")
            return 1
        node_reply = client.call("Query", "node", NODE_INFO_FIELDS, [])
        drbd = {} if args.static else _drbd_state(client, rows)
    nodes = [dict(zip(NODE_INFO_FIELDS, row, strict=True)) for row in node_reply["data"]]
    print(format_info([format_instance_info(row, nodes, args.static, drbd.get(row["name"]))
                       for row in rows]))
    return 0


def _drbd_state(client: Any, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """QueryDrbd for the instances that have drbd disks (one RPC per node, on the master)."""
    names = [row["name"] for row in rows
             if any(d.get("dev_type") == constants.DT_DRBD8 for d in row.get("disks") or [])]
    if not names:
        return {}
    reply = client.call("QueryDrbd", names, None)
    return {inst["name"]: inst for inst in reply.get("instances") or []}


def format_instance_info(inst: dict[str, Any], nodes: Sequence[dict[str, Any]],
                         static: bool, drbd: dict[str, Any] | None = None,
                         ) -> list[tuple[str, Any]]:
    """Ganeti's ``_FormatInstanceInfo`` from one row of an instance query; ``drbd`` is the
    instance's entry in a QueryDrbd answer (the live state of its drbd disks)."""
    by_name = {n["name"]: n for n in nodes}
    node_names = {n["uuid"]: n["name"] for n in nodes}
    state = f"configured to be {inst['admin_state']}"
    run_state = None if static else _run_state(inst)
    if run_state:
        state += f", actual state is {run_state}"
    pnode = inst["pnode"]
    pinfo = by_name.get(pnode, {})
    secondaries = []
    for snode in inst.get("snodes") or []:
        sinfo = by_name.get(snode, {})
        secondaries.append(f"{snode} (group {sinfo.get('group')}, group UUID "
                           f"{sinfo.get('group.uuid')})")
    beparams = dict(inst["beparams"] or {})
    if "maxmem" in beparams:
        beparams["memory"] = beparams["maxmem"]  # the old name, as Ganeti shows it
    hvparams = {k: v for k, v in (inst["hvparams"] or {}).items() if k not in constants.HVC_GLOBALS}
    drbd_disks = {d["index"]: d for d in (drbd or {}).get("disks") or []}
    return [
        ("Instance name", inst["name"]),
        ("UUID", inst["uuid"]),
        ("Serial number", str(inst["serial_no"])),
        ("Creation time", _time(inst["ctime"])),
        ("Modification time", _time(inst["mtime"])),
        ("State", state),
        ("Nodes", [
            [("primary", pnode),
             ("group", f"{pinfo.get('group')} (UUID {pinfo.get('group.uuid')})")],
            [("secondaries", ", ".join(secondaries))],
        ]),
        ("Operating system", inst["os"]),
        ("Operating system parameters",
         format_params(inst["custom_osparams"] or {}, inst["osparams"] or {})),
        ("Allocated network port", str(inst.get("network_port"))),
        *([("Console", f"vnc to {inst['console']}")]
          if isinstance(inst.get("console"), str) and inst["console"] else []),
        ("Hypervisor", inst["hypervisor"]),
        ("Hypervisor parameters", format_params(inst["custom_hvparams"] or {}, hvparams)),
        ("Back-end parameters", format_params(inst["custom_beparams"] or {}, beparams)),
        ("NICs", [_nic_info(index, nic) for index, nic in enumerate(inst["nics"] or [])]),
        ("Disk template", inst["disk_template"]),
        ("Disks", [_disk_info(index, disk, node_names, static, drbd_disks.get(index))
                   for index, disk in enumerate(inst["disks"] or [])]),
    ]


def _run_state(inst: dict[str, Any]) -> str | None:
    oper = inst.get("oper_state")
    if not isinstance(oper, bool):  # no answer from the primary node: static data only
        return None
    if oper:
        return "up"
    return "offline" if inst["admin_state"] == "offline" else "down"


def _time(value: Any) -> str:
    return format_timestamp(value) if value is not None else "N/A"


def format_params(custom: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    """Ganeti's ``FormatParamsDictInfo``: own values as they are, inherited ones as default (v)."""
    result: dict[str, Any] = {}
    for key, value in actual.items():
        if isinstance(value, dict) and value:
            result[key] = format_params(custom.get(key) or {}, value)
        elif key in custom:
            result[key] = str(custom[key])
        else:
            result[key] = f"default ({value})"
    return result


def _nic_info(index: int, nic: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        (f"nic/{index}", ""),
        ("MAC", str(nic.get("mac"))),
        ("IP", str(nic.get("ip"))),
        ("mode", str(nic.get("mode"))),
        ("link", str(nic.get("link"))),
        ("vlan", str(nic.get("vlan", ""))),
        ("network", str(nic.get("network"))),
        ("UUID", str(nic.get("uuid"))),
        ("name", str(nic.get("name"))),
    ]


def _disk_info(index: int, disk: dict[str, Any], node_names: dict[str, str],
               static: bool, drbd: dict[str, Any] | None = None) -> list[tuple[str, Any]]:
    size = disk.get("size")
    nice_size = format_size(size) if isinstance(size, int) else str(size)
    header = disk.get("iv_name") or f"disk {index}"
    data: list[tuple[str, Any]] = [(header, f"{disk.get('dev_type')}, size {nice_size}")]
    if disk.get("spindles") is not None:
        data.append(("spindles", str(disk["spindles"])))
    data.append(("access mode", str(disk.get("mode"))))
    logical_id = disk.get("logical_id")
    if logical_id is not None:
        dev_type = disk.get("dev_type")
        if dev_type == constants.DT_DRBD8 and isinstance(logical_id, list) \
                and len(logical_id) >= 5:
            node_a = node_names.get(logical_id[0], logical_id[0])
            node_b = node_names.get(logical_id[1], logical_id[1])
            data.extend([("nodeA", f"{node_a}, minor={logical_id[3]}"),
                         ("nodeB", f"{node_b}, minor={logical_id[4]}"),
                         ("port", str(logical_id[2]))])
            if not static and drbd is not None:
                data.extend(drbd_cli.info_lines(drbd))
        elif dev_type == constants.DT_PLAIN and isinstance(logical_id, list) \
                and len(logical_id) == 2:
            data.append(("logical_id", f"{logical_id[0]}/{logical_id[1]}"))
        else:
            data.append(("logical_id", str(logical_id)))
    if not static and disk.get("path"):
        data.append(("on primary", f"{disk['path']} (N/A:N/A)"))
    data.append(("name", str(disk.get("name"))))
    data.append(("UUID", str(disk.get("uuid"))))
    return data


def format_info(data: Any) -> str:
    """Ganeti's ``PrintGenericInfo``: YAML-like, dict keys sorted, lists of pairs in order."""
    out: list[str] = []
    _serialize(out, data, 0)
    return "".join(out).rstrip("\n")


def _serialize(out: list[str], data: Any, level: int, afterkey: bool = False) -> None:
    indent = "  "
    if isinstance(data, dict):
        if not data:
            out.append("\n")
            return
        if afterkey:
            out.append("\n")
        for position, key in enumerate(sorted(data)):
            if afterkey or position:
                out.append(indent * level)
            out.append(f"{key}: ")
            _serialize(out, data[key], level + 1, afterkey=True)
    elif isinstance(data, list) and data and isinstance(data[0], tuple):
        if afterkey:
            out.append("\n")
        for position, (key, value) in enumerate(data):
            if afterkey or position:
                out.append(indent * level)
            out.append(f"{key}: ")
            _serialize(out, value, level + 1, afterkey=True)
    elif isinstance(data, list):
        if not data:
            out.append("\n")
            return
        if afterkey:
            out.append("\n")
        for position, item in enumerate(data):
            if afterkey or position:
                out.append(indent * level)
            out.append("- ")
            _serialize(out, item, level + 1)
    else:
        out.append(f"{data}\n")
