"""Ganeti-style list output (cardume.cli.listing).

The expected strings for gnt-node, gnt-job, gnt-instance and list-fields were taken from a
real Ganeti 3.0.2 three-node cluster (same values, same layout).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from cardume import errors
from cardume.cli.listing import (
    Field,
    Mark,
    describe_fields,
    format_cell,
    format_fields_list,
    format_size,
    format_table,
    format_timestamp,
    resolve_units,
    select_fields,
)

NODE_FIELDS = {f.name: f for f in [
    Field("name", "Node", "text", "Node name"),
    Field("dtotal", "DTotal", "unit",
          "Total storage space on storage unit for instance disk allocation"),
    Field("dfree", "DFree", "unit", "Available storage space on storage unit"),
    Field("mtotal", "MTotal", "unit", "Total amount of memory of physical machine"),
    Field("mnode", "MNode", "unit", "Amount of memory used by node (dom0 for Xen)"),
    Field("mfree", "MFree", "unit", "Memory available for instance allocations"),
    Field("pinst_cnt", "Pinst", "number", "Number of instances with this node as primary"),
    Field("sinst_cnt", "Sinst", "number", "Number of instances with this node as secondary"),
    Field("role", "Role", "text", "Node role"),
    Field("pinst_list", "PriInstances", "list", "List of instances with this node as primary"),
    Field("ctime", "CTime", "timestamp", "Creation timestamp"),
    Field("master_candidate", "MasterC", "bool", "Whether node is a master candidate"),
    Field("cnos", "CNOs", "number", "Number of logical processors used by the node OS"),
    Field("tags", "Tags", "list", "Tags"),
]}
NODE_DEFAULT = ["name", "dtotal", "dfree", "mtotal", "mnode", "mfree", "pinst_cnt", "sinst_cnt"]
OFF = Mark.OFFLINE
NODE_ROWS: list[list[Any]] = [
    ["node1.gnt.test", 258019, 80908, 24105, 239, 23441, 0, 0],
    ["node2.gnt.test", 258019, 80908, 24105, 239, 23441, 0, 0],
    ["node3.gnt.test", OFF, OFF, OFF, OFF, OFF, 0, 0],
]


def node_table(**kwargs: Any) -> str:
    fields = [NODE_FIELDS[name] for name in NODE_DEFAULT]
    return format_table(fields, NODE_ROWS, **kwargs)


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# --- gnt-node list ---------------------------------------------------------------------------


def test_node_list_human_units_by_default() -> None:
    assert node_table() == (
        "Node           DTotal DFree MTotal MNode MFree Pinst Sinst\n"
        "node1.gnt.test 252.0G 79.0G  23.5G  239M 22.9G     0     0\n"
        "node2.gnt.test 252.0G 79.0G  23.5G  239M 22.9G     0     0\n"
        "node3.gnt.test      *     *      *     *     *     0     0")


def test_node_list_units_m() -> None:
    assert node_table(units="m") == (
        "Node           DTotal DFree MTotal MNode MFree Pinst Sinst\n"
        "node1.gnt.test 258019 80908  24105   239 23441     0     0\n"
        "node2.gnt.test 258019 80908  24105   239 23441     0     0\n"
        "node3.gnt.test      *     *      *     *     *     0     0")


def test_node_list_units_g_and_t() -> None:
    rows = [["node1.gnt.test", 258019, 23512]]
    fields = [NODE_FIELDS["name"], NODE_FIELDS["dtotal"], NODE_FIELDS["mfree"]]
    assert format_table(fields, rows, units="g") == (
        "Node           DTotal MFree\n"
        "node1.gnt.test  252.0  23.0")
    assert format_table(fields, rows, units="t") == (
        "Node           DTotal MFree\n"
        "node1.gnt.test    0.2   0.0")


def test_node_list_separator_switches_to_mib() -> None:
    assert node_table(separator=":") == (
        "Node:DTotal:DFree:MTotal:MNode:MFree:Pinst:Sinst\n"
        "node1.gnt.test:258019:80908:24105:239:23441:0:0\n"
        "node2.gnt.test:258019:80908:24105:239:23441:0:0\n"
        "node3.gnt.test:*:*:*:*:*:0:0")


def test_node_list_separator_with_explicit_human_units() -> None:
    assert node_table(separator=",", units="h", headers=False).splitlines()[0] == (
        "node1.gnt.test,252.0G,79.0G,23.5G,239M,22.9G,0,0")


def test_node_list_empty_separator_keeps_human_units() -> None:
    assert node_table(separator="") == (
        "NodeDTotalDFreeMTotalMNodeMFreePinstSinst\n"
        "node1.gnt.test252.0G79.0G23.5G239M22.9G00\n"
        "node2.gnt.test252.0G79.0G23.5G239M22.9G00\n"
        "node3.gnt.test*****00")


def test_node_list_no_headers_narrows_columns() -> None:
    assert node_table(headers=False) == (
        "node1.gnt.test 252.0G 79.0G 23.5G 239M 22.9G 0 0\n"
        "node2.gnt.test 252.0G 79.0G 23.5G 239M 22.9G 0 0\n"
        "node3.gnt.test      *     *     *    *     * 0 0")


def test_node_list_extra_fields(utc: None) -> None:
    names = select_fields("+role,pinst_list,ctime,master_candidate,cnos,tags", NODE_DEFAULT,
                          NODE_FIELDS)
    fields = [NODE_FIELDS[name] for name in names]
    rows = [
        ["node1.gnt.test", 258019, 80908, 24105, 239, 23512, 0, 0,
         "M", [], 1795628986, True, 2, []],
        ["node3.gnt.test", OFF, OFF, OFF, OFF, OFF, 0, 0,
         "O", [], 1795628994, False, OFF, []],
    ]
    # An empty last (left-aligned) column leaves the joining space, exactly like Ganeti.
    assert format_table(fields, rows) == (
        "Node           DTotal DFree MTotal MNode MFree Pinst Sinst Role PriInstances "
        "CTime               MasterC CNOs Tags\n"
        "node1.gnt.test 252.0G 79.0G  23.5G  239M 23.0G     0     0 M                 "
        "2026-11-25 17:49:46 Y          2 \n"
        "node3.gnt.test      *     *      *     *     *     0     0 O                 "
        "2026-11-25 17:49:54 N          * ")


def test_verbose_marks() -> None:
    fields = [NODE_FIELDS["name"], NODE_FIELDS["mfree"], NODE_FIELDS["role"]]
    rows: list[list[Any]] = [["n1", Mark.NODATA, Mark.UNKNOWN],
                             ["n2", Mark.UNAVAIL, None],
                             ["n3", Mark.OFFLINE, "R"]]
    assert format_table(fields, rows) == (
        "Node MFree Role\n"
        "n1       ? ??\n"
        "n2       - ?\n"
        "n3       * R")
    assert format_table(fields, rows, verbose=True) == (
        "Node     MFree Role\n"
        "n1    (nodata) (unknown)\n"
        "n2   (unavail) (nodata)\n"
        "n3   (offline) R")


# --- other list commands ---------------------------------------------------------------------


def test_job_list() -> None:
    fields = [Field("id", "ID", "number"), Field("status", "Status", "text"),
              Field("summary", "Summary", "list")]
    rows = [[1, "success", ["CLUSTER_POST_INIT"]],
            [2, "success", ["NODE_ADD(node2.gnt.test)"]],
            [10, "running", ["INSTANCE_CREATE(a)", "INSTANCE_STARTUP(a)"]]]
    assert format_table(fields, rows) == (
        "ID Status  Summary\n"
        " 1 success CLUSTER_POST_INIT\n"
        " 2 success NODE_ADD(node2.gnt.test)\n"
        "10 running INSTANCE_CREATE(a),INSTANCE_STARTUP(a)")


def test_empty_instance_list_prints_only_headers() -> None:
    fields = [Field("name", "Instance"), Field("hypervisor", "Hypervisor"), Field("os", "OS"),
              Field("pnode", "Primary_node"), Field("status", "Status"),
              Field("oper_ram", "Memory", "unit")]
    assert format_table(fields, []) == "Instance Hypervisor OS Primary_node Status Memory"
    assert format_table(fields, [], headers=False) == ""


def test_instance_list_right_aligned_last_column_is_padded() -> None:
    fields = [Field("name", "Instance"), Field("status", "Status"),
              Field("oper_ram", "Memory", "unit")]
    rows: list[list[Any]] = [["web1", "running", 128], ["db", "ADMIN_down", Mark.UNAVAIL],
                             ["big", "running", 1572864]]
    assert format_table(fields, rows) == (
        "Instance Status     Memory\n"
        "web1     running      128M\n"
        "db       ADMIN_down      -\n"
        "big      running      1.5T")


def test_bool_number_and_other_kinds() -> None:
    fields = [Field("name", "Name"), Field("size", "Size", "number"),
              Field("act", "Active", "bool"), Field("mem", "Memory", "unit"),
              Field("other", "SomeList", "other")]
    rows = [["nodeA", 128, False, 1468006, []],
            ["other", 512, True, 16, [1, 2, 3]],
            ["xyz", 1024, True, 4096, {"a": 1}]]
    assert format_table(fields, rows) == (
        "Name  Size Active Memory SomeList\n"
        "nodeA  128 N        1.4T []\n"
        "other  512 Y         16M [1, 2, 3]\n"
        "xyz   1024 Y        4.0G a=1")  # dicts print as Ganeti's NDParams column


def test_custom_formatter_keeps_alignment_but_not_for_marks() -> None:
    fields = [Field("name", "Name"), Field("n", "Hex", "number", formatter=hex)]
    rows: list[list[Any]] = [["a", 255], ["b", None]]
    assert format_table(fields, rows) == (
        "Name  Hex\n"
        "a    0xff\n"
        "b       ?")


def test_separator_with_percent_and_no_headers() -> None:
    fields = [Field("a", "A"), Field("b", "B", "number")]
    assert format_table(fields, [["x", 1], ["y", 22]], separator="%", headers=False) == (
        "x%1\ny%22")


def test_row_of_wrong_length_is_a_bug() -> None:
    with pytest.raises(errors.InternalError, match="2 values for 3 fields"):
        format_table([Field("a", "A"), Field("b", "B"), Field("c", "C")], [["x", "y"]])


def test_unknown_kind_is_a_bug() -> None:
    with pytest.raises(errors.InternalError, match="unknown kind 'blob'"):
        Field("x", "X", "blob")


# --- units, cells, timestamps ----------------------------------------------------------------


@pytest.mark.parametrize(("mib", "units", "text"), [
    (0, "h", "0M"),
    (239, "h", "239M"),
    (1023, "h", "1023M"),
    (1024, "h", "1.0G"),
    (7987, "h", "7.8G"),
    (4096, "h", "4.0G"),
    (1048575, "h", "1024.0G"),
    (1048576, "h", "1.0T"),
    (1572864, "h", "1.5T"),
    (258019, "m", "258019"),
    (239, "g", "0.2"),
    (258019, "g", "252.0"),
    (258019, "t", "0.2"),
    (-2048, "h", "-2048M"),
])
def test_format_size(mib: int, units: str, text: str) -> None:
    assert format_size(mib, units) == text


def test_resolve_units() -> None:
    assert resolve_units(None, None) == "h"
    assert resolve_units(None, ":") == "m"
    assert resolve_units(None, "") == "h"
    assert resolve_units("g", ":") == "g"


@pytest.mark.parametrize("units", ["x", "k", "b", "H", ""])
def test_bad_units(units: str) -> None:
    with pytest.raises(errors.WrongInput) as info:
        node_table(units=units)
    assert info.value.message == f"invalid unit {units!r}: expected one of h, m, g, t"


def test_unit_cell_with_non_number_prints_it_as_is() -> None:
    assert format_cell(Field("m", "M", "unit"), "n/a") == "n/a"


def test_timestamps(utc: None) -> None:
    assert format_timestamp(0) == "1970-01-01 00:00:00"
    assert format_timestamp(1795628989.9) == "2026-11-25 17:49:49"
    assert format_timestamp((1795628989, 433481)) == "2026-11-25 17:49:49.433481"
    assert format_timestamp([1795628989, 5]) == "2026-11-25 17:49:49.000005"
    assert format_timestamp("later") == "later"


# --- -o selection ----------------------------------------------------------------------------


def test_select_fields() -> None:
    assert select_fields(None, NODE_DEFAULT, NODE_FIELDS) == NODE_DEFAULT
    assert select_fields("name,role", NODE_DEFAULT, NODE_FIELDS) == ["name", "role"]
    assert select_fields("+role,tags", ["name"], NODE_FIELDS) == ["name", "role", "tags"]
    assert select_fields("name,name", ["name"], {"name", "x"}) == ["name", "name"]


def test_select_fields_does_not_change_the_defaults() -> None:
    default = ["name"]
    select_fields("+role", default, NODE_FIELDS)
    assert default == ["name"]


@pytest.mark.parametrize(("spec", "message"), [
    ("name,foo", "unknown field 'foo' (see list-fields)"),
    ("+foo", "unknown field 'foo' (see list-fields)"),
    ("Name", "unknown field 'Name' (see list-fields)"),
    ("", "invalid field list '': expected FIELD[,FIELD...] or +FIELD[,FIELD...]"),
    ("+", "invalid field list '+': expected FIELD[,FIELD...] or +FIELD[,FIELD...]"),
    ("name,,role", "invalid field list 'name,,role': expected FIELD[,FIELD...] or "
                   "+FIELD[,FIELD...]"),
])
def test_select_fields_errors(spec: str, message: str) -> None:
    with pytest.raises(errors.WrongInput) as info:
        select_fields(spec, NODE_DEFAULT, NODE_FIELDS)
    assert info.value.message == message


# --- list-fields -----------------------------------------------------------------------------


def test_list_fields_selected() -> None:
    fields = describe_fields(NODE_FIELDS, ["name", "mfree"])
    assert format_fields_list(fields) == (
        "Name  Type         Title Description\n"
        "name  Text         Node  Node name\n"
        "mfree Storage size MFree Memory available for instance allocations")


def test_list_fields_all_sorted_naturally() -> None:
    available = {f.name: f for f in [
        Field("name", "Name", "text", "Name"),
        Field("disk.size/10", "Disk/10", "unit", "Disk 10"),
        Field("disk.size/2", "Disk/2", "unit", "Disk 2"),
        Field("ctime", "CTime", "timestamp", "Creation timestamp"),
        Field("oper_state", "Running", "bool", "Actual state"),
        Field("tags", "Tags", "list", "Tags"),
        Field("hvparams", "HypervisorParameters", "other", "Hypervisor parameters"),
        Field("ratio", "Ratio", "float", "A ratio"),
        Field("vcpus", "VCPUs", "number", "Virtual CPUs"),
    ]}
    assert format_fields_list(describe_fields(available)) == (
        "Name         Type                  Title                Description\n"
        "ctime        Timestamp             CTime                Creation timestamp\n"
        "disk.size/2  Storage size          Disk/2               Disk 2\n"
        "disk.size/10 Storage size          Disk/10              Disk 10\n"
        "hvparams     Custom                HypervisorParameters Hypervisor parameters\n"
        "name         Text                  Name                 Name\n"
        "oper_state   Boolean               Running              Actual state\n"
        "ratio        Floating-point number Ratio                A ratio\n"
        "tags         Custom                Tags                 Tags\n"
        "vcpus        Number                VCPUs                Virtual CPUs")


def test_list_fields_separator_no_headers() -> None:
    fields = describe_fields(NODE_FIELDS, ["ctime", "name"])
    assert format_fields_list(fields, separator="|", headers=False) == (
        "ctime|Timestamp|CTime|Creation timestamp\n"
        "name|Text|Node|Node name")


def test_list_fields_unknown_name() -> None:
    with pytest.raises(errors.WrongInput) as info:
        describe_fields(NODE_FIELDS, ["name", "foo"])
    assert info.value.message == "unknown field 'foo' (see list-fields)"
