"""OP_NODE_QUERY_STORAGE (the job behind the REST API's /2/nodes/NAME/storage) through the
real opcode path (lu_kit): rows of the fields asked for, in their order, from what each
node reports; refusals naming the bad value."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lu_kit
import pytest

from cardume import errors

NODES = ["node1.example.com", "node2.example.com"]
FILE_DIR = "/srv/ganeti/file-storage"


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[lu_kit.LuKit]:
    made = lu_kit.make(tmp_path / "kit", nodes=NODES, templates=["diskless", "file"])
    try:
        yield made
    finally:
        made.close()


def storage(kit: lu_kit.LuKit, **values: Any) -> Any:
    return json.loads(json.dumps(kit.run("OP_NODE_QUERY_STORAGE", **values)))


def test_one_row_per_unit_with_the_fields_in_their_order(kit: lu_kit.LuKit) -> None:
    rows = storage(kit, nodes=["node1"], storage_type="file",
                   output_fields=["name", "size", "used", "free", "allocatable", "node",
                                  "type"])
    [row] = rows
    name, size, used, free, allocatable, node, kind = row
    assert (name, allocatable, node, kind) == (FILE_DIR, True, NODES[0], "file")
    assert size > 0 and used >= 0 and free >= 0 and used + free <= size
    # the same units gnt-node list-storage shows (the node's own answer); asked a moment
    # later, the filesystem's free space may have moved with whatever else writes on it
    [unit] = kit.call(NODES[0], "node_storage", type="file")
    assert unit["size"] == size and abs(unit["free"] - free) <= 64


def test_every_node_when_none_is_named_and_the_default_type(kit: lu_kit.LuKit) -> None:
    # unset storage type: the first enabled template with storage (file here)
    rows = storage(kit, output_fields=["node", "type", "name"])
    assert rows == [[NODES[0], "file", FILE_DIR], [NODES[1], "file", FILE_DIR]]


def test_a_unit_by_name(kit: lu_kit.LuKit) -> None:
    assert storage(kit, output_fields=["node"], name=FILE_DIR) == [[NODES[0]], [NODES[1]]]
    assert storage(kit, output_fields=["node"], name="/elsewhere") == []


def test_a_silent_node_is_left_out_with_a_warning(kit: lu_kit.LuKit) -> None:
    kit.transport.down.add(NODES[1])
    assert storage(kit, output_fields=["node"]) == [[NODES[0]]]
    assert any(f"can't get storage data from node {NODES[1]}" in line for line in kit.log())


@pytest.mark.parametrize(("values", "message"), [
    ({"output_fields": ["name", "bogus"]}, "Unknown output fields selected: bogus"),
    ({"output_fields": []}, "no output fields selected"),
    ({"output_fields": ["name"], "storage_type": "nope"},
     "parameter 'storage_type' must be one of"),
])
def test_bad_input_is_refused_before_a_job_exists(kit: lu_kit.LuKit, values: dict[str, Any],
                                                  message: str) -> None:
    before = kit.queue.job_ids()
    with pytest.raises(errors.WrongInput, match=message):
        storage(kit, **values)
    assert kit.queue.job_ids() == before


def test_a_storage_type_no_enabled_template_uses_is_refused(kit: lu_kit.LuKit) -> None:
    with pytest.raises(errors.WrongInput, match="No disk template of storage type 'lvm-vg' "
                                                "is enabled in this cluster. Enabled disk "
                                                "templates are: diskless,file"):
        storage(kit, output_fields=["name"], storage_type="lvm-vg")


def test_an_unknown_node_fails_naming_it(kit: lu_kit.LuKit) -> None:
    with pytest.raises(errors.UnknownEntity, match="node9"):
        storage(kit, output_fields=["name"], nodes=["node9"])
