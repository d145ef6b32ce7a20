"""The config store and writer: rows on disk, typed cache, commits, short names."""

from __future__ import annotations

import asyncio
import os

import pytest

from cardume import errors, objects
from cardume.config.store import ChangeSet, ConfigStore
from cardume.config.writer import ConfigWriter


def _new_cluster(tmp_path: os.PathLike[str]) -> tuple[ConfigWriter, objects.Node]:
    store = ConfigStore(os.path.join(tmp_path, "config.db"))
    cfg = ConfigWriter(store)
    group = objects.NodeGroup(name="default")
    node = objects.Node(name="node1.example.com", primary_ip="127.0.0.11", group=group.uuid,
                        master_candidate=True)
    cluster = objects.Cluster(cluster_name="c.example.com", master_node=node.uuid)
    asyncio.run(cfg.commit(add=[cluster, group, node]))
    return cfg, node


def test_commit_persists_and_reloads(tmp_path: os.PathLike[str]) -> None:
    cfg, node = _new_cluster(tmp_path)
    assert cfg.serial == 1
    reloaded = ConfigWriter(ConfigStore(os.path.join(tmp_path, "config.db")))
    assert reloaded.serial == 1
    assert reloaded.get_cluster().cluster_name == "c.example.com"
    assert reloaded.expand_node("node1.example.com").uuid == node.uuid
    assert reloaded.master_node().name == "node1.example.com"


def test_update_rewrites_only_changed_rows_and_bumps_serials(tmp_path: os.PathLike[str]) -> None:
    cfg, node = _new_cluster(tmp_path)
    edited = cfg.edit(node)
    edited.drained = True
    change = asyncio.run(cfg.commit(update=[edited]))
    assert change.serial == 2
    assert [(k, u) for k, u, _ in change.upserts] == [("node", node.uuid)]
    assert cfg.expand_node("node1.example.com").drained is True
    assert cfg.expand_node("node1.example.com").serial_no == 2
    # the cached object handed out before the edit was never touched
    assert node.drained is False


def test_short_names_expand_when_unique(tmp_path: os.PathLike[str]) -> None:
    cfg, node = _new_cluster(tmp_path)
    assert cfg.expand_node("node1").uuid == node.uuid
    with pytest.raises(errors.UnknownEntity, match="node 'node9' is not known"):
        cfg.expand_node("node9")


def test_duplicate_add_is_refused_and_changes_nothing(tmp_path: os.PathLike[str]) -> None:
    cfg, _ = _new_cluster(tmp_path)
    dup = objects.NodeGroup(name="default")
    with pytest.raises(errors.AlreadyExists, match="nodegroup 'default' already exists"):
        asyncio.run(cfg.commit(add=[dup]))
    assert cfg.serial == 1
    assert len(cfg.groups) == 1


def test_rename_updates_name_index(tmp_path: os.PathLike[str]) -> None:
    cfg, _ = _new_cluster(tmp_path)
    group = cfg.edit(cfg.expand_group("default"))
    group.name = "rack1"
    asyncio.run(cfg.commit(update=[group]))
    assert cfg.find_group("default") is None
    assert cfg.expand_group("rack1").uuid == group.uuid


def test_remove_and_secrets(tmp_path: os.PathLike[str]) -> None:
    cfg, _ = _new_cluster(tmp_path)
    extra = objects.NodeGroup(name="g2")
    asyncio.run(cfg.commit(add=[extra], secrets={"k": {"v": 1}}))
    asyncio.run(cfg.commit(remove=[extra], secrets={"k": None}))
    reloaded = ConfigWriter(ConfigStore(os.path.join(tmp_path, "config.db")))
    assert reloaded.find_group("g2") is None
    assert "k" not in reloaded.secrets
    assert reloaded.serial == 3


def test_replica_applies_change_sets_and_full_replacement(tmp_path: os.PathLike[str]) -> None:
    sent: list[ChangeSet] = []

    async def replicate(change: ChangeSet) -> None:
        sent.append(ChangeSet.from_dict(change.to_dict()))  # as it travels over RPC

    master = ConfigWriter(ConfigStore(os.path.join(tmp_path, "m.db")), replicate)
    group = objects.NodeGroup(name="default")
    asyncio.run(master.commit(add=[objects.Cluster(cluster_name="c"), group]))
    asyncio.run(master.commit(add=[objects.NodeGroup(name="g2")]))
    replica = ConfigStore(os.path.join(tmp_path, "r.db"))
    for change in sent:
        replica.apply(change)
    assert replica.serial() == master.serial == 2
    assert {d["name"] for d in replica.load()["nodegroup"].values()} == {"default", "g2"}
    other = ConfigStore(os.path.join(tmp_path, "r2.db"))
    other.replace_all(master.serial, master.all_rows())
    assert other.load() == replica.load()


def test_parameter_inheritance_layers() -> None:
    cluster = objects.Cluster(beparams={"default": {"vcpus": 2}},
                              ndparams={"ssh_port": 2222})
    group = objects.NodeGroup(name="g", ndparams={"spindle_count": 4})
    be = objects.fill_beparams(cluster, None, {"maxmem": 512})
    assert be["vcpus"] == 2 and be["maxmem"] == 512 and be["minmem"] == 128
    nd = objects.fill_ndparams(cluster, group, {"ssh_port": None})
    assert nd["ssh_port"] == 2222 and nd["spindle_count"] == 4
    assert objects.merge_params({"a": 1, "b": 2}, {"a": None, "c": 3}) == {"b": 2, "c": 3}
