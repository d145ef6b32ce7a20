"""The built-in allocator's allocate and multi-allocate answers, checked as an admin would."""

from __future__ import annotations

import json
from pathlib import Path

import alloc_kit as kit
import pytest

from cardume.allocator import protocol
from cardume.allocator.model import RequestError, parse
from cardume.allocator.score import request_score

PEER = Path("/work/notes/peer")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("template", ["drbd", "plain", "sharedfile", "diskless"])
def test_allocation_respects_memory_disk_n1(seed: int, template: str) -> None:
    data = kit.random_cluster(seed, 12, 30)
    req = kit.allocate(data, template=template, memory=2048, disk=4096)
    ans = protocol.answer(req)
    assert ans["success"], ans["info"]
    nodes = ans["result"]
    assert len(nodes) == (2 if template == "drbd" else 1)
    assert kit.placement_problems(req, "new1", nodes, req["request"]) == []


def test_offline_and_drained_nodes_never_chosen() -> None:
    data = kit.cluster(4)
    data["nodes"]["node1"]["offline"] = True
    data["nodes"]["node2"]["drained"] = True
    data["nodes"]["node3"]["vm_capable"] = False
    ans = protocol.answer(kit.allocate(data, template="plain"))
    assert ans["success"] and ans["result"] == ["node4"]
    ans = protocol.answer(kit.allocate(data, template="drbd"))
    assert not ans["success"]
    assert "node1: offline" in ans["info"] and "node2: drained" in ans["info"]
    assert "node3: not vm_capable" in ans["info"]


def test_drbd_pair_in_one_group_on_two_nodes() -> None:
    groups = {"g1": kit.group("g1"), "g2": kit.group("g2")}
    data = kit.cluster(6, groups=groups)
    for j in range(3):  # fill g1 a little so the choice is not trivial
        kit.add_instance(data, f"i{j}", ["node1", "node3"], memory=1024)
    ans = protocol.answer(kit.allocate(data, template="drbd"))
    p, s = ans["result"]
    assert p != s
    assert data["nodes"][p]["group"] == data["nodes"][s]["group"]


def test_preferred_group_before_last_resort_and_never_unallocable() -> None:
    groups = {"g1": kit.group("g1", "last_resort"), "g2": kit.group("g2", "unallocable"),
              "g3": kit.group("g3")}
    data = kit.cluster(6, groups=groups)
    data["nodes"]["node3"]["free_memory"] = 2000  # g3 is fuller, still preferred
    ans = protocol.answer(kit.allocate(data, template="plain"))
    assert data["nodes"][ans["result"][0]]["group"] == "g3"
    data["nodes"]["node3"]["offline"] = data["nodes"]["node6"]["offline"] = True
    ans = protocol.answer(kit.allocate(data, template="plain"))
    assert data["nodes"][ans["result"][0]]["group"] == "g1"
    data["nodes"]["node1"]["drained"] = data["nodes"]["node4"]["drained"] = True
    ans = protocol.answer(kit.allocate(data, template="plain"))
    assert not ans["success"]
    assert "node2: its group g2 is unallocable" in ans["info"]


def test_refusal_names_each_node_and_its_reason() -> None:
    data = kit.cluster(5, memory=8192, disk=20480)
    data["nodes"]["node1"]["offline"] = True
    data["nodes"]["node2"]["free_memory"] = 1500
    data["nodes"]["node3"]["free_disk"] = 2048
    kit.add_instance(data, "vm7", ["node5", "node4"], memory=7000, disk=1024)
    req = kit.allocate(data, template="plain", memory=2048, disk=10240)
    ans = protocol.answer(req)
    assert not ans["success"]
    info = ans["info"]
    assert "node1: offline" in info
    assert "node2: not enough memory (549 MiB short)" in info
    assert "node3: volume group full (needs 10240 MiB, 2048 free)" in info
    assert "node4: would break N+1 for instance vm7 (if node5 fails)" in info
    assert "node5: not enough memory" in info
    assert ans["result"] == []


def test_policy_refusal_in_ganeti_words() -> None:
    data = kit.cluster(2)
    ans = protocol.answer(kit.allocate(data, template="plain", disk=100))
    assert not ans["success"]
    assert "disk-size/0 value 100 is not in range [1024, 1048576]" in ans["info"]
    data["nodegroups"][kit.GROUP_UUID]["ipolicy"]["disk-templates"] = ["plain"]
    ans = protocol.answer(kit.allocate(data, template="drbd"))
    assert "Disk template drbd is not allowed" in ans["info"]


def test_vcpu_ratio_and_exclusion_tags() -> None:
    data = kit.cluster(2, cpus=2)
    data["cluster_tags"] = ["htools:iextags:service"]
    kit.add_instance(data, "dns1", ["node1"], template="plain", tags=["service:dns"])
    req = kit.allocate(data, template="plain", tags=["service:dns"])
    assert protocol.answer(req)["result"] == ["node2"]
    data["nodes"]["node2"]["reserved_cpus"] = 3
    req = kit.allocate(data, template="plain", vcpus=6, tags=["service:dns"])
    ans = protocol.answer(req)
    assert not ans["success"]
    assert "node1: exclusion tag service:dns already used by instance dns1" in ans["info"]
    assert "node2: too many vcpus (9 on 2 cpus, policy vcpu-ratio 4)" in ans["info"]


def test_lowest_score_is_chosen() -> None:
    data = kit.random_cluster(3, 8, 16)
    req = kit.allocate(data, template="plain")
    chosen = protocol.answer(req)["result"][0]
    scores = {}
    for name, node in req["nodes"].items():
        if node["offline"]:
            continue
        placed = json.loads(json.dumps(req))
        kit.add_instance(placed, "new1", [name], template="plain", memory=512, disk=2048)
        scores[name] = request_score(parse(placed)[0])
    assert scores[chosen] == pytest.approx(min(scores.values()))


def test_multi_allocate_places_each_and_names_failures() -> None:
    data = kit.cluster(3, memory=4096)
    req = json.loads(json.dumps(data))
    specs = []
    for i in range(4):
        s = kit.spec(f"new{i}", "plain", memory=2000)
        s.update(required_nodes=1, group_name=None)
        specs.append(s)
    req["request"] = {"instances": specs, "type": "multi-allocate"}
    ans = protocol.answer(req)
    done, failed = ans["result"]
    assert len(done) == 3 and failed == ["new3"]
    assert sorted(n[0] for _, n in done) == ["node1", "node2", "node3"]
    assert "no placement for instance new3: node1: not enough memory" in ans["info"]


@pytest.mark.parametrize("name", ["allocate", "multi-allocate", "node-evacuate",
                                  "change-group"])
def test_peer_requests_answered(name: str) -> None:
    path = PEER / f"ialloc-{name}.json"
    if not path.exists():
        pytest.skip(f"peer capture {path} is missing")
    ans = protocol.answer(json.loads(path.read_text()))
    assert set(ans) == {"success", "info", "result"}
    if name == "allocate":
        assert ans["success"] and ans["result"] == ["node2.gnt.test"]  # hail's choice too
    elif name == "multi-allocate":
        assert [n for n, _ in ans["result"][0]] == ["newx0", "newx1"]
    else:
        moved, failed, jobs = ans["result"]
        assert moved == [] and [f[0] for f in failed] == ["pv1"] and jobs == []


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("nodes"), "missing key 'nodes'"),
    (lambda d: d["request"].update(type="bogus"), "type 'bogus' is not one of"),
    (lambda d: d["nodes"]["node1"].update(free_memory="lots"), "'free_memory' must be a number"),
    (lambda d: d["request"].update(required_nodes=3), "required_nodes must be 1 or 2"),
    (lambda d: d["nodes"]["node1"].update(group="nope"), "group 'nope' is not in nodegroups"),
])
def test_malformed_request_one_line_error(mutate, message) -> None:
    req = kit.allocate(kit.cluster(2))
    mutate(req)
    with pytest.raises(RequestError, match=message) as err:
        protocol.answer(req)
    assert "\n" not in str(err.value)


def test_console_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "req.json"
    good.write_text(json.dumps(kit.allocate(kit.cluster(3), template="plain")))
    assert protocol.main([str(good)]) == 0
    assert json.loads(capsys.readouterr().out)["success"] is True
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert protocol.main([str(bad)]) == 1
    err = capsys.readouterr().err
    assert "not valid JSON" in err and err.count("\n") == 1
    assert protocol.main([str(tmp_path / "missing.json")]) == 1
