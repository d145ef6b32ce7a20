"""Parsing of Ganeti-style option values (cardume.cli.params)."""

from __future__ import annotations

from typing import Any

import pytest

from cardume import errors
from cardume.cli.params import (
    check_param_types,
    parse_bool,
    parse_ident_kv,
    parse_kv,
    parse_names_list,
    parse_size,
    split_escaped,
)

# --- sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "mib"), [
    ("512", 512),
    ("0", 0),
    ("5", 8),            # Ganeti rounds every size up to a multiple of 4 MiB
    ("130", 132),
    ("5.5", 8),
    ("128m", 128),
    ("128M", 128),
    ("1g", 1024),
    ("1G", 1024),
    ("1.5g", 1536),
    (".5g", 512),
    ("1.1g", 1128),      # 1126.4 → 1127 → 1128
    ("2t", 2 * 1024 * 1024),
    ("1.5T", 1572864),
    ("2GB", 2048),
    ("2gib", 2048),
    ("100 MiB", 100),
    ("3 t", 3 * 1024 * 1024),
])
def test_parse_size(text: str, mib: int) -> None:
    assert parse_size(text) == mib


def test_parse_size_plain_rounding_and_ints() -> None:
    assert parse_size("1.1g", multiple=1) == 1127
    assert parse_size("5", multiple=1) == 5
    assert parse_size(130) == 132
    assert parse_size(130, multiple=1) == 130


@pytest.mark.parametrize("text", ["5x", "", "-5", "1.2.3", "g", " 5", "5 g b", "1,5g", "five",
                                  "1e3", "5kb"])
def test_parse_size_errors_name_the_value(text: str) -> None:
    with pytest.raises(errors.WrongInput) as info:
        parse_size(text)
    assert info.value.message == (
        f"invalid size {text!r}: expected a number of MiB with an optional m/g/t suffix")


def test_parse_size_error_exact_message() -> None:
    with pytest.raises(errors.WrongInput,
                       match=r"^invalid size '5x': expected a number of MiB with an optional "
                             r"m/g/t suffix$"):
        parse_size("5x")


def test_parse_size_rejects_negative_int_and_bool() -> None:
    with pytest.raises(errors.WrongInput, match="invalid size '-1'"):
        parse_size(-1)
    with pytest.raises(errors.WrongInput, match="invalid size 'True'"):
        parse_size(True)


# --- yes/no ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ("yes", True), ("YES", True), ("true", True), ("True", True),
    ("no", False), ("No", False), ("false", False), ("FALSE", False),
])
def test_parse_bool(text: str, value: bool) -> None:
    assert parse_bool(text) is value


@pytest.mark.parametrize("text", ["maybe", "", "y", "1", "on"])
def test_parse_bool_errors(text: str) -> None:
    with pytest.raises(errors.WrongInput) as info:
        parse_bool(text)
    assert info.value.message == f"invalid value {text!r}: expected yes or no"


# --- escaping --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "items"), [
    ("", [""]),
    ("a", ["a"]),
    ("a,b", ["a", "b"]),
    (r"a\,b,c", ["a,b", "c"]),
    (r"a\\,b", ["a\\", "b"]),
    (r"a\\\,b", ["a\\,b"]),
    ("a\\", ["a\\"]),
    (r"x\=y", ["x=y"]),
    ("a,", ["a", ""]),
])
def test_split_escaped(text: str, items: list[str]) -> None:
    assert split_escaped(text) == items


# --- k=v -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "parsed"), [
    ("", {}),
    ("a=1", {"a": "1"}),
    ("a=1,b=two", {"a": "1", "b": "two"}),
    ("serial_console", {"serial_console": True}),
    ("no_serial_console", {"serial_console": False}),
    ("-kernel_path", {"kernel_path": None}),
    ("kernel_path=", {"kernel_path": ""}),
    ("kernel_args=ro=1", {"kernel_args": "ro=1"}),
    (r"kvm_extra=-a\,b,vcpus=2", {"kvm_extra": "-a,b", "vcpus": "2"}),
    ("no_x=5", {"no_x": "5"}),
    ("maxmem=1g,no_auto_balance,-vcpus",
     {"maxmem": "1g", "auto_balance": False, "vcpus": None}),
])
def test_parse_kv(text: str, parsed: dict[str, Any]) -> None:
    assert parse_kv(text) == parsed


def test_parse_kv_keeps_order() -> None:
    assert list(parse_kv("c=1,a=2,b")) == ["c", "a", "b"]


@pytest.mark.parametrize(("text", "message"), [
    ("a=1,a=2", "duplicate key 'a' in 'a=1,a=2'"),
    ("a=1,no_a", "duplicate key 'a' in 'a=1,no_a'"),
    ("a,-a", "duplicate key 'a' in 'a,-a'"),
    ("a=1,,b=2", "invalid parameters 'a=1,,b=2': empty item, expected key=value[,key=value...]"),
    ("a=1,", "invalid parameters 'a=1,': empty item, expected key=value[,key=value...]"),
    ("=5", "invalid parameter '=5' in '=5': the key is empty"),
    ("a=1,no_", "invalid parameter 'no_' in 'a=1,no_': the key is empty"),
    ("-", "invalid parameter '-' in '-': the key is empty"),
])
def test_parse_kv_errors(text: str, message: str) -> None:
    with pytest.raises(errors.WrongInput) as info:
        parse_kv(text)
    assert info.value.message == message


# --- ident:k=v -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "parsed"), [
    ("kvm", ("kvm", {})),
    ("kvm:", ("kvm", {})),
    ("kvm:serial_console=true,no_use_chroot",
     ("kvm", {"serial_console": "true", "use_chroot": False})),
    ("0:size=5g", ("0", {"size": "5g"})),
    ("0:size=5g,mode=ro", ("0", {"size": "5g", "mode": "ro"})),
    ("1:mode=bridged,link=br0", ("1", {"mode": "bridged", "link": "br0"})),
    ("add:size=1g", ("add", {"size": "1g"})),
    ("2:remove", ("2", {"remove": True})),
    ("1:modify,mode=rw", ("1", {"modify": True, "mode": "rw"})),
    ("-1:add,size=1g", ("-1", {"add": True, "size": "1g"})),
    ("vm:k=a:b", ("vm", {"k": "a:b"})),
    ("no_kvm", ("kvm", False)),
    ("-kvm", ("kvm", None)),
])
def test_parse_ident_kv(text: str, parsed: tuple[str, Any]) -> None:
    assert parse_ident_kv(text) == parsed


@pytest.mark.parametrize(("text", "message"), [
    ("no_kvm:a=1", "invalid value 'no_kvm:a=1': options cannot be given when removing 'kvm'"),
    ("-kvm:a=1", "invalid value '-kvm:a=1': options cannot be given when removing 'kvm'"),
    (":size=1g", "invalid value ':size=1g': expected NAME[:key=value,...] with a non-empty NAME"),
    ("", "invalid value '': expected NAME[:key=value,...] with a non-empty NAME"),
    ("-", "invalid value '-': expected NAME[:key=value,...] with a non-empty NAME"),
    ("no_", "invalid value 'no_': expected NAME[:key=value,...] with a non-empty NAME"),
    ("0:size=1g,size=2g", "duplicate key 'size' in 'size=1g,size=2g'"),
])
def test_parse_ident_kv_errors(text: str, message: str) -> None:
    with pytest.raises(errors.WrongInput) as info:
        parse_ident_kv(text)
    assert info.value.message == message


# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "names"), [
    ("", []),
    ("a", ["a"]),
    ("a,b,c", ["a", "b", "c"]),
    (r"a\,b,c", ["a,b", "c"]),
])
def test_parse_names_list(text: str, names: list[str]) -> None:
    assert parse_names_list(text) == names


@pytest.mark.parametrize("text", ["a,,b", "a,", ",a", ","])
def test_parse_names_list_errors(text: str) -> None:
    with pytest.raises(errors.WrongInput) as info:
        parse_names_list(text)
    assert info.value.message == (
        f"invalid list {text!r}: expected comma-separated names, without empty items")


# --- typed parameters ------------------------------------------------------------------------

BE_TYPES = {
    "maxmem": "size",
    "vcpus": "int",
    "auto_balance": "bool",
    "kernel_path": "string",
    "initrd_path": "maybe-string",
    "usb_devices": "list",
    "ratio": "float",
}
KNOWN = "auto_balance, initrd_path, kernel_path, maxmem, ratio, usb_devices, vcpus"


def check(text: str) -> dict[str, Any]:
    return check_param_types(parse_kv(text), BE_TYPES, "backend parameter")


def test_check_param_types_converts() -> None:
    assert check("maxmem=1g,vcpus=2,auto_balance,kernel_path=/boot/vmlinuz") == {
        "maxmem": 1024, "vcpus": 2, "auto_balance": True, "kernel_path": "/boot/vmlinuz"}
    assert check("maxmem=130,vcpus=-1,no_auto_balance") == {
        "maxmem": 132, "vcpus": -1, "auto_balance": False}
    assert check("auto_balance=TRUE") == {"auto_balance": True}
    assert check("auto_balance=false") == {"auto_balance": False}
    assert check("auto_balance=") == {"auto_balance": False}
    assert check("no_kernel_path,no_initrd_path") == {"kernel_path": "", "initrd_path": ""}
    assert check(r"usb_devices=a\,b") == {"usb_devices": ["a", "b"]}
    assert check("usb_devices=,ratio=1.5") == {"usb_devices": [], "ratio": 1.5}
    assert check("no_usb_devices,ratio=2") == {"usb_devices": [], "ratio": 2.0}


def test_check_param_types_resets_pass_through() -> None:
    assert check("-maxmem,-vcpus,-auto_balance,-kernel_path") == {
        "maxmem": None, "vcpus": None, "auto_balance": None, "kernel_path": None}


def test_check_param_types_accepts_native_values_and_does_not_mutate() -> None:
    params: dict[str, Any] = {"maxmem": 2048, "vcpus": 4, "auto_balance": True,
                              "usb_devices": ["x"], "ratio": 3}
    assert check_param_types(params, BE_TYPES, "backend parameter") == {
        "maxmem": 2048, "vcpus": 4, "auto_balance": True, "usb_devices": ["x"], "ratio": 3.0}
    assert params["ratio"] == 3


@pytest.mark.parametrize(("text", "message"), [
    ("foo=1", f"unknown backend parameter 'foo' (known: {KNOWN})"),
    ("vcpus=x", "backend parameter 'vcpus' must be an integer, not 'x'"),
    ("vcpus=1.5", "backend parameter 'vcpus' must be an integer, not '1.5'"),
    ("vcpus=", "backend parameter 'vcpus' must be an integer, not ''"),
    ("vcpus", "backend parameter 'vcpus' must be an integer, not the bare flag 'vcpus'"),
    ("no_vcpus", "backend parameter 'vcpus' must be an integer, not the flag 'no_vcpus'"),
    ("auto_balance=maybe", "backend parameter 'auto_balance' must be true or false, not 'maybe'"),
    ("auto_balance=yes", "backend parameter 'auto_balance' must be true or false, not 'yes'"),
    ("maxmem=5x",
     "backend parameter 'maxmem' must be a size in MiB with an optional m/g/t suffix, not '5x'"),
    ("maxmem",
     "backend parameter 'maxmem' must be a size in MiB with an optional m/g/t suffix, "
     "not the bare flag 'maxmem'"),
    ("kernel_path", "backend parameter 'kernel_path' must be a string, not the bare flag "
                    "'kernel_path'"),
    ("usb_devices", "backend parameter 'usb_devices' must be a comma-separated list, "
                    "not the bare flag 'usb_devices'"),
    ("ratio=abc", "backend parameter 'ratio' must be a number, not 'abc'"),
])
def test_check_param_types_errors(text: str, message: str) -> None:
    with pytest.raises(errors.WrongInput) as info:
        check(text)
    assert info.value.message == message


def test_check_param_types_no_known_parameters() -> None:
    with pytest.raises(errors.WrongInput) as info:
        check_param_types({"a": "1"}, {}, "OS parameter")
    assert info.value.message == "unknown OS parameter 'a' (known: none)"


def test_check_param_types_bad_table_is_a_bug() -> None:
    with pytest.raises(errors.InternalError, match="unknown type 'blob'"):
        check_param_types({"a": "1"}, {"a": "blob"}, "node parameter")
