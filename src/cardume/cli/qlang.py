"""Ganeti's textual query filters (``gnt-instance list -F 'pnode == "node1" and not
admin_up'``), turned into the list form the master's Query takes (see master/qfilter.py).

The syntax, as Ganeti 3.0's command line reads it:

* ``FIELD`` alone: the field is true;
* ``FIELD == VALUE`` (also ``=``), ``!=``, ``<``, ``<=``, ``>``, ``>=``; a VALUE is a
  quoted string (``"x"`` or ``'x'``) or a whole number (``-3``);
* ``VALUE in FIELD`` / ``VALUE not in FIELD``: a list field holds (or not) the value;
* ``FIELD =~ m/REGEXP/FLAGS`` / ``!~`` (delimiters ``/ # ^ |``, the ``m`` optional, flags
  ``i`` and ``s``);
* ``FIELD =* "GLOB"`` / ``!*``: a DNS-name pattern (``*`` and ``?`` stop at dots, and
  ``"vm1"`` also matches ``vm1.example.com``);
* ``not``, ``and``, ``or`` (binding in that order) and parentheses.

:func:`names_and_filter` is Ganeti's rule for a list command's arguments: ``-F`` (or one
argument that looks like a filter) makes the argument a filter; names with ``*`` or ``?``
become a filter of patterns; plain names stay names.

Only the standard library is imported: the CLI must start fast.
"""

from __future__ import annotations

import re

from cardume import errors

TYPE_CHECKING = False  # `typing` costs every CLI start ~3 ms; only mypy needs it here
if TYPE_CHECKING:
    from typing import Any

#: An argument holding one of these is read as a filter even without -F (as Ganeti does).
FILTER_CHARS = frozenset(" \t\n\v\f\r!\"'()/<=>\\~")
GLOB_CHARS = frozenset("*?")

_BINARY = {"==": "==", "=": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_REGEXP_DELIMITERS = "/#^|"
_REGEXP_FLAGS = frozenset("is")
_KEYWORDS = frozenset({"and", "or", "not", "in"})

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<op>==|!=|<=|>=|=~|!~|=\*|!\*|<|>|=)
  | (?P<paren>[()])
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<number>[-+]?[0-9]+)
  | (?P<word>[A-Za-z][A-Za-z0-9_/.]*)
""", re.VERBOSE)


def glob_pattern(glob: str) -> str:
    """A regular expression for a DNS-name pattern: ``*`` any characters but a dot, ``?``
    one such character; the name may go on with more dot-separated parts."""
    parts = []
    for piece in re.split(r"([*?])", glob):
        if piece == "*":
            parts.append(r"[^.]*")
        elif piece == "?":
            parts.append(r"[^.]")
        else:
            parts.append(re.escape(piece))
    return "^" + "".join(parts) + r"(\..*)?$"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.tokens: list[tuple[str, str, int]] = []  # (kind, text, position), lazily

    # --- errors and tokens ----------------------------------------------------------------

    def fail(self, what: str, at: int | None = None) -> errors.WrongInput:
        where = self.pos if at is None else at
        return errors.WrongInput(f"invalid filter {self.text!r}: {what} at position "
                                 f"{where + 1}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> tuple[str, str, int]:
        self.skip_space()
        if self.pos >= len(self.text):
            return ("end", "", self.pos)
        match = _TOKEN.match(self.text, self.pos)
        if match is None or match.lastgroup is None:
            raise self.fail(f"unexpected {self.text[self.pos]!r}")
        kind, value = match.lastgroup, match.group()
        if kind == "word" and value in _KEYWORDS:
            kind = value
        return (kind, value, self.pos)

    def take(self) -> tuple[str, str, int]:
        token = self.peek()
        self.pos += len(token[1])
        return token

    def expect(self, kind: str, what: str) -> tuple[str, str, int]:
        token = self.peek()
        if token[0] != kind:
            found = f"{token[1]!r}" if token[0] != "end" else "the end"
            raise self.fail(f"expected {what}, found {found}", token[2])
        return self.take()

    # --- grammar --------------------------------------------------------------------------

    def parse(self) -> list[Any]:
        result = self.any_of()
        token = self.peek()
        if token[0] != "end":
            raise self.fail(f"expected 'and', 'or' or the end, found {token[1]!r}", token[2])
        return result

    def any_of(self) -> list[Any]:
        parts = [self.all_of()]
        while self.peek()[0] == "or":
            self.take()
            parts.append(self.all_of())
        return parts[0] if len(parts) == 1 else ["|", *parts]

    def all_of(self) -> list[Any]:
        parts = [self.negation()]
        while self.peek()[0] == "and":
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else ["&", *parts]

    def negation(self) -> list[Any]:
        if self.peek()[0] == "not":
            self.take()
            return ["!", self.negation()]
        return self.atom()

    def atom(self) -> list[Any]:
        kind, value, at = self.peek()
        if kind == "paren" and value == "(":
            self.take()
            inner = self.any_of()
            kind, value, at = self.peek()
            if (kind, value) != ("paren", ")"):
                raise self.fail(f"expected ')', found {value!r}" if kind != "end"
                                else "expected ')', found the end", at)
            self.take()
            return inner
        if kind in ("string", "number"):
            literal = self.value()
            negated = self.peek()[0] == "not"
            if negated:
                self.take()
            self.expect("in", "'in' after a value")
            field = self.expect("word", "a field name")[1]
            found = ["=[]", field, literal]
            return ["!", found] if negated else found
        if kind != "word":
            raise self.fail("expected a field name, a value or '('" if kind != "end"
                            else "expected a condition, found the end", at)
        field = self.take()[1]
        kind, op, at = self.peek()
        if kind != "op":
            return ["?", field]
        self.take()
        if op in ("=~", "!~"):
            found = ["=~", field, self.regexp()]
            return ["!", found] if op == "!~" else found
        if op in ("=*", "!*"):
            glob = self.expect("string", "a quoted pattern after " + repr(op))[1]
            found = ["=~", field, glob_pattern(_unquote(glob))]
            return ["!", found] if op == "!*" else found
        if self.peek()[0] not in ("string", "number"):
            raise self.fail(f"expected a quoted string or a number after {op!r}")
        return [_BINARY[op], field, self.value()]

    def value(self) -> Any:
        kind, text, _at = self.take()
        return int(text) if kind == "number" else _unquote(text)

    def regexp(self) -> str:
        self.skip_space()
        start = self.pos
        text = self.text
        if text.startswith("m", self.pos):
            self.pos += 1
        if self.pos >= len(text) or text[self.pos] not in _REGEXP_DELIMITERS:
            raise self.fail("expected a regular expression like m/PATTERN/ or /PATTERN/i",
                            start)
        delimiter = text[self.pos]
        body: list[str] = []
        index = self.pos + 1
        while index < len(text) and text[index] != delimiter:
            if text[index] == "\\" and index + 1 < len(text) and text[index + 1] == delimiter:
                index += 1  # an escaped delimiter is part of the pattern
            body.append(text[index])
            index += 1
        if index >= len(text):
            raise self.fail(f"regular expression not closed with {delimiter!r}", start)
        self.pos = index + 1
        match = re.compile(r"[A-Za-z]*").match(text, self.pos)
        flags = match.group() if match else ""
        self.pos += len(flags)
        unknown = sorted(set(flags) - _REGEXP_FLAGS)
        if unknown:
            raise self.fail(f"unknown regular expression flag {''.join(unknown)!r} "
                            "(expected i or s)", start)
        pattern = (f"(?{''.join(sorted(set(flags)))})" if flags else "") + "".join(body)
        try:
            re.compile(pattern)
        except re.error as err:
            raise self.fail(f"invalid regular expression {''.join(body)!r} ({err})",
                            start) from None
        return pattern


def _unquote(text: str) -> str:
    """A quoted string's content: the quotes gone, a backslash keeps the next character."""
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def parse_filter(text: str) -> list[Any]:
    """The list form of a textual filter; WrongInput naming the bad part and its position."""
    if not text.strip():
        raise errors.WrongInput("invalid filter '': expected a condition like name == \"x\"")
    return _Parser(text).parse()


def is_filter(args: list[str], force_filter: bool) -> bool:
    """Whether a list command's arguments are a filter rather than names."""
    return force_filter or (len(args) == 1 and bool(FILTER_CHARS & set(args[0])))


def names_and_filter(args: list[str], force_filter: bool, namefield: str = "name",
                     numeric: bool = False) -> tuple[list[str], list[Any] | None]:
    """What a list command asks the master for: (names, None) for plain names, or
    ([], filter) when the argument is a filter (``-F``, or one argument holding filter
    characters) or when a name is a pattern (``vm*``: every name becomes a condition)."""
    if is_filter(args, force_filter):
        if len(args) != 1:
            raise errors.WrongInput(f"--filter takes exactly one argument, the filter "
                                    f"(got {len(args)})")
        return [], parse_filter(args[0])
    if not any(GLOB_CHARS & set(arg) for arg in args):
        return args, None
    parts: list[Any] = []
    for arg in args:
        if numeric:
            if not arg.isdigit():
                raise errors.WrongInput(f"invalid job id {arg!r}: expected a number")
            parts.append(["==", namefield, int(arg)])
        elif GLOB_CHARS & set(arg):
            parts.append(["=~", namefield, glob_pattern(arg)])
        else:
            parts.append(["==", namefield, arg])
    return [], ["|", *parts]
