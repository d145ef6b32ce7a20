"""An export's config.ini, in Ganeti's layout: written at the end of an export, read back
by an import (which takes its defaults from it).

Sections and keys are Ganeti's: ``[export]`` (version, timestamp, source node, os,
compression), ``[instance]`` (name, memory, vcpus, template, hypervisor, tags, the NICs as
``nicN_KEY`` and the disks as ``diskN_ivname/dump/size/name``, with their counts),
``[hypervisor]`` (the instance's own hypervisor parameters), ``[backend]`` (its filled
backend parameters), ``[os]`` and ``[os_private]``. Missing values are written as
``None``, as Ganeti does.
"""

from __future__ import annotations

import configparser
import io
import time
from dataclasses import dataclass, field
from typing import Any

from cardume import constants, errors, objects

EXPORT_VERSION = 0
SECTIONS = ("export", "instance", "hypervisor", "backend", "os", "os_private")
NIC_KEYS = ("mac", "ip", "network", "name")
NIC_PARAMS = ("link", "mode", "vlan")


@dataclass
class ExportInfo:
    """What an import needs from an export."""

    name: str
    os: str
    disk_template: str
    hypervisor: str | None
    disks: list[dict[str, Any]]  # {"size" (MiB), "dump", "name"}
    nics: list[dict[str, Any]]  # {"mac", "ip", "network", "name", "link", "mode", "vlan"}
    beparams: dict[str, Any] = field(default_factory=dict)
    hvparams: dict[str, Any] = field(default_factory=dict)
    osparams: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    source: str = ""
    timestamp: int = 0


class _CaseKept(configparser.ConfigParser):
    """Keys keep their case (configparser lowers them by default)."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def _parser() -> configparser.ConfigParser:
    return _CaseKept(interpolation=None)


def _text(value: Any) -> str:
    return "None" if value is None else str(value)


def build(inst: objects.Instance, *, source: str, filled_be: dict[str, Any],
          nicparams: list[dict[str, Any]], dumps: list[str],
          timestamp: int | None = None) -> str:
    """config.ini of an export of ``inst``: ``nicparams`` are each NIC's filled parameters,
    ``dumps`` the dump file of each disk."""
    parser = _parser()
    for section in SECTIONS:
        parser.add_section(section)
    parser["export"].update({
        "version": str(EXPORT_VERSION),
        "timestamp": str(int(time.time() if timestamp is None else timestamp)),
        "source": source, "os": inst.os, "compression": "none"})
    data = parser["instance"]
    data["name"] = inst.name
    for key in ("maxmem", "minmem"):
        data[key] = _text(filled_be.get(key))
    data["memory"] = _text(filled_be.get("maxmem"))
    data["vcpus"] = _text(filled_be.get("vcpus"))
    data["disk_template"] = inst.disk_template
    data["hypervisor"] = inst.hypervisor or ""
    data["tags"] = " ".join(inst.tags)
    for index, (nic, params) in enumerate(zip(inst.nics, nicparams, strict=True)):
        for key in NIC_KEYS:
            data[f"nic{index}_{key}"] = _text(getattr(nic, key))
        for key in NIC_PARAMS:
            value = params.get(key)
            data[f"nic{index}_{key}"] = "" if value is None else str(value)
    data["nic_count"] = str(len(inst.nics))
    for index, (disk, dump) in enumerate(zip(inst.disks, dumps, strict=True)):
        data[f"disk{index}_ivname"] = disk.iv_name or f"disk/{index}"
        data[f"disk{index}_dump"] = dump
        data[f"disk{index}_size"] = str(disk.size)
        data[f"disk{index}_name"] = _text(disk.name)
    data["disk_count"] = str(len(inst.disks))
    for key, value in sorted(inst.hvparams.items()):
        parser["hypervisor"][key] = _text(value)
    for key, value in sorted(filled_be.items()):
        parser["backend"][key] = _text(value)
    for key, value in sorted(inst.osparams.items()):
        parser["os"][key] = _text(value)
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


def _none(value: str | None) -> str | None:
    return None if value in (None, "", "None") else value


def _int(data: configparser.SectionProxy, key: str, where: str) -> int:
    try:
        return int(data[key])
    except KeyError:
        raise errors.WrongInput(f"{where}: [instance] has no '{key}'") from None
    except ValueError:
        raise errors.WrongInput(f"{where}: [instance] {key} is not a number: "
                                f"{data[key][:40]!r}") from None


def _typed(value: str) -> Any:
    """A parameter as written (str of a Python value) back to a bool, int or string."""
    if value in ("True", "False"):
        return value == "True"
    if value == "None":
        return None
    try:
        return int(value)
    except ValueError:
        return value


def parse(text: str, where: str = "config.ini") -> ExportInfo:
    """Read config.ini; WrongInput names what is missing or malformed."""
    parser = _parser()
    try:
        parser.read_string(text)
    except configparser.Error as err:
        first = str(err).splitlines()[0]
        raise errors.WrongInput(f"{where} is not an export configuration: {first}") from None
    for needed in ("export", "instance"):
        if not parser.has_section(needed):
            raise errors.WrongInput(f"{where} has no [{needed}] section")
    exp, data = parser["export"], parser["instance"]
    try:
        version = int(exp.get("version", "-1"))
    except ValueError:
        version = -1
    if version != EXPORT_VERSION:
        raise errors.WrongInput(f"{where}: unsupported export version "
                                f"{exp.get('version')!r} (expected {EXPORT_VERSION})")
    template = data.get("disk_template", "")
    if template not in constants.DISK_TEMPLATES:
        raise errors.WrongInput(f"{where}: unknown disk template {template[:40]!r}")
    disks = []
    for index in range(_int(data, "disk_count", where)):
        dump = _none(data.get(f"disk{index}_dump"))
        if dump is None:
            raise errors.WrongInput(f"{where}: disk {index} has no dump file")
        disks.append({"size": _int(data, f"disk{index}_size", where), "dump": dump,
                      "name": _none(data.get(f"disk{index}_name"))})
    nics = []
    for index in range(_int(data, "nic_count", where)):
        nic = {key: _none(data.get(f"nic{index}_{key}")) for key in NIC_KEYS + NIC_PARAMS}
        nics.append(nic)

    def section(name: str) -> dict[str, Any]:
        if not parser.has_section(name):
            return {}
        return {k: _typed(v) for k, v in parser[name].items()}
    return ExportInfo(
        name=data.get("name", ""), os=exp.get("os", ""), disk_template=template,
        hypervisor=_none(data.get("hypervisor")), disks=disks, nics=nics,
        beparams=section("backend"), hvparams=section("hypervisor"),
        osparams={k: v for k, v in parser["os"].items()} if parser.has_section("os") else {},
        tags=data.get("tags", "").split(), source=exp.get("source", ""),
        timestamp=int(exp.get("timestamp", "0") or 0))
