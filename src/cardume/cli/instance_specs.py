"""The values of gnt-instance's disk, NIC and parameter options, checked and turned into
opcode data: ``--disk N:size=5g,...``, ``--net N:mac=...``, ``-n PNODE[:SNODE]``,
``-B k=v``, ``-H [HYPERVISOR:]k=v``. Bad input is refused with a one-line
:class:`cardume.errors.WrongInput` naming the bad value and what was expected.
"""

from __future__ import annotations

from cardume import constants, errors
from cardume.cli.params import check_param_types, parse_ident_kv, parse_kv, parse_size

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

DISK_MODES = ("rw", "ro")
DISK_ACCESS_MODES = ("kernelspace", "userspace")

#: What ``--disk N:...`` accepts at creation, with the type of each value.
DISK_PARAMS = {"size": "size", "spindles": "int", "mode": "string", "name": "string",
               "vg": "string", "metavg": "string", "adopt": "string", "access": "string"}
#: What ``modify --disk N:modify,...`` may change.
DISK_MODIFIABLE = ("mode", "name")
NIC_PARAMS = ("mac", "ip", "mode", "link", "name", "network", "vlan")


def split_node_option(text: str | None) -> tuple[str | None, str | None]:
    """``-n PNODE[:SNODE]`` → (pnode, snode)."""
    if text is None:
        return None, None
    parts = text.split(":")
    if len(parts) > 2 or not all(parts):
        raise errors.WrongInput(
            f"invalid node specification {text!r}: expected PNODE or PNODE:SNODE")
    return parts[0], parts[1] if len(parts) == 2 else None


def parse_disks(specs: Sequence[str], sd_size: str | None,
                template: str | None) -> list[dict[str, Any]]:
    """The ``disks`` of a create: ``--disk N:k=v,...`` repeated, or ``-s SIZE``."""
    if template == constants.DT_DISKLESS:
        if specs or sd_size is not None:
            given = f"--disk {specs[0]}" if specs else f"-s {sd_size}"
            raise errors.WrongInput(
                f"{given}: the diskless template takes no disks")
        return []
    if specs and sd_size is not None:
        raise errors.WrongInput("give either --disk or -s, not both")
    if sd_size is not None:
        return [{"size": disk_size(sd_size, "-s")}]
    if not specs:
        raise errors.WrongInput(
            "no disk given: use --disk 0:size=SIZE (or -s SIZE), or -t diskless")
    by_index: dict[int, dict[str, Any]] = {}
    for text in specs:
        index, values = _indexed_spec(text, "--disk", constants.MAX_DISKS, "disks",
                                      "N:size=SIZE[,mode=ro|rw][,name=NAME][,vg=VG]")
        if index in by_index:
            raise errors.WrongInput(f"--disk {text}: disk {index} is given twice")
        by_index[index] = disk_params(values, text, f"disk {index}")
    _check_no_gaps(by_index, "disk", "--disk")
    return [by_index[i] for i in range(len(by_index))]


def parse_nics(specs: Sequence[str], no_nics: bool) -> list[dict[str, Any]]:
    """The ``nics`` of a create: ``--net N:k=v,...`` repeated; one default NIC without any.

    As in Ganeti, an index left out between given ones is a NIC with default parameters.
    """
    if no_nics:
        if specs:
            raise errors.WrongInput(f"--net {specs[0]} and --no-nics cannot be combined")
        return []
    if not specs:
        return [{}]
    by_index: dict[int, dict[str, Any]] = {}
    for text in specs:
        index, values = _indexed_spec(text, "--net", constants.MAX_NICS, "NICs",
                                      "N[:mac=MAC,ip=IP,mode=MODE,link=LINK,name=NAME]")
        if index in by_index:
            raise errors.WrongInput(f"--net {text}: NIC {index} is given twice")
        by_index[index] = nic_params(values, f"--net {text}")
    return [by_index.get(i, {}) for i in range(max(by_index) + 1)]


def _indexed_spec(text: str, option: str, limit: int, what: str,
                  expected: str) -> tuple[int, dict[str, Any]]:
    ident, values = parse_ident_kv(text)
    if not isinstance(values, dict):
        raise errors.WrongInput(f"invalid {option} {text!r}: expected {expected}")
    if not ident.isdigit():
        raise errors.WrongInput(
            f"invalid {option} {text!r}: the index {ident!r} must be a number 0..{limit - 1}")
    index = int(ident)
    if index >= limit:
        raise errors.WrongInput(
            f"{option} {text}: index {index} is out of range: an instance has at most "
            f"{limit} {what} (0..{limit - 1})")
    return index, dict(values)


def _check_no_gaps(by_index: dict[int, Any], what: str, option: str) -> None:
    missing = [i for i in range(max(by_index) + 1) if i not in by_index]
    if missing:
        given = ", ".join(str(i) for i in sorted(by_index))
        raise errors.WrongInput(
            f"{option} indexes must be 0..N-1 without gaps: {what} {missing[0]} is missing "
            f"(given: {given})")


def disk_size(value: str, where: str, what: str = "a disk") -> int:
    try:
        size = parse_size(value)
    except errors.WrongInput:
        raise errors.WrongInput(
            f"invalid size {value!r} in {where}: expected a number of MiB with an optional "
            "m/g/t suffix") from None
    if size <= 0:
        raise errors.WrongInput(f"invalid size {value!r} in {where}: {what} needs a size > 0")
    return size


def _string_values(values: dict[str, Any], where: str) -> None:
    for key, value in values.items():
        if not isinstance(value, str):
            raise errors.WrongInput(f"{where}: {key!r} needs a value ({key}=VALUE)")


def disk_params(values: dict[str, Any], text: str, label: str,
                 allowed: Iterable[str] = DISK_PARAMS) -> dict[str, Any]:
    where = f"--disk {text}"
    known = list(allowed)
    for key in values:
        if key not in known:
            raise errors.WrongInput(
                f"{where}: unknown disk parameter {key!r} (known: {', '.join(known)})")
    _string_values(values, where)
    result = dict(values)
    if "size" in result and "adopt" in result:
        raise errors.WrongInput(f"{where}: give either size or adopt for {label}, not both")
    if "size" in result:
        result["size"] = disk_size(result["size"], where)
    elif "adopt" in result:
        if "spindles" in result:
            raise errors.WrongInput(f"{where}: spindles cannot be given when adopting a disk")
        result["size"] = 0
    elif "size" in known:
        raise errors.WrongInput(f"{where}: {label} needs size=SIZE (or adopt=NAME)")
    if "mode" in result and result["mode"] not in DISK_MODES:
        raise errors.WrongInput(
            f"{where}: invalid disk mode {result['mode']!r}: expected rw or ro")
    if "access" in result and result["access"] not in DISK_ACCESS_MODES:
        raise errors.WrongInput(
            f"{where}: invalid disk access {result['access']!r}: expected "
            f"{' or '.join(DISK_ACCESS_MODES)}")
    if "spindles" in result:
        if not result["spindles"].isdigit():
            raise errors.WrongInput(
                f"{where}: invalid spindles {result['spindles']!r}: expected a number")
        result["spindles"] = int(result["spindles"])
    return result


def nic_params(values: dict[str, Any], where: str) -> dict[str, Any]:
    for key in values:
        if key not in NIC_PARAMS:
            raise errors.WrongInput(
                f"{where}: unknown NIC parameter {key!r} (known: {', '.join(NIC_PARAMS)})")
    _string_values(values, where)
    mode = values.get("mode")
    if mode is not None and mode not in constants.NIC_MODES:
        raise errors.WrongInput(
            f"{where}: invalid NIC mode {mode!r}: expected one of "
            f"{', '.join(constants.NIC_MODES)}")
    return dict(values)


def parse_beparams(text: str | None, allow_default: bool = False) -> dict[str, Any]:
    """``-B k=v,...`` as given (the master converts; ``memory`` stays ``memory``), checked."""
    values: dict[str, Any] = dict(parse_kv(text or ""))
    if allow_default:
        values = _defaults_to_none(values)
    check_param_types(values, constants.BES_PARAMETER_TYPES, "backend parameter")
    return values


def _defaults_to_none(values: dict[str, Any]) -> dict[str, Any]:
    """``k=default`` (Ganeti's spelling) is ``-k``: reset to the inherited value."""
    return {k: None if isinstance(v, str) and v.lower() == "default" else v
            for k, v in values.items()}


def parse_create_hvparams(text: str | None) -> tuple[str | None, dict[str, Any]]:
    """``-H HYPERVISOR[:k=v,...]`` → (hypervisor, its parameters as given)."""
    if text is None:
        return None, {}
    hypervisor, values = parse_ident_kv(text)
    if hypervisor not in constants.HYPER_TYPES:
        raise errors.WrongInput(
            f"invalid -H {text!r}: expected HYPERVISOR[:key=value,...] with HYPERVISOR one "
            f"of {', '.join(constants.HYPER_TYPES)}")
    if not isinstance(values, dict):
        raise errors.WrongInput(
            f"invalid -H {text!r}: a hypervisor can't be removed or reset when creating")
    params = dict(values)
    check_param_types(params, constants.HVS_PARAMETER_TYPES.get(hypervisor, {}),
                      f"hypervisor {hypervisor} parameter")
    return hypervisor, params


def parse_flat_hvparams(text: str | None, allow_default: bool = False) -> dict[str, Any]:
    """``-H k=v,...`` of startup and modify: the instance's own hypervisor's parameters."""
    values: dict[str, Any] = dict(parse_kv(text or ""))
    if allow_default:
        values = _defaults_to_none(values)
    types: dict[str, str] = {}
    for table in constants.HVS_PARAMETER_TYPES.values():
        for key, kind in table.items():
            types.setdefault(key, kind)
    check_param_types(values, types, "hypervisor parameter")
    return values

