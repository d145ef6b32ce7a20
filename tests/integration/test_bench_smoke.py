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
    assert set(FIGURES) <= set(figures)
    for key in FIGURES:
        assert isinstance(figures[key]["cardume"], float | int), key
        assert figures[key]["ganeti"] is None  # --peer no: no peer figures, no ratios
        assert figures[key]["ratio"] is None

    pids = [d["pid"] for node in result["rss"]["cardume"].values() for d in node.values()]
    assert len(pids) == 4  # noded on each node, masterd on node1
    assert not [pid for pid in pids if _alive(pid)], "the benchmark left daemons running"
