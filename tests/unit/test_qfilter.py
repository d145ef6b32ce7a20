"""Query filters: Ganeti's list form checked and applied by the master's query
(master/qfilter.py, through run_query over a real config), and the textual form the gnt-*
list commands read (cli/qlang.py)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from cardume import errors, objects
from cardume.cli import qlang
from cardume.config.store import ConfigStore
from cardume.config.writer import ConfigWriter
from cardume.master import query
from cardume.master.fields import NODATA
from cardume.master.qfilter import MAX_DEPTH, compile_filter
from cardume.rpc.calls import NodeCalls

# --- a master with three nodes and three instances ----------------------------------------------


class FakeRpc(NodeCalls):
    """node_info answers with ``free`` MiB of memory per node; a node in ``down`` does not
    answer; every instance_info_all is empty (nothing runs)."""

    def __init__(self, free: dict[str, int], down: tuple[str, ...] = ()) -> None:
        self.free, self.down = free, down
        self.asked: list[str] = []

    async def call(self, node: objects.Node, call: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        self.asked.append(call)
        if node.name in self.down:
            raise errors.RpcError(f"node {node.name}: connection refused", node=node.name)
        if call == "instance_info_all":
            return {}
        assert call == "node_info"
        return {"memory_total": 4096, "memory_free": self.free[node.name], "memory_dom0": 100,
                "storage": [], "cpu_total": 2}


class Master:
    def __init__(self, cfg: ConfigWriter, rpc: FakeRpc) -> None:
        self.cfg, self.rpc = cfg, rpc


@pytest.fixture
def master(tmp_path: Path) -> Master:
    """node1 (master), node2 (drained, tag "rack1"), node3 (down: its node_info fails);
    vm1 and vm2 on node1 (vm2 tagged "web"), vm3 on node2 with node1 as secondary."""
    cfg = ConfigWriter(ConfigStore(os.path.join(tmp_path, "config.db")))
    group = objects.NodeGroup(name="default")
    n1, n2, n3 = (objects.Node(name=f"node{i}", primary_ip=f"127.0.0.{i}", group=group.uuid)
                  for i in (1, 2, 3))
    n2.drained, n2.tags = True, ["rack1"]
    cluster = objects.Cluster(cluster_name="c", master_node=n1.uuid,
                              enabled_hypervisors=["fake"])
    vm1 = objects.Instance(name="vm1", primary_node=n1.uuid, os="trivial+default")
    vm2 = objects.Instance(name="vm2", primary_node=n1.uuid, os="trivial+default",
                           tags=["web"], admin_state="up")
    disk = objects.Disk(dev_type="drbd", size=1024, iv_name="disk/0", nodes=[n2.uuid, n1.uuid],
                        logical_id=[n2.uuid, n1.uuid, 11000, 0, 0, "s" * 32])
    vm3 = objects.Instance(name="vm3", primary_node=n2.uuid, disk_template="drbd",
                           disks=[disk], os="debootstrap+default")
    asyncio.run(cfg.commit(add=[cluster, group, n1, n2, n3, vm1, vm2, vm3]))
    return Master(cfg, FakeRpc({"node1": 1000, "node2": 3000}, down=("node3",)))


def names(master: Master, what: str, qfilter: Any, wanted: list[str] | None = None
          ) -> list[str]:
    """The names a Query with ``qfilter`` lists (through JSON, as on the wire)."""
    reply = asyncio.run(query.run_query(master, what, ["name"],  # type: ignore[arg-type]
                                        wanted, json.loads(json.dumps(qfilter))))
    return [row[0] for row in reply["data"]]


# --- each operator --------------------------------------------------------------------------------

@pytest.mark.parametrize(("qfilter", "expected"), [
    (["==", "name", "vm2"], ["vm2"]),
    (["=", "name", "vm2"], ["vm2"]),  # Ganeti's older spelling
    (["!=", "name", "vm2"], ["vm1", "vm3"]),
    (["<", "name", "vm2"], ["vm1"]),
    (["<=", "name", "vm2"], ["vm1", "vm2"]),
    ([">", "name", "vm2"], ["vm3"]),
    ([">=", "name", "vm2"], ["vm2", "vm3"]),
    (["=~", "os", "^debootstrap"], ["vm3"]),
    (["=~", "name", "[13]"], ["vm1", "vm3"]),  # matches anywhere, not only at the start
    (["=[]", "tags", "web"], ["vm2"]),
    (["?", "admin_up"], ["vm2"]),
    (["?", "snodes"], ["vm3"]),  # a non-empty list is true
    (["!", ["?", "admin_up"]], ["vm1", "vm3"]),
    (["|", ["==", "name", "vm1"], ["==", "name", "vm3"]], ["vm1", "vm3"]),
    (["&", ["==", "pnode", "node1"], ["!", ["=[]", "tags", "web"]]], ["vm1"]),
    (["|"], []),  # nothing to satisfy: no row
    (["&"], ["vm1", "vm2", "vm3"]),  # nothing to break: every row
])
def test_each_operator_on_instances(master: Master, qfilter: Any, expected: list[str]) -> None:
    assert names(master, "instance", qfilter) == expected


def test_numbers_compare_as_numbers(master: Master) -> None:
    assert names(master, "node", [">", "pinst_cnt", 1]) == ["node1"]
    assert names(master, "node", ["==", "sinst_cnt", 1]) == ["node1"]
    assert names(master, "node", ["<=", "pinst_cnt", 1.5]) == ["node2", "node3"]


def test_names_and_a_filter_both_apply(master: Master) -> None:
    assert names(master, "instance", ["==", "pnode", "node1"], ["vm3", "vm2"]) == ["vm2"]
    with pytest.raises(errors.UnknownEntity):  # an unknown name is still refused
        names(master, "instance", ["?", "admin_up"], ["vm9"])


def test_a_live_field_the_filter_reads_is_fetched_without_being_requested(
        master: Master) -> None:
    assert names(master, "node", [">", "mfree", 2000]) == ["node2"]
    assert "node_info" in master.rpc.asked


def test_a_query_without_live_fields_asks_no_node(master: Master) -> None:
    assert names(master, "node", ["?", "drained"]) == ["node2"]
    assert names(master, "node", ["=[]", "tags", "rack1"]) == ["node2"]
    assert master.rpc.asked == []


def test_a_row_without_data_for_the_filter_does_not_match(master: Master) -> None:
    """node3 does not answer: its mfree has no value, so neither a test nor its negation
    lists it; an OR another operand decides still does."""
    reply = asyncio.run(query.run_query(master, "node", ["name", "mfree"],  # type: ignore[arg-type]
                                        None, None))
    assert reply["data"][2] == ["node3", NODATA]
    assert names(master, "node", ["<", "mfree", 2000]) == ["node1"]
    assert names(master, "node", ["!", ["<", "mfree", 2000]]) == ["node2"]
    assert names(master, "node", ["|", ["<", "mfree", 2000], ["==", "name", "node3"]]) == [
        "node1", "node3"]
    assert names(master, "node", ["&", ["<", "mfree", 2000], ["==", "name", "node3"]]) == []


def test_group_and_job_tables_filter_too(master: Master) -> None:
    assert names(master, "group", [">=", "node_cnt", 3]) == ["default"]
    assert names(master, "group", ["=[]", "node_list", "node9"]) == []


# --- errors: one line, naming the bad part ------------------------------------------------------

@pytest.mark.parametrize(("qfilter", "named"), [
    (["==", "nosuch", "x"], "unknown field 'nosuch'"),
    (["|", ["?", "admin_up"], ["!", ["?", "bogus"]]], "unknown field 'bogus'"),
    (["~~", "name", "x"], "unknown query filter operator \"~~\""),
    (["==", "name"], "operator \"==\" takes a field name and a value"),
    (["!", ["?", "admin_up"], ["?", "admin_up"]], "operator \"!\" takes one filter"),
    (["?"], "operator \"?\" takes a field name"),
    (["=~", "name", "vm[1"], "invalid regular expression \"vm[1\""),
    (["==", "name", 3], "field 'name' is text: compare it with a string, not 3"),
    (["<", "disk_usage", "big"], "field 'disk_usage' is a number"),
    (["=[]", "name", "x"], "field 'name' is not a list"),
    (["=~", "disk_usage", "1"], "field 'disk_usage' is not text"),
    (["==", "admin_up", 1], "field 'admin_up' is a boolean"),
    (["==", ["name"], "x"], "invalid field name [\"name\"]"),
    ([], "invalid query filter []"),
    ("name", "invalid query filter \"name\""),
    (["=[]", "tags", {"a": 1}], "invalid value {\"a\": 1}"),
])
def test_bad_filters_are_refused_naming_the_bad_part(master: Master, qfilter: Any,
                                                     named: str) -> None:
    with pytest.raises(errors.WrongInput) as caught:
        names(master, "instance", qfilter)
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_filter_nested_too_deep_is_refused() -> None:
    from cardume.master.fields_node import node_fields
    table = {f.name: f for f in node_fields()}
    deep: Any = ["?", "offline"]
    for _ in range(MAX_DEPTH):
        deep = ["!", deep]
    with pytest.raises(errors.WrongInput, match="nested deeper than"):
        compile_filter(deep, table, "node")
    compile_filter(deep[1], table, "node")  # one level less is fine


def test_comparing_a_value_of_another_type_fails_at_the_row(master: Master) -> None:
    """A field of kind "other" holds any type: a list compared with text is refused (as
    Ganeti refuses it) rather than silently false."""
    with pytest.raises(errors.WrongInput, match="cannot compare field 'pinst_list'"):
        names(master, "node", ["==", "pinst_list", "vm1"])


# --- the textual form (gnt-* list -F) -----------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ('name == "vm1"', ["==", "name", "vm1"]),
    ("name = 'vm1'", ["==", "name", "vm1"]),
    ('name != "vm1" and pinst_cnt >= 2', ["&", ["!=", "name", "vm1"], [">=", "pinst_cnt", 2]]),
    ("x < -3 or x > +4", ["|", ["<", "x", -3], [">", "x", 4]]),
    ("x <= 1 and not (y or z)", ["&", ["<=", "x", 1], ["!", ["|", ["?", "y"], ["?", "z"]]]]),
    ("pnode =~ m/node1/", ["=~", "pnode", "node1"]),
    ("name =~ /VM/i", ["=~", "name", "(?i)VM"]),
    ("name !~ #a/b#", ["!", ["=~", "name", "a/b"]]),
    ('"web" in tags', ["=[]", "tags", "web"]),
    ('"web" not in tags', ["!", ["=[]", "tags", "web"]]),
    ("offline", ["?", "offline"]),
    ('disk.size/0 > 100', [">", "disk.size/0", 100]),
    ('name == "say \\"hi\\""', ["==", "name", 'say "hi"']),
    ("a or b and c", ["|", ["?", "a"], ["&", ["?", "b"], ["?", "c"]]]),
])
def test_textual_filters_parse_to_the_list_form(text: str, expected: Any) -> None:
    assert qlang.parse_filter(text) == expected


def test_glob_patterns_match_dns_names() -> None:
    import re
    pattern = re.compile(qlang.parse_filter('name =* "vm*"')[2])
    assert pattern.search("vm12") and pattern.search("vm1.example.com")
    assert not pattern.search("xvm1") and not pattern.search("a.vm1")
    assert qlang.parse_filter('name !* "vm?"')[0] == "!"


@pytest.mark.parametrize(("text", "named"), [
    ("name ==", "expected a quoted string or a number after '==' at position 8"),
    ("name =~ m/node[12/", "invalid regular expression 'node[12'"),
    ("name =~ /x/q", "unknown regular expression flag 'q'"),
    ("name =~ /x", "regular expression not closed with '/'"),
    ("(offline", "expected ')', found the end"),
    ("offline drained", "found 'drained' at position 9"),
    ("name == $x", "unexpected '$' at position 9"),
    ('"x" in', "expected a field name, found the end"),
    ("", "invalid filter ''"),
])
def test_bad_textual_filters_are_refused_with_the_position(text: str, named: str) -> None:
    with pytest.raises(errors.WrongInput) as caught:
        qlang.parse_filter(text)
    assert named in str(caught.value) and "\n" not in str(caught.value)


def test_list_arguments_follow_ganetis_rule() -> None:
    assert qlang.names_and_filter(["vm1", "vm2"], False) == (["vm1", "vm2"], None)
    assert qlang.names_and_filter(['name == "vm1"'], False) == ([], ["==", "name", "vm1"])
    assert qlang.names_and_filter(["offline"], True) == ([], ["?", "offline"])
    names_, qfilter = qlang.names_and_filter(["vm*", "db1"], False)
    assert names_ == [] and qfilter is not None
    assert qfilter[0] == "|" and qfilter[2] == ["==", "name", "db1"]
    with pytest.raises(errors.WrongInput, match="exactly one argument"):
        qlang.names_and_filter(["a", "b"], True)


def test_a_parsed_filter_runs_on_the_master(master: Master) -> None:
    text = 'pnode == "node1" and not "web" in tags or name =~ /3$/'
    assert names(master, "instance", qlang.parse_filter(text)) == ["vm1", "vm3"]
