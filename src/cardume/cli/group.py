"""gnt-group: node groups and their tags."""

from __future__ import annotations

import argparse

from cardume.cli import common, options

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any

DEFAULT_FIELDS = ["name", "node_cnt", "pinst_cnt", "alloc_policy", "ndparams"]


def build(sub: Any) -> None:
    p = sub.add_parser("add", help="create a node group")
    options.ALLOC_POLICY.add(p, "OP_GROUP_ADD")
    options.add(p, options.NODE_PARAMS, options.DISK_PARAMS)
    _ipolicy_options(p)
    options.add_job_options(p)
    p.add_argument("group", help="name of the group")
    p.set_defaults(func=add)

    p = sub.add_parser("list", help="list node groups")
    common.add_list_options(p)
    p.set_defaults(func=lambda a: common.run_list(a, "group", DEFAULT_FIELDS, "GNT_GROUP_LIST"))
    p = sub.add_parser("list-fields", help="describe the fields of gnt-group list")
    common.add_list_fields_options(p)
    p.set_defaults(func=lambda a: common.run_list_fields(a, "group"))

    p = sub.add_parser("remove", help="remove an empty node group")
    options.add_job_options(p)
    p.add_argument("group", help="name of the group")
    p.set_defaults(func=remove)

    p = sub.add_parser("rename", help="rename a node group")
    options.add_job_options(p)
    p.add_argument("group", help="current name")
    p.add_argument("new_name", help="new name")
    p.set_defaults(func=rename)

    p = sub.add_parser("assign-nodes", help="move nodes into a group")
    options.FORCE.add(p, help="allow splitting instances")
    options.add_job_options(p)
    p.add_argument("group", help="target group")
    p.add_argument("nodes", nargs="+", help="nodes to move")
    p.set_defaults(func=assign_nodes)

    p = sub.add_parser("modify", help="change a group's parameters")
    options.ALLOC_POLICY.add(p, "OP_GROUP_SET_PARAMS")
    options.add(p, options.NODE_PARAMS, options.DISK_PARAMS)
    _ipolicy_options(p)
    options.add_job_options(p)
    p.add_argument("group", help="name of the group")
    p.set_defaults(func=modify)

    for name in ("info", "show"):
        p = sub.add_parser(name, help="show group details")
        p.add_argument("groups", nargs="*", help="groups (default: all)")
        p.set_defaults(func=info)

    common.add_tag_commands(sub, "a node group", "group", tags)


def _ipolicy_options(p: Any) -> None:
    if isinstance(p, argparse.ArgumentParser):  # only for the subcommand being run
        from cardume.cli import ipolicy
        ipolicy.add_options(p, std=False)


def _ipolicy(args: argparse.Namespace) -> dict[str, Any] | None:
    from cardume.cli import ipolicy
    return ipolicy.from_args(args)


def _diskparams(items: list[str]) -> dict[str, Any] | None:
    from cardume.cli.params import parse_ident_kv
    if not items:
        return None
    result: dict[str, Any] = {}
    for text in items:
        template, values = parse_ident_kv(text)
        result[template] = values if isinstance(values, dict) else {}
    return result


def add(args: argparse.Namespace) -> int:
    from cardume.cli.params import parse_kv
    op = {"OP_ID": "OP_GROUP_ADD", "group_name": args.group, "alloc_policy": args.alloc_policy,
          "ndparams": dict(parse_kv(args.ndparams)) if args.ndparams else None,
          "diskparams": _diskparams(args.diskparams), "ipolicy": _ipolicy(args)}
    common.run_job(args, [op])
    return 0


def remove(args: argparse.Namespace) -> int:
    common.run_job(args, [{"OP_ID": "OP_GROUP_REMOVE", "group_name": args.group}])
    return 0


def rename(args: argparse.Namespace) -> int:
    common.run_job(args, [{"OP_ID": "OP_GROUP_RENAME", "group_name": args.group,
                           "new_name": args.new_name}])
    return 0


def assign_nodes(args: argparse.Namespace) -> int:
    from cardume.cli.params import parse_names_list
    nodes = [n for text in args.nodes for n in parse_names_list(text)]
    common.run_job(args, [{"OP_ID": "OP_GROUP_ASSIGN_NODES", "group_name": args.group,
                           "nodes": nodes, "force": args.force}])
    return 0


def modify(args: argparse.Namespace) -> int:
    from cardume.cli.params import parse_kv
    op = {"OP_ID": "OP_GROUP_SET_PARAMS", "group_name": args.group,
          "alloc_policy": args.alloc_policy,
          "ndparams": dict(parse_kv(args.ndparams)) if args.ndparams else None,
          "diskparams": _diskparams(args.diskparams), "ipolicy": _ipolicy(args)}
    result = common.run_job(args, [op])
    common.print_changes("node group", args.group, result)
    return 0


INFO_FIELDS = ["name", "ndparams", "custom_ndparams", "diskparams", "custom_diskparams",
               "ipolicy", "custom_ipolicy"]


def info(args: argparse.Namespace) -> int:
    from cardume.cli import infodoc
    rows = common.query_objects("group", INFO_FIELDS, list(args.groups))
    print(infodoc.render([format_group_info(group) for group in rows]))
    return 0


def format_group_info(group: dict[str, Any]) -> list[tuple[str, Any]]:
    """One group's document, in Ganeti's order, from one row of a group query."""
    from cardume.cli import infodoc
    return [
        ("Node group", group["name"]),
        ("Node parameters", infodoc.params(group.get("custom_ndparams"),
                                           group.get("ndparams") or {})),
        ("Disk parameters", infodoc.params(group.get("custom_diskparams"),
                                           group.get("diskparams") or {})),
        ("Instance policy", infodoc.policy(group.get("custom_ipolicy") or {},
                                           group.get("ipolicy") or {}, cluster=False)),
    ]


def tags(args: argparse.Namespace) -> int:
    return common.run_tags(args, "group", "nodegroup", args.group)
