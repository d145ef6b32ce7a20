"""The example Grafana dashboard graphs metrics the metrics page really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

from cardume.jobs.metrics import JobMetrics
from cardume.master import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "contrib" / "grafana" / "cardume.json"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exported_names() -> set[str]:
    """Every family name the page can carry (all builders fed one of each thing)."""
    node = {"name": "node1", "role": "M", "group": "default", "mtotal": 1024, "mfree": 512,
            "dtotal": 2048, "dfree": 1024, "ctotal": 4}
    values = {"name": "vm1", "status": "running", "pnode": "node1", "snodes": ["node2"],
              "disk_template": "drbd", "hypervisor": "kvm", "be/vcpus": 1, "be/maxmem": 128,
              "oper_state": True}
    inst = [values[f] for f in metrics.INSTANCE_FIELDS]
    side = {"node": "node1", "role": "primary",
            "status": {"oos_kib": 4, "sync_speed_kib_s": 100, "sync_percent": 50.0,
                       "connected": True}}
    drbd = {"instances": [{"name": "vm1", "disks": [{"index": 0, "sides": [side]}]}]}
    queue = SimpleNamespace(stats=lambda: {"success": 1}, metrics=JobMetrics())
    daemon = SimpleNamespace(
        queue=queue, rpc=SimpleNamespace(calls={}, failures={}),
        cfg=SimpleNamespace(nodes={"u1": SimpleNamespace(name="node1")},
                            get_cluster=lambda: SimpleNamespace(cluster_name="c")))
    families = [metrics._build_info(daemon), *metrics._node_families([node], [inst]),
                *metrics._instance_families([inst]), *metrics._drbd_families(drbd),
                *metrics._job_families(daemon), *metrics._rpc_families(daemon)]
    return {f.name for f in families}


def test_every_metric_the_dashboard_graphs_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\bcardume_[a-z_]+", expr)}
    exported = exported_names()
    missing = {name for name in used
               if name not in exported and not any(
                   name.endswith(s) and name[:-len(s)] in exported for s in HISTOGRAM_SUFFIXES)}
    assert used and not missing, f"the dashboard graphs metrics nobody exports: {missing}"
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
