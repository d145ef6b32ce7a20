"""gnt-instance failover, migrate and move: an instance changes node.

:func:`failover_op` and :func:`migrate_op` build the opcodes for one instance; gnt-node
failover and migrate build theirs with the same functions, one per primary instance.
"""

from __future__ import annotations

import argparse

from cardume import errors
from cardume.cli import common, options

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any

MOVE = "OP_INSTANCE_MOVE"
FAILOVER = "OP_INSTANCE_FAILOVER"
MIGRATE = "OP_INSTANCE_MIGRATE"


# --- parsers ----------------------------------------------------------------------------------


def _move_parser(p: argparse.ArgumentParser) -> None:
    options.FORCE.add(p)
    p.add_argument("-n", "--node", dest="target_node", required=True, help="target node")
    options.SHUTDOWN_TIMEOUT.add(p, MOVE)
    options.IGNORE_CONSISTENCY.add(p)
    options.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=move)


def _failover_parser(p: argparse.ArgumentParser) -> None:
    options.FORCE.add(p)
    options.IGNORE_CONSISTENCY.add(
        p, help="fail over even if the disks are not consistent (dead primary)")
    options.SHUTDOWN_TIMEOUT.add(p, FAILOVER)
    options.add(p, options.TARGET_NODE, options.IALLOCATOR)
    options.CLEANUP.add(p, help="clean up after a failed failover")
    options.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=failover)


def _migrate_parser(p: argparse.ArgumentParser) -> None:
    options.FORCE.add(p)
    options.NONLIVE.add(p)
    options.MIGRATION_MODE.add(p, MIGRATE)
    options.add(p, options.CLEANUP, options.TARGET_NODE, options.IALLOCATOR,
                options.ALLOW_FAILOVER)
    p.add_argument("--mirror-disks", action="store_true",
                   help="file and plain instances: copy the disks to the target while the "
                        "instance runs (kvm)")
    options.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=migrate)


def _change_group_parser(p: argparse.ArgumentParser) -> None:
    options.IALLOCATOR.add(p)
    p.add_argument("--to", dest="target_groups", action="append", default=[],
                   help="a node group it may go to (repeatable; default: any other)")
    options.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=change_group)


PARSERS = {"move": _move_parser, "failover": _failover_parser, "migrate": _migrate_parser,
           "change-group": _change_group_parser}


# --- opcodes ----------------------------------------------------------------------------------


def _one_target(target_node: str | None, iallocator: str | None) -> None:
    if target_node and iallocator:
        raise errors.WrongInput(
            f"give either a target node (-n {target_node}) or an allocator "
            f"(-I {iallocator}), not both")


def failover_op(name: str, *, ignore_consistency: bool = False,
                shutdown_timeout: int | None = None, target_node: str | None = None,
                iallocator: str | None = None, cleanup: bool = False) -> dict[str, Any]:
    """OP_INSTANCE_FAILOVER of one instance (None: the table's default)."""
    _one_target(target_node, iallocator)
    op: dict[str, Any] = {"OP_ID": FAILOVER, "instance_name": name,
                          "ignore_consistency": ignore_consistency,
                          "shutdown_timeout": shutdown_timeout,
                          "target_node": target_node, "cleanup": cleanup}
    if iallocator:
        op["iallocator"] = iallocator
    return op


def migration_mode(args: argparse.Namespace) -> str | None:
    """The mode --non-live or --migration-mode asks for (None: the hypervisor's default)."""
    if args.non_live and args.migration_mode is not None:
        raise errors.WrongInput(
            "give either --non-live or --migration-mode, not both")
    return "non-live" if args.non_live else args.migration_mode


def migrate_op(name: str, *, mode: str | None = None, target_node: str | None = None,
               iallocator: str | None = None, cleanup: bool = False,
               allow_failover: bool = False, mirror_disks: bool = False) -> dict[str, Any]:
    """OP_INSTANCE_MIGRATE of one instance."""
    _one_target(target_node, iallocator)
    op: dict[str, Any] = {"OP_ID": MIGRATE, "instance_name": name,
                          "mode": mode, "target_node": target_node,
                          "cleanup": cleanup, "allow_failover": allow_failover}
    if mirror_disks:
        op["mirror_disks"] = True
    if iallocator:
        op["iallocator"] = iallocator
    return op


def build_move_op(args: argparse.Namespace) -> dict[str, Any]:
    op: dict[str, Any] = {"OP_ID": MOVE, "instance_name": args.instance,
                          "target_node": args.target_node,
                          "shutdown_timeout": args.shutdown_timeout}
    if args.ignore_consistency:
        op["ignore_consistency"] = True
    return op


def build_failover_op(args: argparse.Namespace) -> dict[str, Any]:
    return failover_op(args.instance, ignore_consistency=args.ignore_consistency,
                       shutdown_timeout=args.shutdown_timeout, target_node=args.target_node,
                       iallocator=args.iallocator, cleanup=args.cleanup)


def build_migrate_op(args: argparse.Namespace) -> dict[str, Any]:
    _one_target(args.target_node, args.iallocator)  # refused before a bad mode, as ever
    return migrate_op(args.instance, mode=migration_mode(args), target_node=args.target_node,
                      iallocator=args.iallocator, cleanup=args.cleanup,
                      allow_failover=args.allow_failover, mirror_disks=args.mirror_disks)


# --- handlers ---------------------------------------------------------------------------------


def move(args: argparse.Namespace) -> int:
    op = build_move_op(args)
    if not args.force:
        common.require_confirmation(
            f"Moving {args.instance} stops it while its disks are copied. Go on?",
            f"moving {args.instance} shuts it down; pass -f to confirm")
    common.run_job(args, [op])
    return 0


def failover(args: argparse.Namespace) -> int:
    op = build_failover_op(args)
    if not args.force:
        common.require_confirmation(
            f"Failing over {args.instance} stops it and starts it on another node. Go on?",
            f"failing over {args.instance} shuts it down; pass -f to confirm")
        if args.ignore_consistency:
            common.require_confirmation(
                f"--ignore-consistency is safe only when {args.instance}'s node is dead "
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
        common.require_confirmation(
            text + " can disturb it if the hypervisor fails half-way. Go on?",
            f"migrating {args.instance} needs -f to confirm")
    common.run_job(args, [op])
    return 0


def build_change_group_op(args: argparse.Namespace) -> dict[str, Any]:
    groups = [g for text in args.target_groups for g in text.split(",") if g]
    return {"OP_ID": "OP_INSTANCE_CHANGE_GROUP", "instance_name": args.instance,
            "iallocator": args.iallocator, "target_groups": groups or None}


def change_group(args: argparse.Namespace) -> int:
    """The allocator's moves are jobs of their own: wait for each."""
    result = common.run_job(args, [build_change_group_op(args)])
    if result is None:
        return 0
    outcome = result[0] if result and isinstance(result[0], dict) else {}
    jobs = outcome.get("jobs") or []
    failed = common.wait_for_jobs([(f"move {i + 1} of {args.instance}", job)
                                   for i, job in enumerate(jobs)])
    return 1 if failed else 0
