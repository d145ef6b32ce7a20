"""/metrics on a real local cluster, scraped with curl as Prometheus would (a read user of the
REST API) and parsed with prometheus_client's own parser: the values an admin would check
against `gnt-node list` and `gnt-instance list`, the job counters and histograms, and who
may scrape."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
from integration_kit import Gnt, VCluster
from prometheus_client.parser import text_string_to_metric_families
from test_rapi_daemon import address, credentials

CURL = "/usr/bin/curl"
MIB = 1024 * 1024
pytestmark = pytest.mark.skipif(not os.path.exists(CURL), reason="curl is not installed")


def scrape(cluster: VCluster, user: str | None = "") -> tuple[int, str, str]:
    """(HTTP status, content type, body) of GET /metrics."""
    host, port = address(cluster)
    login = credentials(cluster) if user == "" else user
    argv = [CURL, "-sk", "--max-time", "30", "-o", "-", "-w",
            "\n%{http_code} %{content_type}", *(["-u", login] if login else []),
            f"https://{host}:{port}/metrics"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout
    body, _, tail = out.rpartition("\n")
    status, _, ctype = tail.partition(" ")
    return int(status), ctype, body


def samples(text: str) -> dict[str, list[Any]]:
    """Sample name -> its samples, as prometheus_client parses the page."""
    found: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def table(gnt: Gnt, command: str, fields: str) -> list[list[str]]:
    out = gnt(command, "list", "--no-headers", "--separator=|", "--units=m", "-o", fields)[1]
    return [line.split("|") for line in out.splitlines()]


@pytest.fixture(scope="module")
def instances(gnt: Gnt) -> list[str]:
    """Two instances: metrics-a runs, metrics-b was stopped by the admin."""
    for name, extra in (("metrics-a", []), ("metrics-b", ["--no-start"])):
        gnt("gnt-instance", "add", "-t", "diskless", "--no-install", "-o", "dummy+default",
            "-B", "memory=96,vcpus=2", "-n", "node2", "--no-name-check", "--no-ip-check",
            *extra, name)
    return ["metrics-a", "metrics-b"]


def test_metrics_match_what_the_commands_show(cluster: VCluster, gnt: Gnt,
                                              instances: list[str]) -> None:
    status, ctype, text = scrape(cluster)
    assert status == 200 and ctype.startswith("text/plain") and "version=0.0.4" in ctype
    found = samples(text)

    nodes = {name: (int(mtotal), int(mfree)) for name, mtotal, mfree in
             table(gnt, "gnt-node", "name,mtotal,mfree")}
    total = {s.labels["node"]: s.value for s in found["cardume_node_memory_total_bytes"]}
    free = {s.labels["node"]: s.value for s in found["cardume_node_memory_free_bytes"]}
    assert set(total) == set(nodes)
    for name, (mtotal, mfree) in nodes.items():
        assert total[name] == mtotal * MIB
        assert abs(free[name] - mfree * MIB) <= 256 * MIB  # free memory moves a little
    assert {s.labels["node"]: s.value for s in found["cardume_node_up"]} == {
        name: 1.0 for name in nodes}

    listed = {name: (status, pnode) for name, status, pnode in
              table(gnt, "gnt-instance", "name,status,pnode")}
    shown = {s.labels["instance"]: (s.labels["status"], s.labels["primary_node"])
             for s in found["cardume_instance_status"]}
    assert shown == listed
    assert shown["metrics-a"] == ("running", "node2")
    assert shown["metrics-b"] == ("ADMIN_down", "node2")
    running = {s.labels["instance"]: s.value for s in found["cardume_instance_running"]}
    assert running["metrics-a"] == 1.0 and running["metrics-b"] == 0.0
    memory = {s.labels["instance"]: s.value for s in found["cardume_instance_memory_bytes"]}
    assert memory["metrics-a"] == 96 * MIB
    counts = {(s.labels["node"], s.labels["role"]): s.value
              for s in found["cardume_node_instances"]}
    for name, pinst, sinst in table(gnt, "gnt-node", "name,pinst_cnt,sinst_cnt"):
        assert (counts[(name, "primary")], counts[(name, "secondary")]) == (int(pinst),
                                                                             int(sinst))
    used = {s.labels["node"]: s.value for s in found["cardume_node_vcpus_used"]}
    assert used["node2"] >= 2  # metrics-a's two vCPUs (metrics-b is stopped)


def test_job_counters_and_histograms(cluster: VCluster, gnt: Gnt,
                                     instances: list[str]) -> None:
    gnt("gnt-debug", "delay", "0")
    found = samples(scrape(cluster)[2])
    ended = {s.labels["status"]: s.value for s in found["cardume_jobs_ended_total"]}
    assert ended.get("success", 0) >= 3  # two creations and the delay at least
    buckets = [s for s in found["cardume_job_duration_seconds_bucket"]
               if s.labels["operation"] == "OP_INSTANCE_CREATE"]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts) and buckets[-1].labels["le"] == "+Inf"
    count = [s.value for s in found["cardume_job_duration_seconds_count"]
             if s.labels["operation"] == "OP_INSTANCE_CREATE"]
    assert count == [counts[-1]] and count[0] >= 2
    assert all("job" not in s.labels and "id" not in s.labels
               for s in found["cardume_job_duration_seconds_bucket"])
    calls = {s.labels["node"]: s.value for s in found["cardume_node_rpc_calls_total"]}
    assert calls["node2"] > 0
    errors = {s.labels["node"]: s.value for s in found["cardume_node_rpc_errors_total"]}
    assert set(errors) == set(calls)
    build = found["cardume_build_info"][0]
    assert build.value == 1.0 and build.labels["version"]


def test_scraping_needs_a_user(cluster: VCluster) -> None:
    status, _, _ = scrape(cluster, user=None)
    assert status == 401
    assert scrape(cluster, user="gnt-admin:wrong")[0] == 401
