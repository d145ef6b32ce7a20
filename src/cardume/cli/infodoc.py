"""The YAML-like documents of the ``gnt-* info`` commands, in Ganeti 3.0's layout.

A document is made of four shapes, nested freely:

- a list of pairs ``(key, value)`` or ``(key, value, group)``: a mapping in the order given;
  pairs sharing a ``group`` have their values aligned (``Received:         ...``);
- a ``dict``: a mapping printed with its keys sorted;
- a ``list``: a sequence, one ``- `` item each; a ``tuple`` of plain values is printed inline
  (``[1, message, text]``);
- anything else: a value, through :func:`scalar`.

Every key is followed by ``": "`` even when its value is an empty mapping or list (the
value then printing nothing), so a line like ``  Disks: `` keeps its trailing space as in
Ganeti: scripts that match whole lines find the same ones.
"""

from __future__ import annotations

import re
import time

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

INDENT = "  "


def render(data: Any) -> str:
    """The text of a document, without the final newline."""
    return "\n".join(_block(data))


def _is_pairs(data: Any) -> bool:
    return isinstance(data, list) and bool(data) and isinstance(data[0], tuple)


def _is_inline(data: Any) -> bool:
    return isinstance(data, tuple) and not any(isinstance(v, list | tuple | dict) for v in data)


def _block(data: Any) -> list[str]:
    """The lines of ``data`` relative to where it starts: its first line continues the line
    of the key or ``- `` that introduces it, the others are indented by the caller."""
    if _is_pairs(data):
        width: dict[Any, int] = {}
        for entry in data:
            if len(entry) > 2:
                width[entry[2]] = max(width.get(entry[2], 0), len(entry[0]))
        lines: list[str] = []
        for entry in data:
            key, value = entry[0], entry[1]
            pad = " " * (width[entry[2]] - len(key)) if len(entry) > 2 else ""
            lines.extend(_keyed(f"{key}: {pad}", value))
        return lines
    if isinstance(data, dict):
        lines = []
        for key in sorted(data):
            lines.extend(_keyed(f"{key}: ", data[key]))
        return lines or [""]
    if _is_inline(data):
        return ["[" + ", ".join(scalar(v) for v in data) + "]"]
    if isinstance(data, list | tuple):
        lines = []
        for item in data:
            inner = _block(item)
            lines.append("- " + inner[0])
            lines.extend(INDENT + line for line in inner[1:])
        return lines or [""]
    return str(scalar(data)).split("\n")


def _keyed(head: str, value: Any) -> list[str]:
    """``head`` (``key: ``) and its value: a plain value on the same line, a container's
    lines below it, one level deeper."""
    if isinstance(value, dict | list) or (isinstance(value, tuple) and not _is_inline(value)):
        inner = _block(value)
        if inner == [""]:
            return [head]
        return [head, *(INDENT + line for line in inner)]
    return [head + _block(value)[0], *_block(value)[1:]]


def scalar(value: Any) -> str:
    """A plain value as Ganeti prints it: ``True``, ``None``, and a whole float without its
    ``.0`` (Ganeti's configuration hands whole numbers over as integers: ``vcpu-ratio: 4``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- the value helpers the info commands share ---------------------------------------------


def params(custom: Mapping[str, Any] | None, actual: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters of an object: its own values as they are, inherited ones as
    ``default (value)``; a non-empty mapping (a template's disk parameters) recursively."""
    custom = custom or {}
    shown: dict[str, Any] = {}
    for key, value in actual.items():
        if isinstance(value, dict) and value:
            shown[key] = params(custom.get(key) or {}, value)
        elif key in custom:
            shown[key] = scalar(custom[key])
        else:
            shown[key] = f"default ({_default_text(value)})"
    return shown


def _default_text(value: Any) -> str:
    if isinstance(value, dict) and not value:
        return "{}"
    return scalar(value)


def grouped(values: Mapping[str, Any]) -> dict[str, Any]:
    """Cluster-level parameters, every value as text, nested mappings kept."""
    return {key: grouped(value) if isinstance(value, dict) else scalar(value)
            for key, value in values.items()}


def comma(items: Iterable[Any] | None) -> str:
    return ", ".join(str(item) for item in items or [])


ISPECS = ("min", "max")
"""The bounds of a policy, in the order shown (Ganeti's order varies from run to run)."""
POLICY_RATIOS = ("vcpu-ratio", "spindle-ratio")


def policy(custom: Mapping[str, Any], effective: Mapping[str, Any],
           cluster: bool) -> list[tuple[str, Any]]:
    """An instance policy: its bounds, the standard specs (cluster only), the allowed disk
    templates and the ratios, inherited values as ``default (...)`` (a group's)."""
    if cluster:
        effective = custom
    own_bounds = custom.get("minmax")
    bounds = []
    for index, minmax in enumerate(own_bounds or effective.get("minmax") or []):
        bounds.append([(f"{key}/{index}",
                        params(minmax[key] if own_bounds else {}, minmax[key]))
                       for key in ISPECS if key in minmax])
    shown: list[tuple[str, Any]] = [("bounds specs", bounds)]
    if cluster:
        std = custom.get("std") or {}
        shown.append(("std", params(std, std)))
    templates = custom.get("disk-templates")
    shown.append(("allowed disk templates", comma(templates) if templates is not None
                  else f"default ({comma(effective.get('disk-templates'))})"))
    for key in POLICY_RATIOS:
        shown.append((key, scalar(custom[key]) if key in custom
                       else f"default ({scalar(effective.get(key))})"))
    return shown


def timestamp(value: Any) -> str:
    """Local time of an epoch to the second (``2026-12-04 04:22:03``), or ``N/A``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    return "N/A"


def split_usecs(value: Any) -> tuple[int, int] | None:
    """``(seconds, microseconds)`` of a job timestamp: an epoch float or a Ganeti pair."""
    if isinstance(value, list | tuple) and len(value) == 2:
        return int(value[0]), int(value[1])
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = int(value)
        usecs = min(round((value - seconds) * 1e6), 999999)
        return seconds, usecs
    return None


def timestamp_usecs(value: Any) -> str:
    """Local time to the microsecond (``2026-12-04 04:21:51.144193``), or ``N/A``."""
    parts = split_usecs(value)
    if parts is None:
        return "N/A"
    return f"{timestamp(parts[0])}.{parts[1]:06d}"


def nice_sorted(names: Iterable[str]) -> list[str]:
    """Names with their digit runs compared as numbers: vm2 before vm10."""
    def key(name: str) -> list[Any]:
        return [(0, int(part), "") if part.isdigit() else (1, 0, part)
                for part in re.split(r"(\d+)", name) if part]
    return sorted(names, key=key)
