"""gnt-network: IP networks, their address pools, connections to node groups, and tags."""

from __future__ import annotations

import argparse

from cardume import errors
from cardume.cli import common, options

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any

DEFAULT_FIELDS = ["name", "network", "gateway", "mac_prefix", "group_list", "tags"]
INFO_FIELDS = ["name", "uuid", "serial_no", "network", "gateway", "network6", "gateway6",
               "mac_prefix", "free_count", "map", "external_reservations", "group_list",
               "inst_list"]
MAP_WIDTH = 64


def _address_options(p: Any) -> None:
    p.add_argument("--gateway", help="IPv4 address of the router (gateway)")
    p.add_argument("--add-reserved-ips", dest="add_reserved_ips",
                   help="comma-separated addresses to reserve externally")
    p.add_argument("-m", "--mac-prefix", dest="mac_prefix", metavar="PREFIX",
                   help="MAC prefix of the network's NICs, XX:XX:XX")
    p.add_argument("--network6", help="IPv6 subnet, CIDR")
    p.add_argument("--gateway6", help="IPv6 address of the router (gateway)")


def build(sub: Any) -> None:
    p = sub.add_parser("add", help="add an IP network to the cluster")
    p.add_argument("--network", help="IPv4 subnet, CIDR (192.0.2.0/24)")
    _address_options(p)
    p.add_argument("--no-conflicts-check", dest="conflicts_check", action="store_false",
                   help="don't check for conflicting IPs")
    p.add_argument("--tags", help="comma-separated tags")
    options.add_job_options(p)
    p.add_argument("network_name", help="name of the network")
    p.set_defaults(func=add)

    p = sub.add_parser("remove", help="remove a network connected to no node group")
    options.FORCE.add(p, help="force the operation")
    options.add_job_options(p)
    p.add_argument("network_name", help="name of the network")
    p.set_defaults(func=remove)

    p = sub.add_parser("modify", help="change a network's parameters")
    _address_options(p)
    p.add_argument("--remove-reserved-ips", dest="remove_reserved_ips",
                   help="comma-separated external reservations to drop")
    options.add_job_options(p)
    p.add_argument("network_name", help="name of the network")
    p.set_defaults(func=modify)

    p = sub.add_parser("connect", help="connect a network to node groups (all by default) "
                                       "with a NIC mode and link")
    p.add_argument("-N", "--nic-parameters", dest="nicparams", metavar="NICPARAMS",
                   help="mode=MODE,link=LINK[,vlan=VLAN]")
    p.add_argument("--no-conflicts-check", dest="conflicts_check", action="store_false",
                   help="don't check for conflicting IPs")
    options.add_job_options(p, dry_run=False)
    p.add_argument("network_name", help="name of the network")
    p.add_argument("groups", nargs="*", help="node groups (default: all)")
    p.set_defaults(func=connect)

    p = sub.add_parser("disconnect", help="disconnect a network from node groups "
                                          "(all it is connected to by default)")
    options.add_job_options(p, dry_run=False)
    p.add_argument("network_name", help="name of the network")
    p.add_argument("groups", nargs="*", help="node groups (default: all)")
    p.set_defaults(func=disconnect)

    p = sub.add_parser("rename", help="rename a network")
    options.add_job_options(p)
    p.add_argument("network_name", help="current name")
    p.add_argument("new_name", help="new name")
    p.set_defaults(func=rename)

    p = sub.add_parser("list", help="list the IP networks of the cluster")
    common.add_list_options(p)
    p.set_defaults(func=lambda a: common.run_list(a, "network", DEFAULT_FIELDS,
                                                  "GNT_NETWORK_LIST"))
    p = sub.add_parser("list-fields", help="describe the fields of gnt-network list")
    common.add_list_fields_options(p)
    p.set_defaults(func=lambda a: common.run_list_fields(a, "network"))

    p = sub.add_parser("info", help="show details of networks")
    p.add_argument("networks", nargs="*", help="networks (default: all)")
    p.set_defaults(func=info)

    common.add_tag_commands(sub, "a network", "network", tags)


def _ips(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [ip.strip() for ip in text.split(",") if ip.strip()]


def add(args: argparse.Namespace) -> int:
    if not args.network:
        raise errors.WrongInput("the --network option must be given (an IPv4 subnet such as "
                                "192.0.2.0/24)")
    op = {"OP_ID": "OP_NETWORK_ADD", "network_name": args.network_name,
          "network": args.network, "gateway": args.gateway, "network6": args.network6,
          "gateway6": args.gateway6, "mac_prefix": args.mac_prefix,
          "add_reserved_ips": _ips(args.add_reserved_ips),
          "conflicts_check": args.conflicts_check,
          "tags": [t for t in (args.tags or "").split(",") if t]}
    common.run_job(args, [op])
    return 0


def remove(args: argparse.Namespace) -> int:
    common.run_job(args, [{"OP_ID": "OP_NETWORK_REMOVE", "network_name": args.network_name,
                           "force": args.force}])
    return 0


def modify(args: argparse.Namespace) -> int:
    op = {"OP_ID": "OP_NETWORK_SET_PARAMS", "network_name": args.network_name,
          "gateway": args.gateway, "network6": args.network6, "gateway6": args.gateway6,
          "mac_prefix": args.mac_prefix, "add_reserved_ips": _ips(args.add_reserved_ips),
          "remove_reserved_ips": _ips(args.remove_reserved_ips)}
    common.run_job(args, [op])
    return 0


def _all_groups() -> list[str]:
    from cardume.master.client import Client
    with Client() as client:
        reply = client.call("Query", "group", ["name"], [])
    return [row[0] for row in reply["data"]]


def _connected_groups(network: str) -> list[str]:
    rows = common.query_objects("network", ["group_list"], [network])
    return [str(item[0]) for item in rows[0]["group_list"]]


def connect(args: argparse.Namespace) -> int:
    from cardume.cli.params import parse_kv
    params = dict(parse_kv(args.nicparams)) if args.nicparams else {}
    unknown = sorted(set(params) - {"mode", "link", "vlan"})
    if unknown:
        raise errors.WrongInput(f"unknown NIC parameter(s) {', '.join(unknown)} for connect "
                                "(known: mode, link, vlan)")
    missing = [k for k in ("mode", "link") if not params.get(k)]
    if missing:
        raise errors.WrongInput(f"connect needs the NIC {' and '.join(missing)}: "
                                "--nic-parameters mode=MODE,link=LINK")
    groups = list(args.groups) or _all_groups()
    ops = [{"OP_ID": "OP_NETWORK_CONNECT", "network_name": args.network_name,
            "group_name": group, "network_mode": str(params["mode"]),
            "network_link": str(params["link"]), "network_vlan": str(params.get("vlan") or ""),
            "conflicts_check": args.conflicts_check} for group in groups]
    common.run_job(args, ops)
    return 0


def disconnect(args: argparse.Namespace) -> int:
    groups = list(args.groups) or _connected_groups(args.network_name)
    if not groups:
        return 0
    common.run_job(args, [{"OP_ID": "OP_NETWORK_DISCONNECT", "network_name": args.network_name,
                           "group_name": group} for group in groups])
    return 0


def rename(args: argparse.Namespace) -> int:
    common.run_job(args, [{"OP_ID": "OP_NETWORK_RENAME", "network_name": args.network_name,
                           "new_name": args.new_name}])
    return 0


def info(args: argparse.Namespace) -> int:
    rows = common.query_objects("network", INFO_FIELDS, list(args.networks))
    users = sorted({name for row in rows for name in row["inst_list"]})
    nics: dict[str, tuple[list[Any], list[Any]]] = {}
    if users:
        for inst in common.query_objects("instance", ["name", "nic.ips", "nic.networks"],
                                         users):
            nics[inst["name"]] = (inst["nic.ips"], inst["nic.networks"])
    for row in rows:
        print("\n".join(format_info(row, nics)))
    return 0


def _none(value: Any) -> str:
    return "None" if value is None or isinstance(value, dict) else str(value)


def usage_lines(text: str) -> list[str]:
    """The usage map, 64 addresses a line between the line's first and last index."""
    return [f"{start:>9} {text[start:start + MAP_WIDTH]:<{MAP_WIDTH}} "
            f"{start + MAP_WIDTH - 1}" for start in range(0, len(text), MAP_WIDTH)]


def format_info(row: dict[str, Any], nics: dict[str, tuple[list[Any], list[Any]]]) -> list[str]:
    """One network's document, in Ganeti's layout."""
    size = len(row["map"])
    free = int(row["free_count"])
    lines = [f"Network name: {row['name']}", f"UUID: {row['uuid']}",
             f"Serial number: {row['serial_no']}",
             f"  Subnet: {row['network']}", f"  Gateway: {_none(row['gateway'])}",
             f"  IPv6 Subnet: {_none(row['network6'])}",
             f"  IPv6 Gateway: {_none(row['gateway6'])}",
             f"  Mac Prefix: {_none(row['mac_prefix'])}", f"  Size: {size}",
             f"  Free: {free} ({100.0 * free / size if size else 0:.2f}%)", "  Usage map:",
             *usage_lines(row["map"]), "         (X) used    (.) free"]
    if row["external_reservations"]:
        lines += ["  externally reserved IPs:", f"    {row['external_reservations']}"]
    if row["group_list"]:
        lines.append("  connected to node groups:")
        lines += [f"    {g} (mode:{m} link:{link} vlan:{v})"
                  for g, m, link, v in row["group_list"]]
    else:
        lines.append("  not connected to any node group")
    if row["inst_list"]:
        lines.append(f"  used by {len(row['inst_list'])} instances:")
        for name in row["inst_list"]:
            ips, nets = nics.get(name, ([], []))
            own = [f"{idx}:{ip}" for idx, (ip, net) in enumerate(zip(ips, nets, strict=False))
                   if net == row["uuid"]]
            lines.append(f"    {name}: {', '.join(own)}")
    else:
        lines.append("  not used by any instances")
    return lines


def tags(args: argparse.Namespace) -> int:
    return common.run_tags(args, "network", "network", args.network)
