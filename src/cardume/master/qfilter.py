"""Ganeti's query filter language (design-query2), compiled against a field table.

A filter is a nested JSON list whose first item is the operator:

* ``["|", F...]`` any, ``["&", F...]`` all, ``["!", F]`` not;
* ``["?", FIELD]``: the field's value is true (a non-empty list or text, a non-zero number);
* ``["==", FIELD, VALUE]`` (also ``"="``), ``"!="``, ``"<"``, ``">"``, ``"<="``, ``">="``:
  compare with a string or a number;
* ``["=~", FIELD, REGEXP]``: the regular expression matches somewhere in the text;
* ``["=[]", FIELD, VALUE]``: the list field contains VALUE.

:func:`compile_filter` checks the whole filter up front (operators, arity, field names,
value types the field's kind can never match, regular expressions) and returns the fields it
reads and a test over their values. A field without a value in a row (a mark such as
"nodata" or "offline") makes its comparison *unknown*: ``!`` of unknown stays unknown, ``&``
and ``|`` ignore it when another operand decides, and a row whose filter ends unknown does
not match, so an unreachable node is never listed as one with, say, little free memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cardume import errors
from cardume.master.fields import QField

AND, OR, NOT, TRUE = "&", "|", "!", "?"
EQUAL, EQUAL_LEGACY, NOT_EQUAL = "==", "=", "!="
LESS, LESS_EQUAL, GREATER, GREATER_EQUAL = "<", "<=", ">", ">="
REGEXP, CONTAINS = "=~", "=[]"

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    EQUAL: lambda a, b: bool(a == b),
    EQUAL_LEGACY: lambda a, b: bool(a == b),
    NOT_EQUAL: lambda a, b: bool(a != b),
    LESS: lambda a, b: bool(a < b),
    LESS_EQUAL: lambda a, b: bool(a <= b),
    GREATER: lambda a, b: bool(a > b),
    GREATER_EQUAL: lambda a, b: bool(a >= b),
}
OPERATORS = (OR, AND, NOT, TRUE, *_COMPARE, REGEXP, CONTAINS)

#: Deeper filters are refused: a request body could otherwise exhaust the stack.
MAX_DEPTH = 64

_NUMERIC_KINDS = frozenset({"number", "unit", "float", "timestamp"})
#: Kinds whose values can be of any JSON type: checked row by row instead.
_ANY_KINDS = frozenset({"list", "other"})

#: A test's answer: True, False, or None when a field it reads has no value in the row.
Verdict = bool | None
Test = Callable[[Sequence[Any]], Verdict]


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """The fields a filter reads (in the order ``matches`` expects their values), and the
    test itself."""

    fields: tuple[QField, ...]
    test: Test

    def matches(self, values: Sequence[Any]) -> bool:
        return self.test(values) is True


def compile_filter(qfilter: Any, table: Mapping[str, QField], what: str) -> CompiledFilter:
    """Check ``qfilter`` against the field table of ``what``; WrongInput names what is bad."""
    compiler = _Compiler(table, what)
    test = compiler.compile(qfilter, 1)
    return CompiledFilter(tuple(compiler.fields), test)


def _show(part: Any) -> str:
    """A filter (part) as it appears in a one-line error, cut short if long."""
    try:
        text = json.dumps(part)
    except (TypeError, ValueError):
        text = repr(part)
    return text if len(text) <= 80 else text[:77] + "..."


def _no_value(value: Any) -> bool:
    """A cell that carries no value: None or a mark ({"_rs": ...})."""
    return value is None or (value.__class__ is dict and "_rs" in value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Compiler:
    def __init__(self, table: Mapping[str, QField], what: str) -> None:
        self.table = table
        self.what = what
        self.fields: list[QField] = []
        self._index: dict[str, int] = {}

    def compile(self, part: Any, depth: int) -> Test:
        if depth > MAX_DEPTH:
            raise errors.WrongInput(f"query filter nested deeper than {MAX_DEPTH} levels")
        if not isinstance(part, list) or not part:
            raise errors.WrongInput(f"invalid query filter {_show(part)}: expected a list "
                                    "starting with an operator, like [\"==\", \"name\", \"x\"]")
        op, args = part[0], part[1:]
        if op in (AND, OR):
            return self._logic(op, [self.compile(p, depth + 1) for p in args])
        if op == NOT:
            self._arity(part, 1, "one filter")
            inner = self.compile(args[0], depth + 1)

            def negate(row: Sequence[Any]) -> Verdict:
                verdict = inner(row)
                return None if verdict is None else not verdict
            return negate
        if op == TRUE:
            self._arity(part, 1, "a field name")
            return self._truth(self._field(args[0], part))
        if op in _COMPARE or op in (REGEXP, CONTAINS):
            self._arity(part, 2, "a field name and a value")
            field, index = self._field(args[0], part)
            if op == REGEXP:
                return self._regexp(field, index, args[1], part)
            if op == CONTAINS:
                return self._contains(field, index, args[1], part)
            return self._compare(op, field, index, args[1], part)
        raise errors.WrongInput(
            f"unknown query filter operator {_show(op)} in {_show(part)} "
            f"(expected one of {' '.join(OPERATORS)})")

    # --- pieces ---------------------------------------------------------------------------

    @staticmethod
    def _arity(part: list[Any], count: int, what: str) -> None:
        if len(part) - 1 != count:
            raise errors.WrongInput(f"query filter operator {_show(part[0])} takes {what}, "
                                    f"got {_show(part)}")

    def _field(self, name: Any, part: list[Any]) -> tuple[QField, int]:
        if not isinstance(name, str):
            raise errors.WrongInput(f"invalid field name {_show(name)} in query filter "
                                    f"{_show(part)}: expected a string")
        field = self.table.get(name)
        if field is None:
            raise errors.WrongInput(f"unknown field '{name}' in query filter for {self.what} "
                                    f"(see 'gnt-{self.what} list-fields')")
        index = self._index.get(name)
        if index is None:
            index = self._index[name] = len(self.fields)
            self.fields.append(field)
        return field, index

    @staticmethod
    def _logic(op: str, tests: list[Test]) -> Test:
        decisive = op == OR  # an OR is decided by a true operand, an AND by a false one

        def combine(row: Sequence[Any]) -> Verdict:
            verdict: Verdict = not decisive
            for test in tests:
                answer = test(row)
                if answer is decisive:
                    return decisive
                if answer is None:
                    verdict = None
            return verdict
        return combine

    @staticmethod
    def _truth(found: tuple[QField, int]) -> Test:
        _field, index = found

        def truth(row: Sequence[Any]) -> Verdict:
            value = row[index]
            return None if _no_value(value) else bool(value)
        return truth

    def _compare(self, op: str, field: QField, index: int, value: Any,
                 part: list[Any]) -> Test:
        compare = _COMPARE[op]
        ordering = op not in (EQUAL, EQUAL_LEGACY, NOT_EQUAL)
        if field.kind == "bool":
            if ordering or not isinstance(value, bool):
                raise errors.WrongInput(
                    f"field '{field.name}' is a boolean: test it with [\"?\", \"{field.name}\"]"
                    f" (or == true/false), not {_show(part)}")
        elif field.kind in _NUMERIC_KINDS:
            if not _is_number(value):
                raise errors.WrongInput(f"field '{field.name}' is a number: compare it with a "
                                        f"number, not {_show(value)} (in {_show(part)})")
        elif field.kind == "text":
            if not isinstance(value, str):
                raise errors.WrongInput(f"field '{field.name}' is text: compare it with a "
                                        f"string, not {_show(value)} (in {_show(part)})")
        elif not (isinstance(value, str) or _is_number(value)):
            raise errors.WrongInput(f"invalid value {_show(value)} in query filter "
                                    f"{_show(part)}: expected a string or a number")
        checked = field.kind in _ANY_KINDS  # other kinds hold the checked type already
        number = _is_number(value)

        def test(row: Sequence[Any]) -> Verdict:
            actual = row[index]
            if _no_value(actual):
                return None
            if checked and (_is_number(actual) != number or
                            (not number and not isinstance(actual, str))):
                raise errors.WrongInput(
                    f"cannot compare field '{field.name}' (value {_show(actual)}) with "
                    f"{_show(value)} in query filter {_show(part)}")
            return compare(actual, value)
        return test

    def _regexp(self, field: QField, index: int, pattern: Any, part: list[Any]) -> Test:
        if not isinstance(pattern, str):
            raise errors.WrongInput(f"invalid regular expression {_show(pattern)} in query "
                                    f"filter {_show(part)}: expected a string")
        if field.kind not in _ANY_KINDS and field.kind != "text":
            raise errors.WrongInput(f"field '{field.name}' is not text: '=~' cannot match "
                                    f"it (in {_show(part)})")
        try:
            search = re.compile(pattern).search
        except re.error as err:
            raise errors.WrongInput(f"invalid regular expression {_show(pattern)} for field "
                                    f"'{field.name}': {err}") from None

        def test(row: Sequence[Any]) -> Verdict:
            actual = row[index]
            if _no_value(actual):
                return None
            if not isinstance(actual, str):
                raise errors.WrongInput(f"field '{field.name}' (value {_show(actual)}) is not "
                                        f"text: '=~' cannot match it")
            return search(actual) is not None
        return test

    def _contains(self, field: QField, index: int, value: Any, part: list[Any]) -> Test:
        if field.kind not in _ANY_KINDS:
            raise errors.WrongInput(f"field '{field.name}' is not a list: '=[]' cannot look "
                                    f"in it (in {_show(part)})")
        if not (isinstance(value, str) or _is_number(value)):
            raise errors.WrongInput(f"invalid value {_show(value)} in query filter "
                                    f"{_show(part)}: expected a string or a number")

        def test(row: Sequence[Any]) -> Verdict:
            actual = row[index]
            if _no_value(actual):
                return None
            if not isinstance(actual, list | tuple):
                raise errors.WrongInput(f"field '{field.name}' (value {_show(actual)}) is not "
                                        f"a list: '=[]' cannot look in it")
            return value in actual
        return test
