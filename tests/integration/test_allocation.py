"""Placement without naming nodes: ``gnt-instance add`` with ``-I ALLOCATOR`` or the
cluster's default allocator, Debian's ``hail`` run through Ganeti's iallocator protocol,
``gnt-debug allocator`` to see a request and its answer, and the refusals (with nothing
left behind)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from integration_kit import Gnt, VCluster

HAIL = "/usr/lib/ganeti/3.0/usr/lib/ganeti/iallocators/hail"
needs_hail = pytest.mark.skipif(not os.path.exists(HAIL),
                                reason="Debian's ganeti-htools-3.0 (hail) is not installed")

COMMON = ["-o", "debootstrap+default", "--no-install", "--no-name-check", "--no-ip-check"]
ADD = ["gnt-instance", "add", "-t", "file", "--disk", "0:size=1g", "-B", "memory=128",
       *COMMON]


def _pnode(gnt: Gnt, name: str) -> str:
    return gnt("gnt-instance", "list", "--no-headers", "-o", "pnode", name)[1].strip()


def _names(gnt: Gnt) -> list[str]:
    return gnt("gnt-instance", "list", "--no-headers", "-o", "name")[1].split()


@needs_hail
def test_hail_places_instances_named_by_no_node(gnt: Gnt) -> None:
    for name in ("al-h1", "al-h2", "al-h3"):
        _, out, _ = gnt(*ADD, "-I", "hail", name)
        found = re.search(rf"Selected nodes for instance {name} via allocator hail: (\S+)", out)
        assert found, out
        assert _pnode(gnt, name) == found.group(1)
    # every instance here has the same size: hail keeps the equal nodes' counts even
    _, out, _ = gnt("gnt-node", "list", "--no-headers", "-o", "pinst_cnt")
    counts = [int(n) for n in out.split()]
    assert len(counts) == 3 and max(counts) - min(counts) <= 1, counts


def test_the_default_allocator_is_used_without_nodes(gnt: Gnt) -> None:
    _, info, _ = gnt("gnt-cluster", "info")
    assert "default instance allocator: cardume" in info
    _, out, _ = gnt(*ADD, "al-d1")
    assert "Selected nodes for instance al-d1 via allocator cardume" in out
    assert _pnode(gnt, "al-d1") in ("node1", "node2", "node3")


@needs_hail
def test_an_allocation_that_fits_nowhere_is_refused_with_nothing_made(gnt: Gnt) -> None:
    before = _names(gnt)
    code, _, err = gnt("gnt-instance", "add", "-t", "file", "--disk", "0:size=1g", "-B",
                       "memory=4000000", *COMMON, "-I", "hail", "al-big", check=False)
    assert code != 0
    line = err.strip().splitlines()[-1]
    assert "can't find nodes for instance al-big with allocator 'hail'" in line
    assert _names(gnt) == before


def test_allocator_names_are_checked(gnt: Gnt) -> None:
    before = _names(gnt)
    code, _, err = gnt(*ADD, "-I", "../../bin/sh", "al-bad", check=False)
    assert code != 0 and "allocator name '../../bin/sh' is not valid" in err
    code, _, err = gnt(*ADD, "-I", "no-such-allocator", "al-bad", check=False)
    assert code != 0 and "allocator 'no-such-allocator' not found" in err
    code, _, err = gnt(*ADD, "-n", "node1", "-I", "hail", "al-bad", check=False)
    assert code != 0 and "not both" in err
    assert _names(gnt) == before
    code, _, err = gnt("gnt-cluster", "modify", "--default-iallocator", "no-such-allocator",
                       check=False)
    assert code != 0 and "allocator 'no-such-allocator' not found" in err
    assert "default instance allocator: cardume" in gnt("gnt-cluster", "info")[1]


@needs_hail
def test_debug_allocator_shows_the_request_and_the_answer(gnt: Gnt) -> None:
    gnt(*ADD, "-n", "node2", "al-q0")
    _, out, _ = gnt("gnt-debug", "allocator", "--dir", "in", "-m", "allocate", "--memory",
                    "512", "--disks", "2048", "-t", "file", "-o", "debootstrap+default",
                    "al-q")
    request = json.loads(out)
    assert request["version"] == 2
    assert set(request["nodes"]) == {"node1", "node2", "node3"}
    for node in request["nodes"].values():
        assert node["free_memory"] > 0 and node["total_disk"] >= node["free_disk"] > 0
    assert request["request"]["type"] == "allocate"
    assert request["request"]["memory"] == 512
    assert request["request"]["disk_space_total"] == 2048
    assert request["request"]["required_nodes"] == 1
    assert request["instances"]["al-q0"]["nodes"] == ["node2"]
    assert request["instances"]["al-q0"]["disk_space_total"] == 1024
    _, out, _ = gnt("gnt-debug", "iallocator", "--dir", "out", "-I", "hail", "-m", "allocate",
                    "--memory", "512", "--disks", "2048", "-t", "file", "-o",
                    "debootstrap+default", "al-q")
    answer = json.loads(out)
    assert answer["success"] is True
    assert answer["result"][0] in request["nodes"]


def test_shared_storage_fails_over_where_the_allocator_says(gnt: Gnt) -> None:
    gnt("gnt-instance", "add", "-t", "sharedfile", *ADD[4:], "-n", "node1", "al-s1")
    _, out, _ = gnt("gnt-instance", "failover", "-f", "al-s1")
    assert "via allocator cardume" in out
    assert _pnode(gnt, "al-s1") in ("node2", "node3")


@needs_hail
def test_batch_create_places_the_instances_together(gnt: Gnt, tmp_path: Path) -> None:
    spec = [{"instance_name": name, "disk_template": "file", "disks": [{"size": 1024}],
             "nics": [{}], "beparams": {"memory": 128}, "os_type": "debootstrap+default",
             "no_install": True, "name_check": False, "ip_check": False}
            for name in ("al-b1", "al-b2")]
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(spec))
    _, out, _ = gnt("gnt-instance", "batch-create", "-I", "hail", str(path))
    assert "Instance al-b1: nodes" in out and "Instance al-b2: nodes" in out
    for name in ("al-b1", "al-b2"):
        found = re.search(rf"Instance {name}: nodes (\S+)", out)
        assert found and _pnode(gnt, name) == found.group(1)


def test_batch_create_refuses_a_bad_file_with_nothing_made(gnt: Gnt, tmp_path: Path) -> None:
    before = _names(gnt)
    path = tmp_path / "bad.json"
    path.write_text('{"not": "a list"}')
    code, _, err = gnt("gnt-instance", "batch-create", str(path), check=False)
    assert code != 0 and "must hold a JSON list of instance creations" in err
    path.write_text(json.dumps([{"instance_name": "al-x1", "disk_template": "file",
                                 "disks": [{"size": 1024}], "os_type": "debootstrap+default",
                                 "pnode": "node1"},
                                {"instance_name": "al-x2", "disk_template": "file",
                                 "disks": [{"size": 1024}], "os_type": "debootstrap+default"}]))
    code, _, err = gnt("gnt-instance", "batch-create", str(path), check=False)
    assert code != 0 and "some instances name their nodes and others do not" in err
    assert _names(gnt) == before


def test_change_group_moves_an_instance_where_the_allocator_says(gnt: Gnt) -> None:
    gnt("gnt-instance", "add", "-t", "sharedfile", *ADD[4:], "-n", "node1", "al-g1")
    gnt("gnt-group", "add", "al-rack2")
    gnt("gnt-group", "assign-nodes", "al-rack2", "node3")
    try:
        code, _, err = gnt("gnt-instance", "change-group", "--to", "no-such-group", "al-g1",
                           check=False)
        assert code != 0 and "node group 'no-such-group' not found" in err
        assert _pnode(gnt, "al-g1") == "node1"
        _, out, _ = gnt("gnt-instance", "change-group", "--to", "al-rack2", "al-g1")
        assert "Instance al-g1 goes to group al-rack2, nodes node3" in out
        assert _pnode(gnt, "al-g1") == "node3"
        # a file instance's disks live on its node: the allocator says it can't move
        gnt(*ADD, "-n", "node1", "al-g2")
        code, _, err = gnt("gnt-instance", "change-group", "al-g2", check=False)
        assert code != 0 and "Instances of type file cannot be relocated" in err
        assert _pnode(gnt, "al-g2") == "node1"
    finally:
        gnt("gnt-instance", "remove", "-f", "al-g1", check=False)
        gnt("gnt-group", "assign-nodes", "default", "node3")
        gnt("gnt-group", "remove", "al-rack2")


def test_rest_multi_alloc_places_and_creates_each_instance(cluster: VCluster,
                                                           gnt: Gnt) -> None:
    """POST /2/instances-multi-alloc, as a Ganeti client sends it: one job places them
    all; its result names the creation jobs, which make each instance where placed."""
    from test_rapi_daemon import curl
    body = {"instances": [{"__version__": 1, "name": name, "disk_template": "file",
                           "disks": [{"size": 1024}], "nics": [{}], "os": "debootstrap+default",
                           "mode": "create", "no_install": True, "name_check": False,
                           "ip_check": False, "beparams": {"memory": 128}}
                          for name in ("al-r1", "al-r2")]}
    status, job = curl(cluster, "/2/instances-multi-alloc", "-X", "POST", "-H",
                       "Content-Type: application/json", "-d", json.dumps(body))
    assert status == 200 and isinstance(job, int)
    gnt("gnt-job", "wait", str(job))
    status, info = curl(cluster, f"/2/jobs/{job}")
    assert status == 200 and info["status"] == "success", info
    [result] = info["opresult"]
    assert sorted(result["allocatable"]) == ["al-r1", "al-r2"] and result["failed"] == []
    for ok, created in result["jobs"]:
        assert ok
        gnt("gnt-job", "wait", str(created))
    for name in ("al-r1", "al-r2"):
        assert _pnode(gnt, name) in ("node1", "node2", "node3")
    # a body without instances is refused, and makes no job
    status, error = curl(cluster, "/2/instances-multi-alloc", "-X", "POST", "-H",
                         "Content-Type: application/json", "-d", "{}")
    assert status == 400 and "'instances'" in error["message"]
