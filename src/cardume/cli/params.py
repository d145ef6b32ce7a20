"""Parsing of Ganeti-style option values: sizes, yes/no, ``k=v,...`` and ``ident:k=v,...``.

The syntax follows Ganeti 3.0's command line (``man ganeti``):

* sizes are MiB unless suffixed with m/g/t (``mb``/``mib``, ``gb``/``gib``, ``tb``/``tib`` and
  any case are accepted too, with optional spaces before the unit); fractions are allowed and
  the result is rounded *up* to a whole multiple of 4 MiB, as Ganeti does (``5`` → 8,
  ``1.5g`` → 1536);
* ``k=v,k2=v2``: a bare ``k`` means True, ``no_k`` False and ``-k`` None (reset to the inherited
  default); a backslash makes the next character literal, so ``\\,`` is a comma inside a value;
* ``ident:k=v,...`` for ``-H kvm:...``, ``--disk 0:size=5g``, ``--net 1:mode=routed``; a whole
  group is removed with ``no_ident`` (False) or reset with ``-ident`` (None), which take no
  options; ``-1:...`` is a negative index, not a reset.

Every error is :class:`cardume.errors.WrongInput` with a one-line message naming the bad value.
Only the standard library is imported: the CLI must start fast.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from cardume import errors

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any

#: What a parsed ``k=v`` value can be: the text, True (``k``), False (``no_k``), None (``-k``).
KVValue = str | bool | None

NO_PREFIX = "no_"
RESET_PREFIX = "-"

#: The parameter types :func:`check_param_types` knows (Ganeti's VTYPEs plus "list").
PARAM_TYPES = frozenset({"bool", "int", "float", "size", "string", "maybe-string", "list"})

_SIZE_RE = re.compile(r"([0-9]*\.?[0-9]+|[0-9]+\.)\s*([a-zA-Z]+)?", re.ASCII)
_SIZE_FACTORS = {
    "m": 1, "mb": 1, "mib": 1,
    "g": 1024, "gb": 1024, "gib": 1024,
    "t": 1024 * 1024, "tb": 1024 * 1024, "tib": 1024 * 1024,
}
_INT_RE = re.compile(r"[-+]?[0-9]+", re.ASCII)
_FLOAT_RE = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?", re.ASCII)
_TRUE_WORDS = ("yes", "true")
_FALSE_WORDS = ("no", "false")


def parse_size(text: str | int, *, multiple: int = 4) -> int:
    """Return a size in MiB from ``512``, ``5g``, ``1.5T``, ``100 MiB`` ...

    Fractions round up, then up again to a multiple of ``multiple`` MiB (Ganeti uses 4, the
    LVM extent granularity it assumes everywhere; pass ``multiple=1`` for plain rounding up).
    """
    if isinstance(text, bool):
        raise errors.WrongInput(f"invalid size {str(text)!r}: " + _SIZE_EXPECTED)
    if isinstance(text, int):
        if text < 0:
            raise errors.WrongInput(f"invalid size '{text}': " + _SIZE_EXPECTED)
        return _round_up(text, multiple)
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise errors.WrongInput(f"invalid size {text!r}: " + _SIZE_EXPECTED)
    number, unit = match.groups()
    factor = _SIZE_FACTORS.get((unit or "m").lower())
    if factor is None:
        raise errors.WrongInput(f"invalid size {text!r}: " + _SIZE_EXPECTED)
    # Work in fractions of a MiB with integers only, so that 1.1g is exact, not 1126.4000001.
    whole, _, frac = number.partition(".")
    scale = 10 ** len(frac)
    numerator = int(whole or "0") * scale + int(frac or "0")
    mib = -(-numerator * factor // scale)
    return _round_up(mib, multiple)


_SIZE_EXPECTED = "expected a number of MiB with an optional m/g/t suffix"


def _round_up(value: int, multiple: int) -> int:
    if multiple <= 1:
        return value
    return -(-value // multiple) * multiple


def parse_bool(text: str) -> bool:
    """Return the value of a yes/no option (``-C yes``): yes/no/true/false, any case."""
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise errors.WrongInput(f"invalid value {text!r}: expected yes or no")


def split_escaped(text: str, sep: str = ",") -> list[str]:
    """Split ``text`` at every ``sep`` not preceded by a backslash, and drop the escapes.

    A backslash makes the next character literal (``a\\,b`` → ``a,b``; ``a\\\\,b`` → ``a\\``
    and ``b``); a lone trailing backslash is kept. ``""`` gives ``[""]``.
    """
    items: list[str] = []
    current: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n:
            current.append(text[i + 1])
            i += 2
            continue
        if text.startswith(sep, i):
            items.append("".join(current))
            current = []
            i += len(sep)
            continue
        current.append(char)
        i += 1
    items.append("".join(current))
    return items


def parse_kv(text: str) -> dict[str, KVValue]:
    """Parse ``k=v,k2=v2,flag,no_flag,-reset`` into a dict; ``""`` gives ``{}``."""
    result: dict[str, KVValue] = {}
    if not text:
        return result
    for item in split_escaped(text):
        if not item:
            raise errors.WrongInput(
                f"invalid parameters {text!r}: empty item, expected key=value[,key=value...]")
        value: KVValue
        if "=" in item:
            key, value = item.split("=", 1)
        elif item.startswith(NO_PREFIX):
            key, value = item[len(NO_PREFIX):], False
        elif item.startswith(RESET_PREFIX):
            key, value = item[len(RESET_PREFIX):], None
        else:
            key, value = item, True
        if not key:
            raise errors.WrongInput(
                f"invalid parameter {item!r} in {text!r}: the key is empty")
        if key in result:
            raise errors.WrongInput(f"duplicate key {key!r} in {text!r}")
        result[key] = value
    return result


def parse_ident_kv(text: str) -> tuple[str, dict[str, KVValue] | bool | None]:
    """Parse ``ident[:k=v,...]`` as used by ``-H``, ``--disk``, ``--net``.

    ``kvm`` → ``("kvm", {})``; ``kvm:a=1`` → ``("kvm", {"a": "1"})``; ``0:remove`` →
    ``("0", {"remove": True})``; ``no_kvm`` → ``("kvm", False)`` (drop the group);
    ``-kvm`` → ``("kvm", None)`` (reset it); ``-1:add`` → ``("-1", {"add": True})``.
    """
    ident, _, rest = text.partition(":")
    removal: bool | None
    if ident.startswith(NO_PREFIX):
        name, removal = ident[len(NO_PREFIX):], False
    elif ident.startswith(RESET_PREFIX) and not ident[len(RESET_PREFIX):][:1].isdigit():
        name, removal = ident[len(RESET_PREFIX):], None
    else:
        if not ident:
            raise errors.WrongInput(
                f"invalid value {text!r}: expected NAME[:key=value,...] with a non-empty NAME")
        return ident, parse_kv(rest)
    if not name:
        raise errors.WrongInput(
            f"invalid value {text!r}: expected NAME[:key=value,...] with a non-empty NAME")
    if rest:
        raise errors.WrongInput(
            f"invalid value {text!r}: options cannot be given when removing {name!r}")
    return name, removal


def parse_names_list(text: str) -> list[str]:
    """Parse ``a,b,c`` (backslash escapes a comma) into names; ``""`` gives ``[]``."""
    if not text:
        return []
    names = split_escaped(text)
    if "" in names:
        raise errors.WrongInput(
            f"invalid list {text!r}: expected comma-separated names, without empty items")
    return names


def check_param_types(params: Mapping[str, Any], types: Mapping[str, str],
                      what: str) -> dict[str, Any]:
    """Validate and convert parsed parameters against ``{name: type}``; return a new dict.

    Types: ``bool`` (true/false, bare ``k``, ``no_k``), ``int``, ``float``, ``size`` (MiB, with
    an optional m/g/t suffix, as :func:`parse_size`), ``string``, ``maybe-string`` (``no_k``
    gives ``""`` for both), ``list`` (comma-separated; ``no_k`` or empty gives ``[]``).
    A None value (``-k``, reset to the default) passes through unchecked. ``what`` names the
    family in messages, e.g. ``"backend parameter"``.
    """
    result: dict[str, Any] = {}
    for key, value in params.items():
        kind = types.get(key)
        if kind is None:
            known = ", ".join(sorted(types)) or "none"
            raise errors.WrongInput(f"unknown {what} {key!r} (known: {known})")
        if value is None:
            result[key] = None
            continue
        result[key] = _convert(key, value, kind, what)
    return result


_EXPECTED = {
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "size": "a size in MiB with an optional m/g/t suffix",
    "string": "a string",
    "maybe-string": "a string",
    "list": "a comma-separated list",
}


def _convert(key: str, value: Any, kind: str, what: str) -> Any:
    if kind not in PARAM_TYPES:
        raise errors.InternalError(f"{what} {key!r} has an unknown type {kind!r}")

    def bad() -> errors.WrongInput:
        if value is True:
            shown = f"the bare flag {key!r}"
        elif value is False:
            shown = f"the flag {NO_PREFIX + key!r}"
        else:
            shown = repr(str(value))
        return errors.WrongInput(f"{what} {key!r} must be {_EXPECTED[kind]}, not {shown}")

    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            word = value.lower()
            if word == "true":
                return True
            if word in ("false", ""):
                return False
        raise bad()
    if kind in ("string", "maybe-string"):
        if value is False:
            return ""
        if isinstance(value, str):
            return value
        raise bad()
    if kind == "list":
        if value is False:
            return []
        if isinstance(value, str):
            return [] if not value else value.split(",")
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return list(value)
        raise bad()
    if isinstance(value, bool):
        raise bad()
    if kind == "int":
        if isinstance(value, int):
            return value
        if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
            return int(value)
        raise bad()
    if kind == "float":
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str) and _FLOAT_RE.fullmatch(value.strip()):
            return float(value)
        raise bad()
    # size
    if isinstance(value, int | str):
        try:
            return parse_size(value)
        except errors.WrongInput:
            raise bad() from None
    raise bad()
