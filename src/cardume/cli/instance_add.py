"""gnt-instance add, remove and rename: an instance's creation, its end and its name.

The ``build_*`` functions turn Ganeti's command-line syntax into opcode dicts and refuse bad
input before anything is sent; they need no cluster, so tests call them directly.
"""

from __future__ import annotations

import argparse

from cardume import errors
from cardume.cli import common, options
from cardume.cli.instance_specs import (
    parse_beparams,
    parse_create_hvparams,
    parse_disks,
    parse_nics,
    split_node_option,
)
from cardume.cli.params import parse_kv, parse_names_list

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any

CREATE = "OP_INSTANCE_CREATE"
REMOVE = "OP_INSTANCE_REMOVE"


# --- parsers ----------------------------------------------------------------------------------


def _add_parser(p: argparse.ArgumentParser) -> None:
    options.DISK_TEMPLATE.add(p, CREATE)
    p.add_argument("--disk", dest="disks", action="append", default=[],
                   help="N:size=SIZE[,mode=ro|rw][,name=NAME][,vg=VG] (repeat per disk)")
    p.add_argument("-s", "--os-size", dest="sd_size", help="size of the single disk")
    p.add_argument("--net", dest="nics", action="append", default=[],
                   help="N[:mac=MAC|generate][,ip=IP][,mode=M][,link=L][,name=][,network=]")
    p.add_argument("--no-nics", action="store_true", help="create the instance without NICs")
    options.BACKEND_PARAMS.add(p)
    options.HYPERVISOR_PARAMS.add(p, help="HYPERVISOR[:k=v,...]")
    options.OS_PARAMS.add(p, help="k=v,...")
    options.add(p, options.OS_TYPE, options.FORCE_VARIANT)
    p.add_argument("-n", "--node", help="PNODE[:SNODE]")
    options.IALLOCATOR.add(p, help="allocator choosing the nodes")
    p.add_argument("-g", "--node-group", dest="group_name", help="node group to allocate in")
    options.add(p, options.NO_NAME_CHECK, options.NO_IP_CHECK)
    p.add_argument("--no-conflicts-check", action="store_true",
                   help="don't check for conflicting IP addresses")
    p.add_argument("--no-start", action="store_true", help="don't start the instance")
    p.add_argument("--no-install", action="store_true", help="don't run the OS create script")
    p.add_argument("--file-storage-dir", help="directory below the file storage directory")
    options.FILE_DRIVER.add(p, CREATE)
    options.NO_WAIT_FOR_SYNC.add(p)
    p.add_argument("--tags", help="comma-separated tags")
    p.add_argument("--ignore-ipolicy", action="store_true",
                   help="create it even if it breaks its group's instance policy")
    options.add_job_options(p)
    p.add_argument("instance", help="name of the new instance")
    p.set_defaults(func=add)


def _remove_parser(p: argparse.ArgumentParser) -> None:
    options.FORCE.add(p)
    p.add_argument("--ignore-failures", action="store_true",
                   help="remove it from the configuration even if cleaning up fails")
    options.SHUTDOWN_TIMEOUT.add(p, REMOVE)
    options.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=remove)


def _rename_parser(p: argparse.ArgumentParser) -> None:
    options.FORCE.add(p)
    options.NO_IP_CHECK.add(p, help="don't check that the new address is unused")
    options.NO_NAME_CHECK.add(p, help="don't check that the new name resolves "
                              "(needs --no-ip-check)")
    options.add_job_options(p)
    p.add_argument("instance", help="current name")
    p.add_argument("new_name", help="new name")
    p.set_defaults(func=rename)


def _batch_create_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("-I", "--iallocator",
                   help="allocator placing the instances (default: the cluster's)")
    options.add_job_options(p)
    p.add_argument("instances_file",
                   help="JSON list of instance creations (OP_INSTANCE_CREATE parameters)")
    p.set_defaults(func=batch_create)


PARSERS = {"add": _add_parser, "remove": _remove_parser, "rename": _rename_parser,
           "batch-create": _batch_create_parser}


# --- opcodes ----------------------------------------------------------------------------------


def build_create_op(args: argparse.Namespace) -> dict[str, Any]:
    """OP_INSTANCE_CREATE from the options of ``gnt-instance add``."""
    template = args.disk_template
    disks = parse_disks(args.disks, args.sd_size, template)
    nics = parse_nics(args.nics, args.no_nics)
    pnode, snode = split_node_option(args.node)
    if pnode is not None and args.iallocator:
        raise errors.WrongInput(
            f"give either -n {args.node} or -I {args.iallocator}, not both")
    _check_name_check(args)
    hypervisor, hvparams = parse_create_hvparams(args.hvparams)
    op: dict[str, Any] = {
        "OP_ID": CREATE,
        "instance_name": args.instance,
        "mode": "create",
        "disk_template": template,
        "disks": disks,
        "nics": nics,
        "beparams": parse_beparams(args.beparams),
        "hvparams": hvparams,
        "hypervisor": hypervisor,
        "osparams": dict(parse_kv(args.osparams or "")),
        "os_type": args.os,
        "pnode": pnode,
        "snode": snode,
        "iallocator": args.iallocator,
        "ignore_ipolicy": args.ignore_ipolicy,
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


def _check_name_check(args: argparse.Namespace) -> None:
    if args.no_name_check and not args.no_ip_check:
        raise errors.WrongInput(
            "--no-name-check needs --no-ip-check as well: without the name check there is "
            "no address to check")


def build_remove_op(args: argparse.Namespace) -> dict[str, Any]:
    return {"OP_ID": REMOVE, "instance_name": args.instance,
            "ignore_failures": args.ignore_failures,
            "shutdown_timeout": args.shutdown_timeout}


def build_rename_op(args: argparse.Namespace) -> dict[str, Any]:
    _check_name_check(args)
    return {"OP_ID": "OP_INSTANCE_RENAME", "instance_name": args.instance,
            "new_name": args.new_name, "ip_check": not args.no_ip_check,
            "name_check": not args.no_name_check}


# --- handlers ---------------------------------------------------------------------------------


def add(args: argparse.Namespace) -> int:
    common.run_job(args, [build_create_op(args)])
    return 0


def remove(args: argparse.Namespace) -> int:
    op = build_remove_op(args)
    if not args.force:
        common.require_confirmation(
            f"Removing {args.instance} deletes its disks on every node, and every byte "
            "of its data with them. Go on?",
            f"removing {args.instance} deletes all its data; pass -f to confirm")
    common.run_job(args, [op])
    return 0


def rename(args: argparse.Namespace) -> int:
    op = build_rename_op(args)
    if args.no_name_check and not args.force:
        common.require_confirmation(
            f"Without the name check nothing confirms that '{args.new_name}' is the "
            "instance's full DNS name. Use it anyway?",
            f"renaming without the name check needs -f to confirm that "
            f"'{args.new_name}' is right")
    result = common.run_job(args, [op])
    if result and result[0]:
        print(f"Instance '{args.instance}' renamed to '{result[0]}'")
    return 0


def build_batch_create_op(path: str, iallocator: str | None) -> dict[str, Any]:
    """OP_INSTANCE_MULTI_ALLOC from a batch-create file: a JSON list of instance creations
    (OP_INSTANCE_CREATE parameters; those naming no nodes are placed by the allocator)."""
    import json
    try:
        with open(path, encoding="utf-8") as handle:
            instances = json.load(handle)
    except (OSError, ValueError) as err:
        raise errors.WrongInput(f"can't read instances from {path}: {err}") from None
    if not isinstance(instances, list) or not instances or \
            not all(isinstance(i, dict) for i in instances):
        raise errors.WrongInput(f"{path} must hold a JSON list of instance creations "
                                "(objects of OP_INSTANCE_CREATE parameters)")
    for inst in instances:
        inst.setdefault("mode", "create")
    return {"OP_ID": "OP_INSTANCE_MULTI_ALLOC", "instances": instances,
            "iallocator": iallocator}


def batch_create(args: argparse.Namespace) -> int:
    """Place the instances at once, then wait for each creation job."""
    import sys
    result = common.run_job(args, [build_batch_create_op(args.instances_file,
                                                         args.iallocator)])
    if result is None:
        return 0
    outcome = result[0] if result and isinstance(result[0], dict) else {}
    failed = list(outcome.get("failed") or [])
    for name in failed:
        print(f"Instance {name}: no nodes found for it", file=sys.stderr)
    names = [f"instance {name}" for name in outcome.get("allocatable") or []]
    failed += common.wait_for_jobs(list(zip(names, outcome.get("jobs") or [], strict=False)))
    return 1 if failed else 0
