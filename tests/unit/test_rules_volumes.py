"""Volume names: one rule set, which the master checks a request with and the node's LVM
storage applies again before any command runs, with the same words."""

from __future__ import annotations

from typing import Any

import pytest

from cardume import errors
from cardume.cmdlib import instance_common as ic
from cardume.node.storage import lvm
from cardume.rules import volumes


@pytest.mark.parametrize("name", ["xenvg", "a", "vg_1.2+x-y", "x" * volumes.NAME_MAX])
def test_valid_names_come_back(name: str) -> None:
    assert volumes.check_name(name, "volume group") == name
    assert volumes.check_lv_name(name) == name


@pytest.mark.parametrize(("name", "words"), [
    ("", "empty or not a string"),
    (None, "empty or not a string"),
    (".", "invalid volume group name '.'"),
    ("..", "invalid volume group name '..'"),
    ("-vg", "must not start with '-'"),
    ("vg/x", "only letters, digits"),
    ("x" * (volumes.NAME_MAX + 1), f"longer than {volumes.NAME_MAX} characters"),
])
def test_bad_names_are_refused_saying_why(name: Any, words: str) -> None:
    with pytest.raises(errors.WrongInput, match="^invalid volume group name") as caught:
        volumes.check_name(name, "volume group")
    assert words in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["snapshot1", "pvmove0", "data_tmeta", "x_rimage_2"])
def test_lvm_internal_names_are_refused_for_volumes_only(name: str) -> None:
    with pytest.raises(errors.WrongInput, match="LVM reserves names like it"):
        volumes.check_lv_name(name)
    assert volumes.check_name(name, "volume group") == name


@pytest.mark.parametrize(("logical_id", "what"), [
    (["bad/vg", "lv"], "volume group"), (["xenvg", "snapshot9"], "logical volume"),
    (["xenvg", "-lv"], "logical volume")])
def test_master_and_node_refuse_with_the_same_words(logical_id: list[str], what: str) -> None:
    bad = logical_id[0] if what == "volume group" else logical_id[1]
    with pytest.raises(errors.WrongInput) as on_master:
        ic.check_lvm_name(bad, what)
    with pytest.raises(errors.WrongInput) as on_node:
        lvm.parse_id(logical_id)
    assert str(on_master.value) == str(on_node.value)
