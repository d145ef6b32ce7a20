"""gnt-cluster balance (hbal's plan, -C commands, -X moves) and gnt-cluster capacity
(hspace's count) on a local cluster whose instances all start on node1."""

from __future__ import annotations

import re

from integration_kit import Gnt

ADD = ["gnt-instance", "add", "-t", "diskless", "-B", "memory=128", "-o",
       "debootstrap+default", "--no-install", "--no-name-check", "--no-ip-check"]
NAMES = [f"bal{i}" for i in range(6)]


def _pnodes(gnt: Gnt) -> dict[str, str]:
    out = gnt("gnt-instance", "list", "--no-headers", "-o", "name,pnode", *NAMES)[1]
    return dict(line.split() for line in out.splitlines())


def test_balance_plans_prints_and_makes_the_moves(gnt: Gnt) -> None:
    for name in NAMES:
        gnt(*ADD, "-n", "node1", name)
    assert set(_pnodes(gnt).values()) == {"node1"}

    _, out, _ = gnt("gnt-cluster", "balance")
    initial = float(re.search(r"Initial score: ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    found = re.search(r"Cluster score improved from [\d.]+ to ([\d.]+)", out)
    assert found and float(found.group(1)) < initial, out
    assert re.search(r"bal\d +node1 +=> node[23] .* a=fa:node[23]", out), out

    _, out, _ = gnt("gnt-cluster", "balance", "-C", "--max-moves", "2")
    assert "Solution length=2" in out
    assert "Commands to run to reach the above solution:" in out
    assert re.search(r"gnt-instance migrate -f -n node[23] bal\d", out), out

    code, out, err = gnt("gnt-cluster", "balance", "-X")
    assert code == 0, err
    assert "success" in out and "failed" not in out + err
    counts = list(_pnodes(gnt).values())
    spread = [counts.count(n) for n in ("node1", "node2", "node3")]
    assert max(spread) - min(spread) <= 1, spread

    _, out, _ = gnt("gnt-cluster", "balance")  # now there is nothing left to gain
    assert "Solution length=0" in out


def test_capacity_counts_what_can_still_be_added(gnt: Gnt) -> None:
    def count() -> int:
        _, out, _ = gnt("gnt-cluster", "capacity", "-t", "diskless", "--machine-readable")
        values = dict(line.split("=", 1) for line in out.splitlines())
        assert values["HTS_SPEC_DISK_TEMPLATE"] == "diskless" and values["HTS_OK"] == "1"
        return int(values["HTS_ALLOC_INSTANCES"])
    before = count()
    assert before > 0
    _, out, _ = gnt("gnt-cluster", "capacity", "-t", "diskless")
    assert f"In total {before} more instances fit." in out
    _, spec_line, _ = gnt("gnt-cluster", "capacity", "-t", "diskless", "--machine-readable")
    memory = re.search(r"HTS_SPEC_MEM=(\d+)", spec_line).group(1)  # type: ignore[union-attr]
    # one std-spec instance added by the default allocator takes one of those places
    gnt("gnt-instance", "add", "-t", "diskless", "-B", f"memory={memory}", "-o",
        "debootstrap+default", "--no-install", "--no-name-check", "--no-ip-check", "cap1")
    assert count() == before - 1
    code, _, err = gnt("gnt-cluster", "capacity", "-G", "nosuchgroup", check=False)
    assert code != 0 and "node group 'nosuchgroup' not found" in err
