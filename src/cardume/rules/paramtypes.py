"""Parameter types: one vocabulary for what opcode parameters and parameter dicts may hold.

Values reach the master in two shapes, and both are checked with the :class:`Type` objects
of this module:

* an **opcode parameter** arrives as JSON (built by a ``gnt-*`` command, submitted raw with
  ``gnt-debug submit-job``, read back from a stored job): its :class:`Type` checks the value
  as it is (``TNonNegInt.check(120)``); ``opcodes.Param`` names one for every parameter;
* a **dict parameter** (``-B``/``-H``/``-N``/``--node-parameters``/disk parameters, which the
  tables ``constants.*_PARAMETER_TYPES`` describe by kind name: Ganeti's VTYPEs plus
  ``list``) arrives as ``k=v`` text or as JSON: :data:`KINDS` maps each kind name to a
  :class:`Type` that also converts such text (:func:`check_param_types`), and whose check
  holds for every converted value.

Only the standard library's cheapest modules are imported: the CLI checks ``-B``/``-H``
early with :func:`check_param_types` and must start fast (no ``typing``, no dataclasses).
"""

from __future__ import annotations

import re

from cardume import errors

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    Check = Callable[[Any], bool]
    Convert = Callable[[Any], Any]


class Type:
    """A parameter type: a name for messages and docs, a check of a value and, for the kinds
    a ``k=v`` dict parameter can have, a conversion from text (it raises ValueError)."""

    __slots__ = ("name", "check", "convert")

    def __init__(self, name: str, check: Check, convert: Convert | None = None) -> None:
        self.name = name
        self.check = check
        self.convert = convert

    def __or__(self, other: Type) -> Type:
        return Type(f"{self.name} | {other.name}", lambda v: self.check(v) or other.check(v))

    def __repr__(self) -> str:
        return f"Type({self.name!r})"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_INF = float("inf")


def _is_finite(v: Any) -> bool:
    # Comparisons rather than math.isfinite: loading math costs a CLI start ~0.3 ms, and
    # NaN fails both comparisons as infinities fail one.
    return isinstance(v, (int, float)) and not isinstance(v, bool) and -_INF < v < _INF


# --- types of opcode parameters ----------------------------------------------------------

TNone = Type("None", lambda v: v is None)
TBool = Type("bool", lambda v: isinstance(v, bool))
TInt = Type("int", _is_int)
TNonNegInt = Type("non-negative int", lambda v: _is_int(v) and v >= 0)
TFloat = Type("finite number", _is_finite)
TNonNegFloat = Type("non-negative float", lambda v: _is_finite(v) and v >= 0)
TString = Type("string", lambda v: isinstance(v, str))
TNonEmptyString = Type("non-empty string", lambda v: isinstance(v, str) and bool(v))
TDict = Type("dict", lambda v: isinstance(v, dict))
TList = Type("list", lambda v: isinstance(v, list))
TStringList = Type("list of strings",
                   lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))
TIntList = Type("list of ints", lambda v: isinstance(v, list) and all(_is_int(x) for x in v))
TListOfDicts = Type("list of dicts",
                    lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v))
TMaybeString = TString | TNone
TMaybeBool = TBool | TNone
TMaybeInt = TInt | TNone
TMaybeNonNegInt = TNonNegInt | TNone
TMaybeDict = TDict | TNone
TMaybeList = TList | TNone
TMaybeStringList = TStringList | TNone


def int_range(low: int, high: int, name: str | None = None) -> Type:
    """Whole numbers from ``low`` to ``high``, both included."""
    return Type(name or f"int {low}..{high}", lambda v: _is_int(v) and low <= v <= high)


def number_range(low: float, high: float, name: str) -> Type:
    """Finite numbers (int or float) from ``low`` to ``high``, both included."""
    return Type(name, lambda v: _is_finite(v) and low <= v <= high)


# --- sizes ---------------------------------------------------------------------------------

# Patterns are compiled on first use (re caches them): compiling these three at import
# would cost every CLI start ~0.4 ms, most of which never read a size or a k=v value.
_SIZE_RE = r"([0-9]*\.?[0-9]+|[0-9]+\.)\s*([a-zA-Z]+)?"
_SIZE_FACTORS = {
    "m": 1, "mb": 1, "mib": 1,
    "g": 1024, "gb": 1024, "gib": 1024,
    "t": 1024 * 1024, "tb": 1024 * 1024, "tib": 1024 * 1024,
}
_SIZE_EXPECTED = "expected a number of MiB with an optional m/g/t suffix"


def parse_size(text: str | int, *, multiple: int = 4) -> int:
    """Return a size in MiB from ``512``, ``5g``, ``1.5T``, ``100 MiB`` ...

    Sizes are MiB unless suffixed with m/g/t (``mb``/``mib``, ``gb``/``gib``, ``tb``/``tib``
    and any case too, with optional spaces before the unit). Fractions round up, then up
    again to a multiple of ``multiple`` MiB (Ganeti uses 4, the LVM extent granularity it
    assumes everywhere; pass ``multiple=1`` for plain rounding up).
    """
    if isinstance(text, bool):
        raise errors.WrongInput(f"invalid size {str(text)!r}: " + _SIZE_EXPECTED)
    if isinstance(text, int):
        if text < 0:
            raise errors.WrongInput(f"invalid size '{text}': " + _SIZE_EXPECTED)
        return _round_up(text, multiple)
    match = re.fullmatch(_SIZE_RE, text, re.ASCII)
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


def _round_up(value: int, multiple: int) -> int:
    if multiple <= 1:
        return value
    return -(-value // multiple) * multiple


# --- kinds of dict parameters (k=v text or JSON in) --------------------------------------

_INT_RE = r"[-+]?[0-9]+"
_FLOAT_RE = r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?"


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.lower()
        if word == "true":
            return True
        if word in ("false", ""):
            return False
    raise ValueError(value)


def _to_string(value: Any) -> str:
    if value is False:  # no_k
        return ""
    if isinstance(value, str):
        return value
    raise ValueError(value)


def _to_list(value: Any) -> list[str]:
    if value is False:  # no_k
        return []
    if isinstance(value, str):
        return [] if not value else value.split(",")
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(value)


def _to_int(value: Any) -> int:
    if _is_int(value):
        return int(value)
    if isinstance(value, str) and re.fullmatch(_INT_RE, value.strip(), re.ASCII):
        return int(value)
    raise ValueError(value)


def _to_float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and re.fullmatch(_FLOAT_RE, value.strip(), re.ASCII):
        return float(value)
    raise ValueError(value)


def _to_size(value: Any) -> int:
    if isinstance(value, int | str) and not isinstance(value, bool):
        try:
            return parse_size(value)
        except errors.WrongInput:
            raise ValueError(value) from None
    raise ValueError(value)


# A kind's name is what messages say a value must be ("... must be an integer, not 'x'").
KINDS: dict[str, Type] = {
    "bool": Type("true or false", TBool.check, _to_bool),
    "int": Type("an integer", TInt.check, _to_int),
    "float": Type("a number", lambda v: isinstance(v, float), _to_float),
    "size": Type("a size in MiB with an optional m/g/t suffix", TNonNegInt.check, _to_size),
    "string": Type("a string", TString.check, _to_string),
    "maybe-string": Type("a string", TString.check, _to_string),  # no_k gives "" for both
    "list": Type("a comma-separated list", TStringList.check, _to_list),
}
"""The kinds ``constants.*_PARAMETER_TYPES`` use: Ganeti's VTYPEs plus ``list``."""

NO_PREFIX = "no_"


def check_param_types(params: Mapping[str, Any], types: Mapping[str, str],
                      what: str) -> dict[str, Any]:
    """Validate and convert parsed parameters against ``{name: kind}``; return a new dict.

    Kinds (:data:`KINDS`): ``bool`` (true/false, bare ``k``, ``no_k``), ``int``, ``float``,
    ``size`` (MiB, with an optional m/g/t suffix, as :func:`parse_size`), ``string``,
    ``maybe-string`` (``no_k`` gives ``""`` for both), ``list`` (comma-separated; ``no_k`` or
    empty gives ``[]``). A None value (``-k``, reset to the default) passes through unchecked.
    ``what`` names the family in messages, e.g. ``"backend parameter"``.
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
        ptype = KINDS.get(kind)
        if ptype is None or ptype.convert is None:
            raise errors.InternalError(f"{what} {key!r} has an unknown type {kind!r}")
        try:
            result[key] = ptype.convert(value)
        except ValueError:
            raise errors.WrongInput(
                f"{what} {key!r} must be {ptype.name}, not {_shown(key, value)}") from None
    return result


def _shown(key: str, value: Any) -> str:
    if value is True:
        return f"the bare flag {key!r}"
    if value is False:
        return f"the flag {NO_PREFIX + key!r}"
    return repr(str(value))
