"""gnt-node list's instance columns (pinst_*/sinst_*) come from one pass over the
instances and say what common.instances_on_node says for each node."""

from __future__ import annotations

import random
from types import SimpleNamespace

from cardume.cmdlib import common
from cardume.master.fields_node import NodeQuery


def test_same_lists_as_instances_on_node() -> None:
    rng = random.Random(15)
    nodes = [f"uuid-{i}" for i in range(12)]
    instances = {}
    for i in range(300):
        primary = rng.choice(nodes)
        template = rng.choice(["plain", "drbd", "odd"])
        if template == "drbd":
            secondary = [rng.choice([n for n in nodes if n != primary])]
        elif template == "odd":  # a secondary repeated, or the primary itself: counted once
            other = rng.choice(nodes)
            secondary = [other, other, primary]
        else:
            secondary = []
        instances[f"i{i}"] = SimpleNamespace(name=f"vm{i:03d}", primary_node=primary,
                                             secondary_nodes=secondary)
    cfg = SimpleNamespace(instances=instances)
    query = NodeQuery(SimpleNamespace(cfg=cfg), {})  # type: ignore[arg-type]
    for uuid in [*nodes, "uuid-without-instances"]:
        node = SimpleNamespace(uuid=uuid)
        assert query.instances(node) == common.instances_on_node(cfg, uuid)  # type: ignore[arg-type]
