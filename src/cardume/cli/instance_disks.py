"""gnt-instance grow-disk, activate-disks, deactivate-disks and replace-disks: an
instance's disks on its nodes."""

from __future__ import annotations

import argparse

from cardume import errors
from cardume.cli import common, options
from cardume.cli.params import parse_size

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any

REPLACE_DISKS = "OP_INSTANCE_REPLACE_DISKS"


# --- parsers ----------------------------------------------------------------------------------


def _grow_disk_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--absolute", action="store_true", help="AMOUNT is the new size")
    options.NO_WAIT_FOR_SYNC.add(p)
    options.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.add_argument("disk", help="disk index")
    p.add_argument("amount", help="size to add (or the new size with --absolute)")
    p.set_defaults(func=grow_disk)


def _activate_disks_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ignore-size", action="store_true", help="ignore the recorded sizes")
    p.add_argument("--wait-for-sync", action="store_true",
                   help="wait for mirrored disks to sync")
    options.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=activate_disks)


def _deactivate_disks_parser(p: argparse.ArgumentParser) -> None:
    options.FORCE.add(p, help="even if the instance is marked up")
    options.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=deactivate_disks)


#: The mode -n/--new-secondary and -I ask for.
NEW_SECONDARY = "replace_new_secondary"


def _replace_disks_parser(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("-p", "--on-primary", dest="replace_mode", action="store_const",
                       const="replace_on_primary", help="new volumes on the primary node")
    where.add_argument("-s", "--on-secondary", dest="replace_mode", action="store_const",
                       const="replace_on_secondary", help="new volumes on the secondary node")
    where.add_argument("-n", "--new-secondary", dest="remote_node",
                       help="move the secondary side to this node")
    where.add_argument("-a", "--auto", dest="replace_mode", action="store_const",
                       const="replace_auto", help="replace where the disks are faulty")
    options.IALLOCATOR.add(where, help="allocator choosing the new secondary")
    p.add_argument("--disks", help="disk indices, e.g. 0,2 (default: every disk)")
    options.EARLY_RELEASE.add(p)
    options.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=replace_disks)


PARSERS = {"grow-disk": _grow_disk_parser, "activate-disks": _activate_disks_parser,
           "deactivate-disks": _deactivate_disks_parser,
           "replace-disks": _replace_disks_parser}


# --- opcodes ----------------------------------------------------------------------------------


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


def build_replace_disks_op(args: argparse.Namespace) -> dict[str, Any]:
    mode = args.replace_mode
    if args.remote_node or args.iallocator:
        mode = NEW_SECONDARY
    op: dict[str, Any] = {"OP_ID": REPLACE_DISKS, "instance_name": args.instance,
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


# --- handlers ---------------------------------------------------------------------------------


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

