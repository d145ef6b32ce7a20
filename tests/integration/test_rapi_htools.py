"""Ganeti's htools in remote mode (Debian's ganeti-htools-3.0: ``hscan``, ``hbal -m``,
``hspace -m``) read a cardume cluster through its REST API and see what ``gnt-node list``
and ``gnt-instance list`` show.

htools send no credentials, so the cluster's REST daemon runs with anonymous reads turned
on here (its ``rapi/options`` file), as an admin would for them; writes still need a user.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_kit import Gnt, VCluster, os_cluster, wait_for

from cardume import paths
from cardume.paths import NodePaths

# Debian's ganeti-htools-3.0 installs the tools here; the ganeti package (not needed)
# would add links in /usr/bin
HTOOLS_DIR = "/usr/lib/ganeti/3.0/usr/bin"


def tool_path(name: str) -> str | None:
    found = os.path.join(HTOOLS_DIR, name)
    return found if os.path.exists(found) else shutil.which(name)


pytestmark = pytest.mark.skipif(tool_path("hscan") is None,
                                reason="ganeti-htools-3.0 is not installed")


def _anonymous_get(url: str) -> int:
    """The HTTP status of an anonymous GET; 0 while nothing listens (a restart)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # as htools: they do not check the certificate
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except urllib.error.URLError:
        return 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    names = {"hvm1": "127.0.9.231", "hvm2": "127.0.9.232"}
    with os_cluster(tmp_path_factory.mktemp("htools"), names) as vc:
        vc.gnt("gnt-instance", "add", "-t", "file", "--disk", "0:size=1g", "-o",
               "dummy+default", "-B", "memory=256", "-n", "node2", "hvm1")
        vc.gnt("gnt-instance", "add", "-t", "diskless", "-o", "dummy+default", "-B",
               "memory=128", "-n", "node1", "hvm2")
        yield vc


@pytest.fixture(scope="module")
def url(cluster: VCluster) -> str:
    master = NodePaths(str(cluster.node_dir(cluster.master())))
    where: Any = wait_for(lambda: paths.read_json(master.rapi_address), 30,
                          "the REST daemon's address")
    base = f"https://{where['address']}:{where['port']}"
    assert _anonymous_get(f"{base}/2/nodes?bulk=1") == 401  # the default: no anonymous
    Path(master.rapi_options).write_text("--allow-anonymous-reads\n", encoding="ascii")
    wait_for(lambda: _anonymous_get(f"{base}/2/nodes?bulk=1") == 200, 30,
             "anonymous reads after the options changed")
    return base


def htool(tool: str, *args: str, cwd: Path | None = None) -> str:
    path = tool_path(tool)
    assert path is not None, f"{tool} is not installed"
    proc = subprocess.run([path, *args], capture_output=True, text=True, timeout=120,
                          check=False, cwd=cwd)
    assert proc.returncode == 0, f"{tool} {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def node_table(gnt: Gnt) -> dict[str, list[str]]:
    out = gnt("gnt-node", "list", "--no-headers", "--units", "m", "--separator", "|", "-o",
              "name,mtotal,dtotal,pinst_cnt,sinst_cnt")[1]
    return {line.split("|")[0]: line.split("|")[1:] for line in out.splitlines()}


def test_hscan_reads_the_nodes_and_instances_gnt_lists(cluster: VCluster, url: str,
                                                      gnt: Gnt, tmp_path: Path) -> None:
    out = htool("hscan", "-d", str(tmp_path), "--print-nodes=name,tmem,tdsk,pcnt,scnt", url)
    lines = [line.split() for line in out.splitlines()]
    summary = next(i for i, line in enumerate(lines) if line[0] == url)
    assert lines[summary][1:3] == ["3", "2"]  # nodes, instances
    shown = {line[-5]: line[-4:] for line in lines[summary + 2:] if len(line) >= 5}
    listed = node_table(gnt)
    assert sorted(shown) == sorted(listed) == ["node1", "node2", "node3"]
    for name, (t_mem, t_dsk, pcnt, scnt) in shown.items():
        mtotal, dtotal, pinst, sinst = listed[name]
        assert t_mem == mtotal and (pcnt, scnt) == (pinst, sinst), name
        assert int(t_dsk) == round(int(dtotal) / 1024), name  # htools print GiB
    # the state file hscan saved names both instances where gnt-instance list has them
    saved = next(tmp_path.iterdir()).read_text(encoding="utf-8")
    assert "hvm1|256|" in saved and "|node2||file|" in saved
    assert "hvm2|128|" in saved and "|node1||diskless|" in saved


def test_hbal_finds_the_cluster_and_its_moves(cluster: VCluster, url: str) -> None:
    out = htool("hbal", "-m", url)
    assert "Loaded 3 nodes, 2 instances" in out
    assert "Initial check done: 0 bad nodes, 0 bad instances." in out
    assert "Solution length=" in out


def test_hspace_computes_capacity_with_the_cluster_policy(cluster: VCluster, url: str,
                                                          gnt: Gnt) -> None:
    out = htool("hspace", "-m", url, "--machine-readable")
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    # the policy allows the enabled templates (as Ganeti's init sets it): the first is used
    enabled = gnt("gnt-cluster", "info")[1]
    first = next(line.split(":", 1)[1].strip().split(",")[0]
                 for line in enabled.splitlines() if "enabled disk templates" in line)
    assert values["HTS_SPEC_DISK_TEMPLATE"] == first
    assert values["HTS_INI_INST_CNT"] == "2"
    assert int(values["HTS_ALLOC_INSTANCES"]) > 0, values.get("HTS_ALLOC_FAIL_REASON")
    # the instances' memory, and the nodes' as gnt-node list reports it
    assert int(values["HTS_INI_MEM_INST"]) == 256 + 128
    assert int(values["HTS_CLUSTER_MEM"]) == sum(int(row[0]) for row in node_table(gnt).values())


def test_writes_still_need_a_user(url: str) -> None:
    request = urllib.request.Request(f"{url}/2/instances/hvm2/reboot", method="POST")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, context=context, timeout=10)
    assert caught.value.code == 401
