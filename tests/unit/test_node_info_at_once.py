"""A node daemon answers node_info in its own thread only when nothing in it can wait
(facts.answers_at_once), and the answer is the same either way."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cardume.node import facts


@pytest.mark.parametrize(("templates", "expected"), [
    (["file", "sharedfile", "diskless"], True),     # a node-local directory first
    (["diskless"], True),                           # nothing to measure
    ([], True),
    (["sharedfile", "file"], False),                # may be NFS
    (["plain", "file"], False),                     # vgs
    (["drbd"], False),
    (["diskless", "plain"], False),                 # diskless measures nothing: plain is next
])
def test_storage_decides(tmp_path: Path, templates: list[str], expected: bool) -> None:
    ssconf = {"enabled_disk_templates": templates}
    assert facts.answers_at_once(ssconf, str(tmp_path)) is expected


def test_a_kvm_instance_sends_it_to_a_worker(tmp_path: Path) -> None:
    ssconf = {"enabled_disk_templates": ["file"]}
    kvm = tmp_path / "hv" / "kvm"
    kvm.mkdir(parents=True)
    assert facts.answers_at_once(ssconf, str(tmp_path))  # kvm's directory, no instance
    (kvm / "vm1.json").write_text("{}")
    assert not facts.answers_at_once(ssconf, str(tmp_path))


def test_same_answer_in_a_worker(tmp_path: Path) -> None:
    ssconf = {"enabled_disk_templates": ["file"], "file_storage_dir": str(tmp_path)}
    here = facts.node_info(ssconf, str(tmp_path))
    there = asyncio.run(asyncio.to_thread(facts.node_info, ssconf, str(tmp_path)))
    for key in ("version", "bootid", "hypervisors", "cpu_total", "cpu_sockets", "cpu_nodes",
                "memory_total", "instances_memory"):
        assert here[key] == there[key], key
    assert here["storage"][0]["total"] == there["storage"][0]["total"]
