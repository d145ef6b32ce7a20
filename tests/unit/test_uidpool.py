"""The cluster's uid pool: Ganeti's text form, and ranges added and removed."""

from __future__ import annotations

import pytest

from cardume import errors, uidpool


def test_parse_and_format() -> None:
    assert uidpool.parse("4000-4099, 5000,4100-4110") == [[4000, 4110], [5000, 5000]]
    assert uidpool.format_pool([[4000, 4110], [5000, 5000]]) == "4000-4110, 5000"
    assert uidpool.parse("") == []


@pytest.mark.parametrize(("text", "message"), [
    ("40x0", "invalid uid '40x0' in uid pool"),
    ("5000-4000", "uid range '5000-4000' in uid pool '5000-4000' ends before it starts"),
    ("0-10", "uid 0 in uid pool '0-10' is out of range"),
    ("1-", "invalid uid '' in uid pool"),
])
def test_bad_pools_refused(text: str, message: str) -> None:
    with pytest.raises(errors.WrongInput, match=message):
        uidpool.parse(text)


def test_add_and_remove() -> None:
    pool = uidpool.parse("4000-4099")
    assert uidpool.add(pool, [[4100, 4109], [6000, 6000]]) == [[4000, 4109], [6000, 6000]]
    assert uidpool.remove(pool, [[4010, 4019]]) == [[4000, 4009], [4020, 4099]]
    assert uidpool.remove(pool, [[3000, 5000]]) == []
    assert list(uidpool.uids([[7, 9], [20, 20]])) == [7, 8, 9, 20]


def test_opcode_values_checked() -> None:
    assert uidpool.check([[5, 6], [1, 2]]) == [[1, 2], [5, 6]]
    with pytest.raises(errors.WrongInput, match="expected"):
        uidpool.check([[5]])
    with pytest.raises(errors.WrongInput, match="invalid uid range 9-3"):
        uidpool.check([[9, 3]])
