"""Query filters through the real master: gnt-instance/node/group/job list with Ganeti's
textual filters (-F, or one argument that reads as a filter, or name patterns), and the
list form over the master's socket (LUXI Query's 4th argument)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from integration_kit import Gnt, VCluster, os_cluster

from cardume.master.client import Client


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    """web1 and web2 on node1 (web2 stopped and tagged "old"), db1 on node2."""
    names = {"web1": "127.0.9.1", "web2": "127.0.9.2", "db1": "127.0.9.3"}
    with os_cluster(tmp_path_factory.mktemp("qfilter"), names) as vc:
        for name, node in (("web1", "node1"), ("web2", "node1"), ("db1", "node2")):
            vc.gnt("gnt-instance", "add", "-t", "diskless", "-o", "dummy+default", "-n",
                   node, name)
        vc.gnt("gnt-instance", "shutdown", "web2")
        vc.gnt("gnt-instance", "add-tags", "web2", "old")
        yield vc


def listed(gnt: Gnt, command: str, *args: str) -> list[str]:
    """The first column of a list command's rows."""
    out = gnt(command, "list", "--no-headers", "-o", "name", *args)[1]
    return [line.split()[0] for line in out.splitlines()]


def test_instances_by_textual_filter(gnt: Gnt) -> None:
    assert listed(gnt, "gnt-instance", "-F", 'pnode == "node1"') == ["web1", "web2"]
    # one argument holding filter characters is a filter without -F, as in Ganeti
    assert listed(gnt, "gnt-instance", 'status != "running"') == ["web2"]
    assert listed(gnt, "gnt-instance", "-F", "pnode =~ m/NODE2/i") == ["db1"]
    assert listed(gnt, "gnt-instance", "-F", '"old" in tags') == ["web2"]
    assert listed(gnt, "gnt-instance", "-F", 'not (pnode == "node1" and admin_up)') == [
        "db1", "web2"]
    assert listed(gnt, "gnt-instance", "-F", 'name =* "web*" and not admin_up') == ["web2"]


def test_instances_by_name_pattern(gnt: Gnt) -> None:
    assert listed(gnt, "gnt-instance", "web*") == ["web1", "web2"]
    assert listed(gnt, "gnt-instance", "web?", "db1") == ["db1", "web1", "web2"]


def test_a_filter_on_a_live_field_not_shown(gnt: Gnt) -> None:
    """oper_state comes from the nodes: asked for the filter although not printed."""
    assert listed(gnt, "gnt-instance", "-F", "oper_state") == ["db1", "web1"]
    header = gnt("gnt-instance", "list", "-F", "not oper_state")[1].splitlines()
    assert header[0].split()[0] == "Instance" and [r.split()[0] for r in header[1:]] == [
        "web2"]


def test_nodes_groups_and_jobs_by_filter(gnt: Gnt) -> None:
    assert listed(gnt, "gnt-node", "-F", "pinst_cnt >= 2") == ["node1"]
    assert listed(gnt, "gnt-node", "-F", 'master or "db1" in pinst_list') == [
        "node1", "node2"]
    assert listed(gnt, "gnt-node", "-F", "mfree > 0 and not offline") == [
        "node1", "node2", "node3"]
    assert listed(gnt, "gnt-group", "-F", "node_cnt == 3") == ["default"]
    assert listed(gnt, "gnt-group", "-F", "node_cnt < 3") == []
    out = gnt("gnt-job", "list", "--no-headers", "-o", "id,summary", "-F",
              'status == "success" and "INSTANCE_SHUTDOWN(web2)" in summary')[1]
    assert [line.split()[1] for line in out.splitlines()] == ["INSTANCE_SHUTDOWN(web2)"]


def test_bad_filters_are_refused_in_one_line(gnt: Gnt) -> None:
    cases = [
        (["gnt-instance", "-F", "nosuch == 1"], "unknown field 'nosuch'"),
        (["gnt-instance", "-F", "name =~ m/web[/"], "invalid regular expression 'web['"),
        (["gnt-instance", "-F", "name =="], "after '==' at position 8"),
        (["gnt-node", "-F", 'pinst_cnt == "x"'], "field 'pinst_cnt' is a number"),
        (["gnt-instance", "-F", "a", "b"], "exactly one argument"),
    ]
    for (command, *args), named in cases:
        rc, out, err = gnt(command, "list", *args, check=False)
        assert rc != 0 and out == "", (args, rc, out)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and named in lines[0], (args, err)


def luxi(cluster: VCluster, *args: Any) -> Any:
    """A Query over the master's socket, as the REST daemon sends one."""
    with Client(str(cluster.node_dir("node1") / "run" / "master.sock")) as client:
        return client.call("Query", *args)


def test_the_list_form_over_the_socket(cluster: VCluster) -> None:
    reply = luxi(cluster, "instance", ["name", "admin_state"], [],
                 ["|", ["=[]", "tags", "old"], ["==", "pnode", "node2"]])
    assert json.loads(json.dumps(reply["data"])) == [["db1", "up"], ["web2", "down"]]
    # names and a filter: both must hold
    reply = luxi(cluster, "instance", ["name"], ["web1", "web2"], ["?", "admin_up"])
    assert reply["data"] == [["web1"]]
