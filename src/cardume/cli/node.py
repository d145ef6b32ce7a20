"""gnt-node: add nodes by join token, list, inspect, change roles, remove."""

from __future__ import annotations

import argparse
import sys

from cardume import errors
from cardume.cli import common, listing, options

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

DEFAULT_FIELDS = ["name", "dtotal", "dfree", "mtotal", "mnode", "mfree", "pinst_cnt",
                  "sinst_cnt"]


def build(sub: Any) -> None:
    p = sub.add_parser("add", help="add a node (its daemon must be running)")
    p.add_argument("--join-token", help="the node's join token ('cardume node join-token' "
                   "on the node prints it)")
    p.add_argument("--readd", action="store_true", help="re-add a node already in the config")
    options.SECONDARY_IP.add(p)
    p.add_argument("-g", "--node-group", help="node group (default: default)")
    options.add(p, options.MASTER_CAPABLE, options.VM_CAPABLE, options.NODE_PARAMS)
    p.add_argument("--primary-ip", help="address of the node daemon (default: resolved name)")
    p.add_argument("--port", type=int, help="port of the node daemon")
    p.add_argument("--no-ssh-key-check", action="store_true", help="accepted (no SSH used)")
    p.add_argument("--no-node-setup", action="store_true", help="accepted (no SSH used)")
    options.add_job_options(p)
    p.add_argument("node", help="name of the node")
    p.set_defaults(func=add)

    p = sub.add_parser("list", help="list nodes")
    common.add_list_options(p)
    p.set_defaults(func=lambda a: common.run_list(a, "node", DEFAULT_FIELDS, "GNT_NODE_LIST"))
    p = sub.add_parser("list-fields", help="describe the fields of gnt-node list")
    common.add_list_fields_options(p)
    p.set_defaults(func=lambda a: common.run_list_fields(a, "node"))

    p = sub.add_parser("volumes", help="list the logical volumes of nodes and their "
                       "instances")
    common.add_list_options(p, query_filter=False)
    p.set_defaults(func=volumes)
    p = sub.add_parser("list-storage", help="list the storage units of nodes")
    common.add_list_options(p, query_filter=False)
    p.add_argument("-t", "--storage-type", dest="storage_type",
                   choices=("lvm-vg", "lvm-pv", "file", "sharedfile"),
                   help="storage type (default: that of the first enabled disk template)")
    p.set_defaults(func=list_storage)

    p = sub.add_parser("list-drbd", help="list the DRBD minors of a node, with their "
                       "instances and the minors no disk claims")
    if isinstance(p, argparse.ArgumentParser):  # the DRBD views only when it is run
        from cardume.cli import drbd
        drbd.add_list_drbd_options(p)
        p.set_defaults(func=drbd.list_drbd)

    for name in ("info", "show"):
        p = sub.add_parser(name, help="show node details")
        p.add_argument("nodes", nargs="*", help="nodes (default: all)")
        p.set_defaults(func=info)

    p = sub.add_parser("remove", help="remove a node from the cluster")
    options.add_job_options(p)
    p.add_argument("node", help="name of the node")
    p.set_defaults(func=remove)

    p = sub.add_parser("modify", help="change a node's roles and parameters")
    p.add_argument("-C", "--master-candidate", type=options.yes_no, help="yes|no")
    p.add_argument("-D", "--drained", type=options.yes_no, help="yes|no")
    p.add_argument("-O", "--offline", type=options.yes_no, help="yes|no")
    options.add(p, options.MASTER_CAPABLE, options.VM_CAPABLE, options.SECONDARY_IP,
                options.NODE_PARAMS)
    p.add_argument("--node-powered", type=options.yes_no, help="yes|no")
    p.add_argument("--auto-promote", action="store_true",
                   help="promote another node if this one stops being a candidate")
    options.FORCE.add(p, help="skip safety checks")
    options.add_job_options(p)
    p.add_argument("node", help="name of the node")
    p.set_defaults(func=modify)

    p = sub.add_parser("evacuate", help="move the instances' disks off a node")
    options.FORCE.add(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("-p", "--primary-only", dest="evac_mode", action="store_const",
                       const="primary-only", help="only the instances whose primary it is")
    which.add_argument("-s", "--secondary-only", dest="evac_mode", action="store_const",
                       const="secondary-only", help="only the instances whose secondary it is")
    p.add_argument("-n", "--new-secondary", dest="remote_node",
                   help="new secondary node (default: the node with the most free space)")
    options.IALLOCATOR.add(p, help="allocator choosing the new nodes")
    options.EARLY_RELEASE.add(p)
    options.add_job_options(p)
    p.add_argument("node", help="name of the node")
    p.set_defaults(func=evacuate, evac_mode="all")

    p = sub.add_parser("failover", help="fail over every instance whose primary is a node")
    options.FORCE.add(p)
    options.IGNORE_CONSISTENCY.add(
        p, help="fail over even if the disks are not consistent (dead node)")
    options.add_job_options(p)
    p.add_argument("node", help="name of the node")
    p.set_defaults(func=failover)

    p = sub.add_parser("migrate", help="migrate every instance whose primary is a node")
    options.FORCE.add(p)
    options.NONLIVE.add(p, help="non-live migration")
    # argparse's choices: a bad mode exits 2 with argparse's words, as it always has here
    options.MIGRATION_MODE.add(p, "OP_INSTANCE_MIGRATE", kind=options.CHOICES)
    options.ALLOW_FAILOVER.add(p, help="fail over the instances that cannot be migrated")
    options.TARGET_NODE.add(
        p, help="where instances without a secondary go (sharedfile, diskless)")
    options.add_job_options(p)
    p.add_argument("node", help="name of the node")
    p.set_defaults(func=migrate)

    common.add_tag_commands(sub, "a node", "node", tags)


def add(args: argparse.Namespace) -> int:
    from cardume.cli.params import parse_kv
    op: dict[str, Any] = {"OP_ID": "OP_NODE_ADD", "node_name": args.node,
                          "readd": args.readd, "secondary_ip": args.secondary_ip,
                          "group": args.node_group, "master_capable": args.master_capable,
                          "vm_capable": args.vm_capable, "primary_ip": args.primary_ip,
                          "port": args.port, "join_token": args.join_token}
    if args.ndparams:
        op["ndparams"] = dict(parse_kv(args.ndparams))
    common.run_job(args, [op])
    return 0


def evacuate(args: argparse.Namespace) -> int:
    if not args.force and not common.confirm(
            f"Move the instances' disks off node {args.node} ({args.evac_mode})?"):
        raise errors.WrongInput(f"evacuating {args.node} needs -f to confirm")
    op: dict[str, Any] = {"OP_ID": "OP_NODE_EVACUATE", "node_name": args.node,
                          "mode": args.evac_mode, "early_release": args.early_release}
    if args.remote_node:
        op["remote_node"] = args.remote_node
    if args.iallocator:
        op["iallocator"] = args.iallocator
    result = common.run_job(args, [op])
    if result and result[0]:
        for instance, what in result[0]:
            print(f"{instance}: {what}")
    return 0


def _primary_instances(node: str) -> tuple[str, list[str]]:
    """The node's full name and the instances whose primary it is."""
    from cardume.master.client import Client
    with Client() as client:
        found = client.call("Query", "node", ["name"], [node])["data"]
        full = str(found[0][0])
        rows = client.call("Query", "instance", ["name", "pnode"], [])["data"]
    return full, sorted(str(name) for name, pnode in rows if pnode == full)


def _each_instance(args: argparse.Namespace, verb: str,
                   build: Callable[[str, argparse.Namespace], dict[str, Any]],
                   summary: Callable[[int, int], str]) -> int:
    """Ganeti's gnt-node failover/migrate: one job per primary instance of the node, all
    submitted at once and waited for by the runner of every multi-instance command, then
    ``summary(instances, failures)``; exit 1 if any failed."""
    node, names = _primary_instances(args.node)
    if not names:
        print(f"No primary instances on node {node}, exiting.")
        return 0
    if not args.force and not common.confirm(
            f"{verb.capitalize()} instance(s) {', '.join(names)} off {node}?"):
        raise errors.WrongInput(f"{verb} of the instances of {node} needs -f to confirm")
    failed = common.run_many(args, names, build, verbose=True)
    if not args.submit:
        print(summary(len(names), len(failed)))
    return 1 if failed else 0


def failover(args: argparse.Namespace) -> int:
    from cardume.cli.instance_migrate import failover_op
    return _each_instance(
        args, "failover",
        lambda name, a: failover_op(name, ignore_consistency=a.ignore_consistency),
        lambda total, bad: f"All {total} instance(s) failed over successfully." if not bad
        else f"There were errors during the failover:\n{bad} error(s) out of {total} "
             "instance(s).")


def migrate(args: argparse.Namespace) -> int:
    from cardume.cli.instance_migrate import migrate_op, migration_mode
    mode = migration_mode(args)
    return _each_instance(
        args, "migration",
        lambda name, a: migrate_op(name, mode=mode, allow_failover=a.allow_failover,
                                   target_node=a.target_node),
        lambda total, bad: "All instances migrated successfully." if not bad
        else f"There were {bad} errors during the node migration.")


def remove(args: argparse.Namespace) -> int:
    common.run_job(args, [{"OP_ID": "OP_NODE_REMOVE", "node_name": args.node}])
    return 0


def modify(args: argparse.Namespace) -> int:
    from cardume.cli.params import parse_kv
    op: dict[str, Any] = {"OP_ID": "OP_NODE_SET_PARAMS", "node_name": args.node,
                          "master_candidate": args.master_candidate, "drained": args.drained,
                          "offline": args.offline, "master_capable": args.master_capable,
                          "vm_capable": args.vm_capable, "secondary_ip": args.secondary_ip,
                          "powered": args.node_powered, "auto_promote": args.auto_promote,
                          "force": args.force}
    if args.ndparams:
        op["ndparams"] = dict(parse_kv(args.ndparams))
    result = common.run_job(args, [op])
    common.print_changes("node", args.node, result)
    return 0


INFO_FIELDS = ["name", "pip", "sip", "pinst_list", "sinst_list", "master_candidate", "drained",
               "offline", "master_capable", "vm_capable", "powered", "ndparams",
               "custom_ndparams"]


def info(args: argparse.Namespace) -> int:
    from cardume.cli import infodoc
    rows = common.query_objects("node", INFO_FIELDS, list(args.nodes))
    print(infodoc.render([format_node_info(node) for node in rows]))
    return 0


def format_node_info(node: dict[str, Any]) -> list[tuple[str, Any]]:
    """One node's document, in Ganeti's order, from one row of a node query."""
    from cardume.cli import infodoc
    ndparams = node.get("ndparams") or {}
    data: list[tuple[str, Any]] = [
        ("Node name", node["name"]),
        ("primary ip", node["pip"]),
        ("secondary ip", node["sip"]),
        ("master candidate", node["master_candidate"]),
        ("drained", node["drained"]),
        ("offline", node["offline"]),
    ]
    # the power state means something only with an out-of-band program to ask (Ganeti
    # leaves the line out otherwise, and so does cardume, which has none by default)
    if ndparams.get("oob_program") and isinstance(node.get("powered"), bool):
        data.append(("powered", node["powered"]))
    data.extend([("master_capable", node["master_capable"]),
                 ("vm_capable", node["vm_capable"])])
    if node["vm_capable"]:
        data.extend([
            ("primary for instances", infodoc.nice_sorted(node.get("pinst_list") or [])),
            ("secondary for instances", infodoc.nice_sorted(node.get("sinst_list") or [])),
        ])
    data.append(("node parameters", infodoc.params(node.get("custom_ndparams"), ndparams)))
    return data


def tags(args: argparse.Namespace) -> int:
    return common.run_tags(args, "node", "node", args.node)


VOLUME_FIELDS = {f.name: f for f in (
    listing.Field("node", "Node", "text", "node name"),
    listing.Field("phys", "PhysDev", "text", "physical device the volume lies on"),
    listing.Field("vg", "VG", "text", "volume group"),
    listing.Field("name", "Name", "text", "logical volume name"),
    listing.Field("size", "Size", "unit", "logical volume size (MiB)"),
    listing.Field("instance", "Instance", "text", "instance the volume belongs to"),
)}
STORAGE_FIELDS = {f.name: f for f in (
    listing.Field("node", "Node", "text", "node name"),
    listing.Field("type", "Type", "text", "storage type"),
    listing.Field("name", "Name", "text", "storage unit name"),
    listing.Field("size", "Size", "unit", "total size (MiB)"),
    listing.Field("used", "Used", "unit", "used space (MiB)"),
    listing.Field("free", "Free", "unit", "free space (MiB)"),
    listing.Field("allocatable", "Allocatable", "bool", "whether new disks may use it"),
)}


def format_rows(available: dict[str, listing.Field], rows: list[dict[str, Any]],
                args: argparse.Namespace) -> str:
    """A volumes / list-storage table, with the list options of every list command."""
    names = listing.select_fields(args.output, list(available), available)
    fields = [available[n] for n in names]
    return listing.format_table(fields, [[row.get(n) for n in names] for row in rows],
                                headers=not args.no_headers, separator=args.separator,
                                units=args.units, verbose=args.verbose)


def _print_reply(reply: dict[str, Any], available: dict[str, listing.Field],
                 args: argparse.Namespace) -> int:
    for node, message in sorted((reply.get("errors") or {}).items()):
        print(f"Warning: can't get data from node {node}: {message}", file=sys.stderr)
    text = format_rows(available, list(reply.get("rows") or []), args)
    if text:
        print(text)
    return 0


def volumes(args: argparse.Namespace) -> int:
    from cardume.master.client import Client
    with Client() as client:
        reply = client.call("QueryNodeVolumes", list(args.names or []))
    return _print_reply(reply, VOLUME_FIELDS, args)


def list_storage(args: argparse.Namespace) -> int:
    from cardume.master.client import Client
    with Client() as client:
        reply = client.call("QueryNodeStorage", list(args.names or []), args.storage_type)
    return _print_reply(reply, STORAGE_FIELDS, args)
