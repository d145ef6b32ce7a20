"""The benchmark script keeps working: ``bench/run.py --quick --peer no`` brings up its own
local cluster, prints every figure with a number, writes its JSON, and leaves no daemon.

It measures nothing here (figures are printed, never asserted): this only guards the code.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = REPO / ".venv" / "bin" / "python"

FIGURES = {
    "cli_start_version": "CLI start: gnt-cluster version",
    "cli_start_floor": "CLI start floor: python3 -c pass",
    "delay_cli_jobs_per_s": "gnt-debug delay, one at a time (CLI)",
    "burst_jobs_per_s": "200 delay jobs submitted at once",
    "socket_serial_jobs_per_s": "socket submit+wait, one at a time",
    "node_list_latency": "gnt-node list latency",
    "rss_node1_noded": "RSS node1 noded",
    "rss_node1_masterd": "RSS node1 masterd",
    "rss_node1_total": "RSS node1 total (noded + masterd)",
    "rss_node2_total": "RSS node2 total (noded)",
    "rss_node3_total": "RSS node3 total (noded)",
}
# Issue 3's figures: their labels carry the instance counts (--quick's are small), so the
# rows are looked up by the label the JSON gives.
INSTANCE_FIGURES = [
    "add_seq_ms", "add_nos_ms", "adds_at_once_per_s",
    "instance_list_base_ms", "instance_list_names_base_ms",
    "instance_list_mid_ms", "instance_list_names_mid_ms",
    "instance_list_top_ms", "instance_list_names_top_ms",
    "grow_instances_per_s", "instance_list_top_vs_peer_base_ms",
    "rss_masterd_top", "config_db_top", "add_nos_top_ms",
]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"cardume" in handle.read()
    except OSError:
        return False


def test_quick_bench_prints_every_figure(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    proc = subprocess.run([str(PYTHON), str(REPO / "bench" / "run.py"), "--quick",
                           "--peer", "no", "--json", str(out_json)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    for label in FIGURES.values():
        row = re.search(rf"^{re.escape(label)}\s+\S+\s+([\d,]+(?:\.\d+)?)\s", proc.stdout,
                        re.MULTILINE)
        assert row, f"no number for {label!r} in:\n{proc.stdout}"
        assert float(row.group(1).replace(",", "")) > 0

    result = json.loads(out_json.read_text())
    figures = {f["key"]: f for f in result["figures"]}
    assert set(FIGURES) | set(INSTANCE_FIGURES) <= set(figures)
    for key in [*FIGURES, *INSTANCE_FIGURES]:
        assert isinstance(figures[key]["cardume"], float | int), key
        assert figures[key]["cardume"] > 0, key
        assert figures[key]["ganeti"] is None  # --peer no: no peer figures, no ratios
        assert figures[key]["ratio"] is None
    for key in INSTANCE_FIGURES:
        label = figures[key]["label"]
        assert re.search(rf"^{re.escape(label)}\s+\S+\s+[\d,]+(?:\.\d+)?\s", proc.stdout,
                         re.MULTILINE), f"no number for {label!r} in:\n{proc.stdout}"
    # the instance counts --quick reaches: list at 50, 100 and 200 instances
    counts = result["instances"]
    assert [counts[f"list_{level}"]["count"] for level in ("base", "mid", "top")] == [50, 100, 200]

    pids = [d["pid"] for node in result["rss"]["cardume"].values() for d in node.values()]
    assert len(pids) == 4  # noded on each node, masterd on node1
    assert not [pid for pid in pids if _alive(pid)], "the benchmark left daemons running"


def test_unknown_section_is_refused() -> None:
    proc = subprocess.run([str(PYTHON), str(REPO / "bench" / "run.py"), "--peer", "no",
                           "--only", "jobs,nosuch"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert proc.returncode == 2
    assert "unknown section nosuch" in proc.stderr
