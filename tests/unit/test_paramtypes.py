"""One parameter type system (cardume.rules.paramtypes): opcode types and dict kinds."""

from __future__ import annotations

from typing import Any

import pytest

from cardume import constants, errors
from cardume.rules import paramtypes
from cardume.rules.paramtypes import KINDS, check_param_types


def _kind_tables() -> list[tuple[str, dict[str, str]]]:
    tables = [("backend", constants.BES_PARAMETER_TYPES),
              ("NIC", constants.NICS_PARAMETER_TYPES),
              ("node", constants.NDS_PARAMETER_TYPES)]
    tables += [(f"hypervisor {hv}", t) for hv, t in constants.HVS_PARAMETER_TYPES.items()]
    tables += [(f"disk {dt}", t) for dt, t in constants.DISK_PARAMETER_TYPES.items()]
    return tables


def test_every_kind_the_tables_use_is_known() -> None:
    for what, table in _kind_tables():
        unknown = {name: kind for name, kind in table.items() if kind not in KINDS}
        assert unknown == {}, what


def test_every_kind_converts_text() -> None:
    assert all(kind.convert is not None for kind in KINDS.values())


@pytest.mark.parametrize(("kind", "text", "value"), [
    ("bool", "true", True), ("bool", False, False), ("int", "-3", -3), ("int", 7, 7),
    ("float", "1.5", 1.5), ("float", 2, 2.0), ("size", "1g", 1024), ("size", 130, 132),
    ("string", "x", "x"), ("string", False, ""), ("maybe-string", False, ""),
    ("list", "a,b", ["a", "b"]), ("list", False, []), ("list", ("a",), ["a"]),
])
def test_converted_values_satisfy_the_kind_type(kind: str, text: Any, value: Any) -> None:
    converted = check_param_types({"p": text}, {"p": kind}, "test parameter")["p"]
    assert converted == value
    assert KINDS[kind].check(converted)


@pytest.mark.parametrize(("kind", "text"), [
    ("bool", "maybe"), ("int", "1.5"), ("int", True), ("float", "x"), ("size", "5x"),
    ("size", -1), ("string", 3), ("list", [1]),
])
def test_bad_values_name_the_value_and_the_kind(kind: str, text: Any) -> None:
    with pytest.raises(errors.WrongInput) as info:
        check_param_types({"p": text}, {"p": kind}, "test parameter")
    assert str(info.value).startswith(f"test parameter 'p' must be {KINDS[kind].name}, not ")
    assert "\n" not in str(info.value)


def test_types_combine_and_say_what_they_want() -> None:
    maybe_port = paramtypes.int_range(1, 65535) | paramtypes.TNone
    assert maybe_port.name == "int 1..65535 | None"
    assert maybe_port.check(None) and maybe_port.check(1811)
    assert not maybe_port.check(0) and not maybe_port.check(True) and not maybe_port.check("1")
    delay = paramtypes.number_range(0, 10, "seconds")
    assert delay.check(2.5) and not delay.check(float("nan")) and not delay.check(11)


def test_the_cli_reads_the_same_functions() -> None:
    from cardume.cli import params
    assert params.check_param_types is check_param_types
    assert params.parse_size is paramtypes.parse_size
