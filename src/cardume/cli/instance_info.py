"""gnt-instance info and console: what an instance is and where to reach it.

:func:`format_instance_info` and :func:`format_info` print Ganeti's layout from one row of
an instance query; they need no cluster, so tests call them directly.
"""

from __future__ import annotations

import argparse
import sys

from cardume import constants, errors
from cardume.cli import drbd as drbd_cli
from cardume.cli import infodoc, options
from cardume.cli.listing import format_size

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


# --- parsers ----------------------------------------------------------------------------------


def _info_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--static", action="store_true",
                   help="only the configuration, not the runtime state")
    p.add_argument("--all", dest="show_all", action="store_true", help="every instance")
    options.ROMAN.add(p)
    p.add_argument("instances", nargs="*", help="instances")
    p.set_defaults(func=info)


def _console_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--show-cmd", action="store_true",
                   help="print the command instead of running it")
    p.add_argument("instance", help="name of the instance")
    p.set_defaults(func=console)


PARSERS = {"info": _info_parser, "console": _console_parser}


# --- console ----------------------------------------------------------------------------------


def console(args: argparse.Namespace) -> int:
    import os
    import shlex

    from cardume.master.client import Client
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
    from cardume.master.client import Client
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
    """One instance's document, in Ganeti's order, from one row of an instance query;
    ``drbd`` is the instance's entry in a QueryDrbd answer (the live state of its drbd
    disks)."""
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
    console = _console(inst, pnode)
    return [
        ("Instance name", inst["name"]),
        ("UUID", inst["uuid"]),
        ("Serial number", str(inst["serial_no"])),
        ("Creation time", infodoc.timestamp(inst["ctime"])),
        ("Modification time", infodoc.timestamp(inst["mtime"])),
        ("State", state),
        ("Nodes", [
            [("primary", pnode),
             ("group", f"{pinfo.get('group')} (UUID {pinfo.get('group.uuid')})")],
            [("secondaries", ", ".join(secondaries))],
        ]),
        ("Operating system", inst["os"]),
        ("Operating system parameters",
         format_params(inst["custom_osparams"] or {}, inst["osparams"] or {})),
        # an instance without a port has the field's "unavailable" mark: Ganeti says None
        ("Allocated network port", str(port) if isinstance(port := inst.get("network_port"),
                                                            int) else "None"),
        ("Hypervisor", inst["hypervisor"]),
        *([("console connection", console)] if console else []),
        ("Hypervisor parameters", format_params(inst["custom_hvparams"] or {}, hvparams)),
        ("Back-end parameters", format_params(inst["custom_beparams"] or {}, beparams)),
        ("NICs", [_nic_info(index, nic) for index, nic in enumerate(inst["nics"] or [])]),
        ("Disk template", inst["disk_template"]),
        ("Disks", [_disk_info(index, disk, node_names, static, drbd_disks.get(index))
                   for index, disk in enumerate(inst["disks"] or [])]),
    ]


def _console(inst: dict[str, Any], pnode: str) -> str | None:
    """Ganeti's ``console connection`` line from the instance's console information (the
    live ``console`` field): where its VNC console listens."""
    where = inst.get("console")
    if not isinstance(where, dict) or where.get("kind") != "vnc":
        return None  # not running, no VNC, or only a message (fake): Ganeti prints no line
    host, port, display = where.get("host"), where.get("port"), where.get("display")
    if isinstance(display, int) and display > 0 and host == "0.0.0.0":
        return f"vnc to {pnode}:{port} (display {display})"
    if isinstance(display, int) and display > 0:
        return f"vnc to {host}:{port} (node {pnode}) (display {display})"
    return f"vnc to {host}:{port} (node {pnode})"


def _run_state(inst: dict[str, Any]) -> str | None:
    oper = inst.get("oper_state")
    if not isinstance(oper, bool):  # no answer from the primary node: static data only
        return None
    if oper:
        return "up"
    return "offline" if inst["admin_state"] == "offline" else "down"


def format_params(custom: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    """Own values as they are, inherited ones as ``default (value)``."""
    return infodoc.params(custom, actual)


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
                # on primary / on secondary where Ganeti has them, then cardume's view of
                # each node's DRBD state (Ganeti has no such block)
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
    children = disk.get("children") or []
    if children:  # a drbd disk's data and metadata volumes, on both its nodes
        mirrored = disk.get("dev_type") == constants.DT_DRBD8
        data.append(("child devices", [_child_info(i, child, static, mirrored)
                                       for i, child in enumerate(children)]))
    return data


def _child_info(index: int, child: dict[str, Any], static: bool,
                mirrored: bool) -> list[tuple[str, Any]]:
    size = child.get("size")
    nice_size = format_size(size) if isinstance(size, int) else str(size)
    data: list[tuple[str, Any]] = [(f"child {index}", f"{child.get('dev_type')}, "
                                                      f"size {nice_size}")]
    logical_id = child.get("logical_id")
    if isinstance(logical_id, list) and len(logical_id) == 2:
        data.append(("logical_id", f"{logical_id[0]}/{logical_id[1]}"))
    if not static and child.get("path"):
        # the device numbers are the node's to tell: not asked here, as Ganeti's N/A
        data.append(("on primary", f"{child['path']} (N/A:N/A)"))
        if mirrored:
            data.append(("on secondary", f"{child['path']} (N/A:N/A)"))
    return data


def format_info(data: Any) -> str:
    """The text of info documents (see :mod:`cardume.cli.infodoc`)."""
    return infodoc.render(data)
