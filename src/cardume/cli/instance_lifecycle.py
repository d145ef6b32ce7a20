"""gnt-instance startup, shutdown, reboot and reinstall: operations on one or many
instances, picked by name or by a selector (``--node``, ``--all``, ``--tags``, ...), one job
per instance, all run through :func:`cardume.cli.common.run_many`.
"""

from __future__ import annotations

import argparse

from cardume import errors
from cardume.cli import common, options
from cardume.cli.instance_specs import parse_beparams, parse_flat_hvparams
from cardume.cli.params import parse_kv

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

    #: (resource, fields, names) -> rows as dicts; :func:`common.query_objects` by default.
    QueryFn = Callable[[str, list[str], list[str]], list[dict[str, Any]]]

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



# --- parsers ----------------------------------------------------------------------------------


def _add_selector_options(p: argparse.ArgumentParser) -> None:
    for flag, mode, text in _SELECTORS:
        p.add_argument(flag, dest="multi_mode", action="store_const", const=mode, help=text)
    p.add_argument("--force-multiple", action="store_true",
                   help="don't ask when more than one instance is affected")


def _names(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", help="instances (or nodes/tags with a selector)")


def _startup_parser(p: argparse.ArgumentParser) -> None:
    _add_selector_options(p)
    options.FORCE.add(p, help="force the start")
    options.IGNORE_OFFLINE.add(p)
    options.NO_REMEMBER.add(p, help="don't record the instance as up (the watcher won't "
                            "restart it)")
    p.add_argument("--paused", action="store_true", help="start the instance paused")
    options.HYPERVISOR_PARAMS.add(p, help="temporary hypervisor parameters k=v,...")
    options.BACKEND_PARAMS.add(p, help="temporary backend parameters k=v,...")
    options.add_job_options(p)
    _names(p)
    p.set_defaults(func=startup)


def _shutdown_parser(p: argparse.ArgumentParser) -> None:
    _add_selector_options(p)
    options.FORCE.add(p, help="force the stop")
    options.TIMEOUT.add(p, SHUTDOWN)
    options.IGNORE_OFFLINE.add(p)
    options.NO_REMEMBER.add(p, help="don't record the instance as down")
    options.add_job_options(p)
    _names(p)
    p.set_defaults(func=shutdown)


def _reboot_parser(p: argparse.ArgumentParser) -> None:
    _add_selector_options(p)
    options.REBOOT_TYPE.add(p, REBOOT)
    p.add_argument("--ignore-secondaries", action="store_true",
                   help="ignore errors on secondary nodes (full reboot)")
    options.SHUTDOWN_TIMEOUT.add(p, REBOOT)
    options.add_job_options(p)
    _names(p)
    p.set_defaults(func=reboot)


def _reinstall_parser(p: argparse.ArgumentParser) -> None:
    _add_selector_options(p)
    options.FORCE.add(p)
    options.OS_TYPE.add(p, help="install this OS (OS+VARIANT)")
    options.add(p, options.OS_PARAMS, options.FORCE_VARIANT)
    options.add_job_options(p)
    _names(p)
    p.set_defaults(func=reinstall)


# --- opcodes ----------------------------------------------------------------------------------

STARTUP = "OP_INSTANCE_STARTUP"
SHUTDOWN = "OP_INSTANCE_SHUTDOWN"
REBOOT = "OP_INSTANCE_REBOOT"
REINSTALL = "OP_INSTANCE_REINSTALL"


def build_startup_op(name: str, args: argparse.Namespace) -> dict[str, Any]:
    op: dict[str, Any] = {"OP_ID": STARTUP, "instance_name": name,
                          "force": args.force, "no_remember": args.no_remember,
                          "hvparams": parse_flat_hvparams(args.hvparams),
                          "beparams": parse_beparams(args.beparams),
                          "ignore_offline_nodes": args.ignore_offline}
    if args.paused:
        op["startup_paused"] = True
    return op


def build_shutdown_op(name: str, args: argparse.Namespace) -> dict[str, Any]:
    return {"OP_ID": SHUTDOWN, "instance_name": name, "timeout": args.timeout,
            "no_remember": args.no_remember, "force": args.force,
            "ignore_offline_nodes": args.ignore_offline}


def build_reboot_op(name: str, args: argparse.Namespace) -> dict[str, Any]:
    return {"OP_ID": REBOOT, "instance_name": name,
            "reboot_type": args.reboot_type, "shutdown_timeout": args.shutdown_timeout,
            "ignore_secondaries": args.ignore_secondaries}


def build_reinstall_op(name: str, args: argparse.Namespace) -> dict[str, Any]:
    return {"OP_ID": REINSTALL, "instance_name": name, "os_type": args.os,
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


def _many(operation: str, build_op: Callable[[str, argparse.Namespace], dict[str, Any]],
          ) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        build_op("", args)  # refuse bad options before querying anything
        names, multi = select_instances(args, operation)
        if not names:
            print(f"Cluster is empty, no instances to {operation}")
            return 0
        return 1 if common.run_many(args, names, build_op, multi) else 0
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
        common.require_confirmation(
            f"Reinstalling '{names[0]}' (and {what}) erases everything on its disks. Go on?",
            f"reinstalling {names[0]} removes all its data; pass -f to confirm")
    return 1 if common.run_many(args, names, build_reinstall_op, multi) else 0


PARSERS = {"startup": _startup_parser, "shutdown": _shutdown_parser,
           "reboot": _reboot_parser, "reinstall": _reinstall_parser}
