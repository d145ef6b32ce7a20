"""gnt-os: the OS definitions the nodes offer: list, info, diagnose.

The data comes from the master's ``QueryOs`` (one entry per OS, with what every node found);
the output follows Ganeti 3.0's ``gnt-os``. Only the standard library is imported.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from cardume.cli import options

#: Ganeti's OS API version from which variants (15) and parameters (20) are reported.
OS_API_V15 = 15
OS_API_V20 = 20


def build(sub: Any) -> None:
    p = sub.add_parser("list", help="list the valid OSes (with their variants)")
    options.NO_HEADERS.add(p, help="don't print the column header")
    p.set_defaults(func=list_os)

    p = sub.add_parser("info", aliases=["show"], help="show the details of OSes")
    p.add_argument("names", nargs="*", help="OSes (default: all)")
    p.set_defaults(func=info)

    p = sub.add_parser("diagnose", help="which nodes have which OS, valid or not and why")
    p.set_defaults(func=diagnose)


def query_os() -> list[dict[str, Any]]:
    from cardume.master.client import Client
    with Client() as client:
        result = client.call("QueryOs")
    return sorted(result or [], key=lambda entry: str(entry.get("name")))


def os_names(name: str, variants: Sequence[str] | None) -> list[str]:
    """Every name an OS answers to: ``name+variant`` for each variant, else ``name``."""
    if variants:
        return [f"{name}+{variant}" for variant in variants]
    return [name]


def format_list(oses: Sequence[dict[str, Any]], headers: bool = True) -> list[str]:
    """``gnt-os list``: valid, not hidden, not blacklisted OSes, variants expanded."""
    lines = ["Name"] if headers else []
    for entry in oses:
        if not entry.get("valid") or entry.get("hidden") or entry.get("blacklisted"):
            continue
        lines.extend(os_names(entry["name"], entry.get("variants")))
    return lines


def list_os(args: argparse.Namespace) -> int:
    for line in format_list(query_os(), headers=not args.no_headers):
        print(line)
    return 0


def format_info(oses: Sequence[dict[str, Any]], names: Sequence[str] = ()) -> list[str]:
    """``gnt-os info [NAME...]``; a name that is no OS prints as ``NAME: ``."""
    wanted = list(names)
    lines: list[str] = []
    for entry in oses:
        name = entry["name"]
        if wanted:
            if name not in wanted:
                continue
            wanted.remove(name)
        valid = bool(entry.get("valid"))
        lines.append(f"{name}:")
        lines.append(f"  - valid: {valid}")
        lines.append(f"  - hidden: {bool(entry.get('hidden', False))}")
        lines.append(f"  - blacklisted: {bool(entry.get('blacklisted', False))}")
        if valid:
            lines.append("  - API versions:")
            lines.extend(f"    - {version}" for version in sorted(entry.get("api_versions")
                                                                  or []))
            lines.append("  - variants:")
            lines.extend(f"    - {variant}" for variant in entry.get("variants") or [])
            lines.append("  - parameters:")
            lines.extend(f"    - {pname}: {pdoc}"
                         for pname, pdoc in entry.get("parameters") or [])
        lines.append(f"  - trusted: {bool(entry.get('trusted', True))}")
        lines.append("")
    for name in wanted:
        lines.append(f"{name}: ")
        lines.append("")
    return lines


def info(args: argparse.Namespace) -> int:
    for line in format_info(query_os(), args.names):
        print(line)
    return 0


def _status(ok: bool, diagnose: str) -> str:
    return "valid" if ok else f"invalid - {diagnose}"


def _nice_key(name: str) -> tuple[Any, ...]:
    parts = re.split(r"([0-9]+)", name)
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts))


def format_diagnose(oses: Sequence[dict[str, Any]]) -> tuple[list[str], bool]:
    """``gnt-os diagnose``: (the lines, whether any OS is invalid or partial somewhere)."""
    lines: list[str] = []
    has_bad = False
    for entry in oses:
        valid_nodes: dict[str, str] = {}
        bad_nodes: dict[str, str] = {}
        hidden: dict[str, list[str]] = {}
        for node, found in (entry.get("node_status") or {}).items():
            hidden[node] = []
            if not found:
                bad_nodes[node] = "OS not found"
                continue
            first, rest = found[0], found[1:]
            ok = bool(first.get("status"))
            text = f"{_status(ok, first.get('diagnose', ''))} (path: {first.get('path')})"
            api = list(first.get("api_versions") or [])
            if api:
                text += f" [API versions: {', '.join(str(v) for v in api)}]"
            else:
                text += " [no API versions declared]"
            top = max(api) if api else 0
            if top >= OS_API_V15:
                variants = first.get("variants") or []
                text += f" [variants: {', '.join(variants)}]" if variants else " [no variants]"
            if top >= OS_API_V20:
                params = first.get("parameters") or []
                text += (f" [parameters: {', '.join(p[0] for p in params)}]" if params
                         else " [no parameters]")
            text += " [trusted]" if first.get("trusted", True) else " [untrusted]"
            (valid_nodes if ok else bad_nodes)[node] = text
            for other in rest:
                hidden[node].append(
                    f"    [hidden] path: {other.get('path')}, status: "
                    f"{_status(bool(other.get('status')), other.get('diagnose', ''))}")
        if valid_nodes and not bad_nodes:
            status = "valid"
        elif bad_nodes and not valid_nodes:
            status = "invalid"
            has_bad = True
        else:
            status = "partial valid"
            has_bad = True
        header = f"OS: {entry['name']} [global status: {status}]"
        if entry.get("hidden"):
            header += " [hidden]"
        if entry.get("blacklisted"):
            header += " [blacklisted]"
        lines.append(header)
        if entry.get("variants"):
            lines.append(f"  Variants: [{', '.join(entry['variants'])}]")
        for table in (valid_nodes, bad_nodes):
            for node in sorted(table, key=_nice_key):
                lines.append(f"  Node: {node}, status: {table[node]}")
                lines.extend(hidden[node])
        lines.append("")
    return lines, has_bad


def diagnose(args: argparse.Namespace) -> int:
    lines, has_bad = format_diagnose(query_os())
    for line in lines:
        print(line)
    return 1 if has_bad else 0
