"""gnt-backup: export an instance to a node, import one from an export, list and remove
exports (Ganeti's commands and output)."""

from __future__ import annotations

import argparse

from cardume import errors
from cardume.cli import common, options
from cardume.cli.instance_add import PARSERS as INSTANCE_PARSERS
from cardume.cli.instance_add import build_create_op
from cardume.cli.instance_specs import parse_disks, parse_nics

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

EXPORT = "OP_BACKUP_EXPORT"
COMPRESSION = options.Option("--transport-compression", dest="compress", param="compress",
                             kind=options.CHOICE, what="compression mode")


def build(sub: Any) -> None:
    p = sub.add_parser("export", help="export an instance to a node's export directory")
    options.FORCE.add(p)
    p.add_argument("-n", "--node", dest="node", help="target node")
    COMPRESSION.add(p, EXPORT)
    p.add_argument("--noshutdown", dest="shutdown", action="store_false",
                   help="don't shut the instance down while its disks are read (unsafe)")
    options.SHUTDOWN_TIMEOUT.add(p, EXPORT)
    p.add_argument("--remove-instance", action="store_true",
                   help="remove the instance from the cluster after the export")
    p.add_argument("--ignore-remove-failures", action="store_true",
                   help="remove it from the configuration even if removing its disks fails")
    p.add_argument("--zero-free-space", action="store_true",
                   help="zero the disks' free space first (not supported yet)")
    p.add_argument("--long-sleep", action="store_true",
                   help="allow the instance to stay down while disks that can't be "
                        "snapshotted are read")
    options.add_job_options(p)
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=export)

    p = sub.add_parser("import", help="create an instance from an export")
    INSTANCE_PARSERS["add"](p)
    p.add_argument("--src-node", dest="src_node", help="node holding the export")
    p.add_argument("--src-dir", dest="src_dir",
                   help="the export's directory (default: the instance's name)")
    p.add_argument("--identify-defaults", action="store_true",
                   help="accepted for Ganeti's users: the export's parameters equal to "
                        "the cluster's defaults are never made the instance's own")
    p.set_defaults(func=import_instance)

    p = sub.add_parser("list", help="list the exports of the cluster's nodes")
    p.add_argument("-n", "--node", dest="nodes", action="append", default=[],
                   help="only this node (repeat for more; default: all)")
    options.NO_HEADERS.add(p)
    options.SEPARATOR.add(p, help="separate columns with this text")
    p.add_argument("-o", "--output", dest="output", metavar="FIELDS",
                   help="comma-separated fields: node, export (default: both)")
    p.set_defaults(func=list_exports)

    p = sub.add_parser("remove", help="remove the exports of an instance")
    options.add_job_options(p, dry_run=False)
    p.add_argument("instance", help="name of the instance (as exported)")
    p.set_defaults(func=remove)


def build_export_op(args: argparse.Namespace) -> dict[str, Any]:
    if not args.node:
        raise errors.WrongInput("no target node given: gnt-backup export -n NODE INSTANCE")
    return {"OP_ID": EXPORT, "instance_name": args.instance, "target_node": args.node,
            "shutdown": args.shutdown, "shutdown_timeout": args.shutdown_timeout,
            "remove_instance": args.remove_instance,
            "ignore_remove_failures": args.ignore_remove_failures, "mode": "local",
            "compress": args.compress, "zero_free_space": args.zero_free_space,
            "long_sleep": args.long_sleep}


def build_import_op(args: argparse.Namespace) -> dict[str, Any]:
    """OP_INSTANCE_CREATE in mode import: what the command line leaves unset (template,
    disks, NICs, parameters, OS) comes from the export."""
    disks, nics = args.disks, args.nics
    if not disks and args.sd_size is None:
        args.disks = ["0:size=1"]  # a stand-in for build_create_op; the export's are used
    if not nics:
        args.no_nics = True
    op = build_create_op(args)
    op["disks"] = parse_disks(disks, args.sd_size, args.disk_template) \
        if disks or args.sd_size is not None else []
    op["nics"] = parse_nics(nics, False) if nics else []
    op.update({"mode": "import", "src_node": args.src_node, "src_path": args.src_dir})
    return op


def export(args: argparse.Namespace) -> int:
    common.run_job(args, [build_export_op(args)])
    return 0


def import_instance(args: argparse.Namespace) -> int:
    common.run_job(args, [build_import_op(args)])
    return 0


def remove(args: argparse.Namespace) -> int:
    common.run_job(args, [{"OP_ID": "OP_BACKUP_REMOVE", "instance_name": args.instance}])
    return 0


LIST_FIELDS = {"node": "Node", "export": "Export"}


def format_exports(answer: dict[str, Any], headers: bool = True,
                   separator: str | None = None,
                   fields: Sequence[str] = ("node", "export")) -> list[str]:
    """Ganeti's table: one row per export; a node that could not be asked shows '?'."""
    pairs: list[dict[str, str]] = []
    for node in sorted(answer):
        names = answer[node]
        if names is False:
            pairs.append({"node": node, "export": "?"})
        pairs.extend({"node": node, "export": name} for name in sorted(names or []))
    rows = [[pair[f] for f in fields] for pair in pairs]
    if headers:
        rows.insert(0, [LIST_FIELDS[f] for f in fields])
    if separator is not None:
        return [separator.join(row) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(fields))] if rows else []
    return [" ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            .rstrip() for row in rows]


def _fields(spec: str | None) -> list[str]:
    if not spec:
        return list(LIST_FIELDS)
    fields = [f.strip() for f in spec.split(",") if f.strip()]
    unknown = [f for f in fields if f not in LIST_FIELDS]
    if unknown or not fields:
        raise errors.WrongInput(f"unknown field(s) {', '.join(unknown) or spec!r} for "
                                "gnt-backup list (known: node, export)")
    return fields


def list_exports(args: argparse.Namespace) -> int:
    fields = _fields(args.output)
    op = {"OP_ID": "OP_BACKUP_QUERY", "nodes": list(args.nodes) or None}
    result = common.run_job(args, [op], feedback=False)
    answer = dict((result or [{}])[0] or {})
    lines = format_exports(answer, headers=not args.no_headers, separator=args.separator,
                           fields=fields)
    if lines:
        print("\n".join(lines))
    return 0
