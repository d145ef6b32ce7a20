"""gnt-backup's command line: Ganeti's list table, and the import's opcode leaving to the
export what the command line does not give."""

from __future__ import annotations

import argparse

import pytest

from cardume import errors
from cardume.cli import backup


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gnt-backup")
    backup.build(parser.add_subparsers(dest="command"))
    return parser.parse_args(list(argv))


def test_list_prints_ganetis_table() -> None:
    answer = {"node2": ["vm2", "vm1"], "node1": [], "node3": False}
    assert backup.format_exports(answer) == ["Node  Export", "node2 vm1", "node2 vm2",
                                             "node3 ?"]
    assert backup.format_exports(answer, headers=False, separator="|") == [
        "node2|vm1", "node2|vm2", "node3|?"]


def test_an_import_leaves_template_disks_nics_and_os_to_the_export() -> None:
    op = backup.build_import_op(parse("import", "-n", "node3", "--src-node", "node2",
                                      "--src-dir", "vm1", "vm2"))
    assert {k: op[k] for k in ("mode", "src_node", "src_path", "pnode", "disk_template",
                               "disks", "nics", "os_type")} == {
        "mode": "import", "src_node": "node2", "src_path": "vm1", "pnode": "node3",
        "disk_template": None, "disks": [], "nics": [], "os_type": None}


def test_what_an_import_is_given_overrides_the_export() -> None:
    op = backup.build_import_op(parse("import", "-n", "node3", "-t", "file", "--disk",
                                      "0:size=2g", "--net", "0:link=br1", "-o",
                                      "dummy+other", "vm2"))
    assert (op["disk_template"], op["disks"], op["os_type"]) == (
        "file", [{"size": 2048}], "dummy+other")
    assert op["nics"][0]["link"] == "br1"


def test_an_export_needs_a_target_node() -> None:
    with pytest.raises(errors.WrongInput, match="-n NODE"):
        backup.build_export_op(parse("export", "vm1"))
    op = backup.build_export_op(parse("export", "-n", "node2", "--noshutdown",
                                      "--remove-instance", "vm1"))
    assert (op["target_node"], op["shutdown"], op["remove_instance"], op["mode"]) == (
        "node2", False, True, "local")


def test_list_shows_the_fields_asked_for() -> None:
    answer = {"node1": ["vm1"], "node2": ["vm22"]}
    assert backup.format_exports(answer, fields=["export"]) == ["Export", "vm1", "vm22"]
    assert backup.format_exports(answer, fields=["export", "node"]) == [
        "Export Node", "vm1    node1", "vm22   node2"]
    with pytest.raises(errors.WrongInput, match="'size'|size"):
        backup._fields("export,size")
