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
Sizes and the typed check of parsed ``k=v`` dicts come from :mod:`cardume.rules.paramtypes`
(re-exported here), which the master applies again. Nothing heavier than ``re`` is imported:
the CLI must start fast.
"""

from __future__ import annotations

from cardume import errors

# The value types live below the CLI, where the master checks the same dicts again; the
# names stay importable from here for the CLI's option parsers.
from cardume.rules.paramtypes import NO_PREFIX as NO_PREFIX
from cardume.rules.paramtypes import check_param_types as check_param_types
from cardume.rules.paramtypes import parse_size as parse_size

#: What a parsed ``k=v`` value can be: the text, True (``k``), False (``no_k``), None (``-k``).
KVValue = str | bool | None

RESET_PREFIX = "-"

_TRUE_WORDS = ("yes", "true")
_FALSE_WORDS = ("no", "false")


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
