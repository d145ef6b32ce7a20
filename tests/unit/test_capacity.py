"""Capacity (hspace's job) on clusters small enough to count by hand."""

from __future__ import annotations

import alloc_kit
import balance_kit as kit
import pytest

from cardume.allocator import capacity


def _report(data: dict, spec: dict | None = None, **kw: object) -> capacity.Report:
    return capacity.capacity(kit.parse(data), spec, **kw)  # type: ignore[arg-type]


def test_memory_runs_out_first_and_counts_exactly() -> None:
    # each node: 4096 MiB free after the 512 reserved; 128 MiB instances; one MiB must stay
    data = alloc_kit.cluster(3, memory=4096 + 512)
    report = _report(data, template="diskless")
    [group] = report.groups
    assert group.count == 3 * 31 and report.total == 93
    assert group.limit == "memory"
    assert [(n.placed, n.limit) for n in group.nodes] == [(31, "memory")] * 3
    lines = capacity.machine_lines(report.as_data())
    for line in ("HTS_ALLOC_INSTANCES=93", "HTS_SPEC_MEM=128", "HTS_SPEC_DISK_TEMPLATE=diskless",
                 "HTS_INI_INST_CNT=0", "HTS_FIN_INST_CNT=93", "HTS_ALLOC_FAIL_REASON=FAILMEM",
                 "HTS_CLUSTER_NODES=3", "HTS_OK=1"):
        assert line in lines
    text = "\n".join(capacity.describe(report.as_data()))
    assert "93 more instances fit" in text and "what runs out first: memory" in text


def test_cpus_by_vcpu_ratio() -> None:
    # 8 cpus x vcpu-ratio 4 = 32 vCPUs, 1 reserved: 15 instances of 2 vCPUs per node
    data = alloc_kit.cluster(2, memory=65536)
    report = _report(data, {"cpu-count": 2}, template="diskless")
    assert report.total == 30 and report.groups[0].limit == "cpus"
    assert "too many vcpus" in report.groups[0].nodes[0].reason


def test_disk_runs_out() -> None:
    # 51200 MiB of disk per node, 10240 per instance, some must stay free: 4 per node
    data = alloc_kit.cluster(2, memory=65536, disk=51200)
    report = _report(data, {"disk-size": 10240}, template="file")
    assert report.total == 8 and report.groups[0].limit == "disk"


def test_drbd_is_held_by_n1() -> None:
    # 3 nodes of 4096 free, 1024 MiB mirrored instances: a node may hold 3 of its own only
    # if each peer could start them; 2 per node (and 2 mirrors) keeps N+1
    data = alloc_kit.cluster(3, memory=4096 + 512)
    report = _report(data, {"memory-size": 1024}, template="drbd")
    [group] = report.groups
    assert report.total == 6 and group.limit == "N+1"
    assert sum(n.mirrors for n in group.nodes) == 6


def test_spec_out_of_policy_fits_nowhere() -> None:
    data = alloc_kit.cluster(2)
    report = _report(data, {"memory-size": 64}, template="diskless")
    assert report.total == 0 and report.groups[0].limit == "policy"
    assert "memory-size value 64 is not in range" in report.groups[0].note
    assert "HTS_ALLOC_FAIL_REASON=FAILPOLICY" in capacity.machine_lines(report.as_data())


def test_existing_instances_and_offline_nodes_count() -> None:
    data = kit.build(3, [("vm1", ["node1"], {"template": "diskless", "memory": 2048})],
                     memory=4096 + 512)
    data["nodes"]["node3"]["offline"] = True
    report = _report(data, template="diskless")
    # node1 has 2048 left: 15; node2 4096: 31; node3 offline: none
    assert report.total == 15 + 31
    node3 = report.groups[0].nodes[2]
    assert (node3.placed, node3.limit) == (0, "unusable")
    assert "HTS_INI_INST_CNT=1" in capacity.machine_lines(report.as_data())


def test_std_spec_is_the_default_and_groups_are_filtered() -> None:
    data = alloc_kit.cluster(1, memory=4096 + 512)
    report = _report(data, group="default")
    [group] = report.groups
    assert group.spec.memory == 128 and group.spec.template == "file"
    with pytest.raises(ValueError, match="node group 'x' not found"):
        _report(data, group="x")
