"""Address pools as Ganeti keeps them: one character per subnet address in an external
and a used map; counts, the usage map gnt-network prints, and refusals naming the address."""

from __future__ import annotations

import pytest

from cardume import errors
from cardume.rules import addresspool
from cardume.rules.addresspool import AddressPool


def test_a_new_pool_reserves_network_broadcast_gateway_and_the_given_addresses() -> None:
    pool = AddressPool.new("192.0.2.0/28", "192.0.2.1", ["192.0.2.10", "192.0.2.11"])
    assert pool.ext_map == "1100000000110001"
    assert pool.usage_map() == "XX........XX...X"  # the peer's map for the same network
    assert pool.external_addresses() == ["192.0.2.0", "192.0.2.1", "192.0.2.10",
                                         "192.0.2.11", "192.0.2.15"]
    assert (pool.free_count(), pool.reserved_count()) == (11, 5)


def test_used_addresses_count_and_the_first_free_skips_them_and_held_ones() -> None:
    pool = AddressPool("192.0.2.0/28", "1100000000110001", used=["192.0.2.2"])
    assert pool.first_free() == "192.0.2.3"
    assert pool.first_free(skip=["192.0.2.3"]) == "192.0.2.4"
    assert pool.is_used("192.0.2.2") and not pool.is_reserved("192.0.2.2")
    assert pool.free_count() == 10


def test_an_exhausted_pool_has_no_free_address() -> None:
    pool = AddressPool("198.51.100.0/30", "1001", used=["198.51.100.1", "198.51.100.2"])
    assert pool.first_free() is None
    assert pool.usage_map() == "XXXX"


def test_reserve_and_release_refuse_by_name() -> None:
    pool = AddressPool.new("192.0.2.0/24", "192.0.2.1")
    pool.reserve("192.0.2.20")
    with pytest.raises(errors.AlreadyExists, match="192.0.2.20 is already in use"):
        pool.reserve("192.0.2.20", external=True)
    with pytest.raises(errors.AlreadyExists, match="192.0.2.1 is externally reserved"):
        pool.reserve("192.0.2.1")
    with pytest.raises(errors.WrongInput, match="192.0.2.0/24 does not contain 10.0.0.1"):
        pool.reserve("10.0.0.1")
    pool.release("192.0.2.20")
    with pytest.raises(errors.WrongInput, match="192.0.2.20 is not in use"):
        pool.release("192.0.2.20")
    pool.release("192.0.2.1", external=True)
    assert pool.first_free() == "192.0.2.1"


def test_usage_lines_have_ganetis_layout() -> None:
    pool = AddressPool.new("192.0.2.0/24", "192.0.2.1")
    lines = pool.usage_lines()
    assert len(lines) == 4
    assert lines[0] == "        0 XX" + "." * 62 + " 63"
    assert lines[3] == "      192 " + "." * 63 + "X 255"
    short = AddressPool.new("192.0.2.0/28").usage_lines()
    assert short == ["        0 X..............X" + " " * 48 + " 63"]


@pytest.mark.parametrize(("cidr", "words"), [
    ("192.0.2.0/33", "invalid IPv4 network '192.0.2.0/33'"),
    ("192.0.2.1/24", "invalid IPv4 network '192.0.2.1/24'"),
    ("10.0.0.0/8", "at most a /16"),
    ("198.51.100.0/31", "at least a /30"),
])
def test_networks_a_pool_cannot_be_made_of_are_refused(cidr: str, words: str) -> None:
    with pytest.raises(errors.WrongInput, match=words.replace(".", r"\.").replace("/", "/")):
        addresspool.parse_network(cidr)


def test_mac_prefix_and_addresses_are_checked() -> None:
    assert addresspool.check_mac_prefix("AA:00:0f") == "aa:00:0f"
    with pytest.raises(errors.WrongInput, match="invalid MAC address prefix 'zz:00:00'"):
        addresspool.check_mac_prefix("zz:00:00")
    assert addresspool.parse_address(" 192.0.2.5 ") == "192.0.2.5"
    with pytest.raises(errors.WrongInput, match="'2001:db8::1' is not an IPv4 address"):
        addresspool.parse_address("2001:db8::1")


def test_a_damaged_stored_map_is_refused() -> None:
    with pytest.raises(errors.InternalError, match="damaged"):
        AddressPool("192.0.2.0/30", "10")
