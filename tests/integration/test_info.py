"""What an admin reads on a healthy cluster: node lists, node and cluster info, verify."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_kit import Gnt, VCluster, os_cluster

from cardume import __version__

SIZE_HUMAN = re.compile(r"^\d+(\.\d)?[MGT]$|^\d+M$")
DEFAULT_HEADER = ["Node", "DTotal", "DFree", "MTotal", "MNode", "MFree", "Pinst", "Sinst"]


def test_node_list_default_columns(gnt: Gnt) -> None:
    rc, out, err = gnt("gnt-node", "list")
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == DEFAULT_HEADER
    assert [line.split()[0] for line in lines[1:]] == ["node1", "node2", "node3"]
    for line in lines:
        assert line == line.rstrip(), "no trailing spaces"
    for line in lines[1:]:
        cells = line.split()
        assert all(SIZE_HUMAN.match(cell) for cell in cells[1:6]), line
        assert cells[6:] == ["0", "0"]
    # right-aligned numbers: every row ends at the same column
    assert len({len(line) for line in lines}) == 1


def test_node_list_roles(cluster: VCluster, gnt: Gnt) -> None:
    assert cluster.roles() == {"node1": "M", "node2": "C", "node3": "C"}
    out = gnt("gnt-node", "list", "-o", "name,role,pip,master_candidate")[1]
    width = max(len("PrimaryIP"), *(len(cluster.ip(i)) for i in (1, 2, 3)))
    assert out.splitlines() == [
        f"Node  Role {'PrimaryIP'.ljust(width)} MasterC",
        f"node1 M    {cluster.ip(1).ljust(width)} Y",
        f"node2 C    {cluster.ip(2).ljust(width)} Y",
        f"node3 C    {cluster.ip(3).ljust(width)} Y",
    ]


def test_node_list_no_headers_and_separator(cluster: VCluster, gnt: Gnt) -> None:
    # without headers, columns are as wide as their widest value (Ganeti's shape)
    out = gnt("gnt-node", "list", "--no-headers", "-o", "name,role,pip")[1]
    assert out.splitlines() == [f"node1 M {cluster.ip(1)}", f"node2 C {cluster.ip(2)}",
                                f"node3 C {cluster.ip(3)}"]
    out = gnt("gnt-node", "list", "--separator=|", "-o", "name,role,pip")[1]
    assert out.splitlines() == ["Node|Role|PrimaryIP", f"node1|M|{cluster.ip(1)}",
                                f"node2|C|{cluster.ip(2)}", f"node3|C|{cluster.ip(3)}"]
    # a separator turns off human units, as in Ganeti: sizes are plain MiB
    out = gnt("gnt-node", "list", "--separator=|", "--no-headers")[1]
    for line in out.splitlines():
        cells = line.split("|")
        assert len(cells) == 8 and all(cell.isdigit() for cell in cells[1:]), line


def test_node_list_units_and_added_field(gnt: Gnt) -> None:
    out = gnt("gnt-node", "list", "--units=m", "-o", "+group")[1]
    lines = out.splitlines()
    assert lines[0].split() == [*DEFAULT_HEADER, "Group"]
    for line in lines[1:]:
        cells = line.split()
        assert all(cell.isdigit() for cell in cells[1:8]), line
        assert cells[8] == "default"
    total = int(lines[1].split()[3])
    assert total > 64, "MTotal in MiB"


def test_node_list_names_filter(gnt: Gnt) -> None:
    out = gnt("gnt-node", "list", "--no-headers", "-o", "name", "node3", "node1")[1]
    assert out.split() == ["node3", "node1"]
    rc, out, err = gnt("gnt-node", "list", "node1", "nosuch", check=False)
    assert rc == 1 and out == ""
    assert "unknown_entity" in err and "nosuch" in err
    assert len(err.strip().splitlines()) == 1


def test_node_list_fields(gnt: Gnt) -> None:
    out = gnt("gnt-node", "list-fields")[1]
    lines = out.splitlines()
    assert lines[0].split() == ["Name", "Type", "Title", "Description"]
    names = [line.split()[0] for line in lines[1:]]
    assert names == sorted(names)
    for field in ("name", "role", "mtotal", "dfree", "pip", "group", "master_candidate"):
        assert field in names
    out = gnt("gnt-node", "list-fields", "role")[1]
    assert out.splitlines()[1].split()[:3] == ["role", "Text", "Role"]


def test_node_info(cluster: VCluster, gnt: Gnt) -> None:
    out = gnt("gnt-node", "info", "node2")[1]
    assert out.startswith("- Node name: node2\n")  # Ganeti's layout: a list of documents
    for line in (f"  primary ip: {cluster.ip(2)}", "  master candidate: True",
                 "  drained: False", "  offline: False", "  primary for instances: ",
                 "  secondary for instances: ", "    spindle_count: default (1)"):
        assert line in out.splitlines()
    out = gnt("gnt-node", "info")[1]
    assert [line for line in out.splitlines() if "Node name:" in line] == [
        "- Node name: node1", "- Node name: node2", "- Node name: node3"]


def test_cluster_info_getmaster_version(gnt: Gnt) -> None:
    out = gnt("gnt-cluster", "info")[1]
    lines = out.splitlines()
    assert lines[0] == "Cluster name: cluster.vcluster"
    assert "Master node: node1" in lines
    assert "Enabled hypervisors: fake" in lines
    assert gnt("gnt-cluster", "getmaster")[1] == "node1\n"
    out = gnt("gnt-cluster", "version")[1]
    assert out.splitlines()[0] == f"Software version: {__version__}"


def test_cluster_verify_healthy(gnt: Gnt) -> None:
    rc, out, err = gnt("gnt-cluster", "verify", check=False)
    assert rc == 0, out + err
    steps = [line.split(" * ", 1)[1] for line in out.splitlines() if " * " in line]
    assert steps[0] == "Verifying cluster config"
    assert "Gathering data (3 nodes)" in steps
    assert "Verifying node status" in steps
    assert "ERROR" not in out and "WARNING" not in out
    # each progress line is "<date> * <step>", Ganeti's shape
    for line in out.splitlines():
        assert re.match(r"^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} \* ", line), line


# --- the info documents against Ganeti 3.0.2's ------------------------------------------------
#
# tests/fixtures/ganeti-info/*.skel are the skeletons (keys and their indentation, values
# masked) of the real Ganeti's output, captured on a 3-node cluster: vm1 diskless and
# running on node1, vm2 on file storage and stopped on node2, vm3 on sharedfile with a disk
# named "data" on node3. The cluster below is put in the same state, so the skeletons must
# be equal, except where cardume has no such thing (LACKS).

GANETI_INFO = Path(__file__).resolve().parents[1] / "fixtures" / "ganeti-info"
LACKS = {
    # cardume's ext, gluster and rbd disk templates have no access mode, and no gluster
    # server settings; it has no compression tools and no monitoring data collectors
    "disk": ("ext/access", "gluster/access", "gluster/host", "gluster/port",
             "gluster/volume", "rbd/access"),
    "cluster": ("Cluster parameters/compression tools/", "Data collectors/"),
}
# where the documents of a job hold the opcode's own parameters and its log: they differ
# with the opcode and the run, so only their keys are compared
JOB_DETAILS = ("Opcodes/Input fields/", "Opcodes/Execution log/")
KEY = re.compile(r"^[\w/ ().-]+$")


def skeleton(text: str) -> list[tuple[str, str]]:
    """Each line's key path (``Nodes/primary``; ``*`` for a plain list item) and the line
    with its value masked (``    - primary:``)."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []  # (column, key) of the keys above the current line
    for line in text.splitlines():
        match = re.match(r"^( *)((?:- )*)(.*)$", line)
        assert match
        indent, dashes, rest = match.groups()
        if ": " in rest:
            key = rest.split(": ", 1)[0]
        else:  # an empty value ("key: "), a skeleton's line ("key:"), or a plain item
            key = rest.rstrip()[:-1] if rest.rstrip().endswith(":") else "*"
        if not KEY.match(key):  # a plain item with a colon in it (an error message)
            key = "*"
        column = len(indent) + len(dashes)
        while stack and stack[-1][0] >= column:
            stack.pop()
        stack.append((column, key))
        found.append(("/".join(k for _, k in stack),
                      f"{indent}{dashes}{key}{':' if key != '*' else ''}"))
    return found


def masked(text: str, without: tuple[str, ...] = ()) -> list[str]:
    """The skeleton's lines, leaving out the paths that contain one of ``without``."""
    return [line for path, line in skeleton(text)
            if not any(part in path for part in without)]


def reference(name: str) -> str:
    return (GANETI_INFO / f"{name}.skel").read_text()


GANETI_BOUNDS = ("min:memory-size=128,cpu-count=1,disk-count=1,disk-size=1024,nic-count=1,"
                 "spindle-use=1/max:memory-size=32768,cpu-count=8,disk-count=16,"
                 "disk-size=1048576,nic-count=8,spindle-use=12")


@pytest.fixture(scope="module")
def peer_like(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    """A cluster in the state of the captured Ganeti cluster (see above)."""
    names = {f"vm{index}": f"127.0.9.{index}" for index in (1, 2, 3)}
    with os_cluster(tmp_path_factory.mktemp("peer-like"), names) as vc:
        # the captured cluster's policy is Ganeti's default (a local cluster's is wider)
        vc.gnt("gnt-cluster", "modify", "--ipolicy-bounds-specs", GANETI_BOUNDS,
               "--ipolicy-vcpu-ratio", "4")
        vc.gnt("gnt-instance", "add", "-t", "diskless", "-o", "dummy+default", "-n", "node1",
               "-B", "maxmem=128,minmem=128", "vm1")
        vc.gnt("gnt-instance", "add", "-t", "file", "--disk", "0:size=1g", "-o",
               "dummy+default", "-n", "node2", "vm2")
        vc.gnt("gnt-instance", "shutdown", "vm2")
        vc.gnt("gnt-instance", "add", "-t", "sharedfile", "--disk", "0:size=1g,name=data",
               "-o", "dummy+default", "-n", "node3", "vm3")
        yield vc


def test_instance_info_layout_is_ganetis(peer_like: VCluster) -> None:
    out = peer_like.gnt("gnt-instance", "info", "vm1", "vm2", "vm3")[1]
    assert masked(out) == reference("instance-info").splitlines()
    lines = out.splitlines()
    # the lines an admin's grep finds, with their real values
    assert "    - primary: node1" in lines
    assert "  State: configured to be down, actual state is down" in lines
    assert "  Disk template: sharedfile" in lines
    disk = next(line for line in lines if line.startswith("      on primary: ")
                and "/vm3/" in line)
    assert disk.endswith(" (N/A:N/A)")
    path = disk.removeprefix("      on primary: ").removesuffix(" (N/A:N/A)")
    assert os.path.isfile(path), "the sharedfile disk's real backing file"
    assert path.endswith(".sharedfile.disk0")  # Ganeti's name: UUID.TEMPLATE.diskN
    assert "      name: data" in lines
    # fake-hypervisor instances have no console port: Ganeti's None, no internal mark
    assert lines.count("  Allocated network port: None") == 3


def test_instance_info_static_and_all(peer_like: VCluster) -> None:
    out = peer_like.gnt("gnt-instance", "info", "--static", "vm1", "vm2", "vm3")[1]
    assert masked(out) == reference("instance-info-static").splitlines()
    assert "  State: configured to be up" in out.splitlines()
    every = peer_like.gnt("gnt-instance", "info", "--all")[1]
    assert sorted(line for line in every.splitlines() if "Instance name:" in line) == [
        "- Instance name: vm1", "- Instance name: vm2", "- Instance name: vm3"]


def test_node_info_layout_is_ganetis(peer_like: VCluster) -> None:
    out = peer_like.gnt("gnt-node", "info")[1]
    assert masked(out) == reference("node-info").splitlines()
    lines = out.splitlines()
    first = lines.index("- Node name: node3")
    assert lines[first + 9] == "    - vm3"  # primary for instances


def test_group_info_layout_is_ganetis(peer_like: VCluster) -> None:
    out = peer_like.gnt("gnt-group", "info")[1]
    assert masked(out) == masked(reference("group-info"), LACKS["disk"])
    lines = out.splitlines()
    assert "  Instance policy: " in lines
    assert "          memory-size: default (128)" in lines  # min/0
    assert "    vcpu-ratio: default (4)" in lines


def test_cluster_info_layout_is_ganetis(peer_like: VCluster) -> None:
    out = peer_like.gnt("gnt-cluster", "info")[1]
    assert masked(out) == masked(reference("cluster-info"), LACKS["disk"] + LACKS["cluster"])
    lines = out.splitlines()
    assert "  enabled disk templates: file, sharedfile, diskless" in lines
    assert "  use external master IP address setup script: False" in lines
    assert "  lvm reserved volumes: (none)" in lines
    assert "  vcpu-ratio: 4" in lines
    assert lines[-1] == "Data collectors: "


def test_job_info_layout_is_ganetis(peer_like: VCluster) -> None:
    # job 1 adds node2; the reference's second job is Ganeti's node2 add
    out = peer_like.gnt("gnt-job", "info", "1")[1]
    ganeti = reference("job-info").split("\n- Job ID:")[1]
    assert masked(out, JOB_DETAILS) == masked("- Job ID:" + ganeti, JOB_DETAILS)
    lines = out.splitlines()
    assert "        OP_ID: OP_NODE_ADD" in lines
    assert "        node_name: node2" in lines
    assert re.search(r"^        - Time: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\n"
                     r"          Content: \[1, message, .+\]$", out, re.MULTILINE), out
    assert re.search(r"^  Total processing time: \d+\.\d{6} seconds$", out, re.MULTILINE)


def test_job_info_of_a_failure_is_ganetis(peer_like: VCluster) -> None:
    rc, _, err = peer_like.gnt("gnt-group", "remove", "default", check=False)
    assert rc != 0 and "wrong_state" in err
    job = peer_like.gnt("gnt-job", "list", "--no-headers", "-o", "id")[1].split()[-1]
    out = peer_like.gnt("gnt-job", "info", job)[1]
    assert masked(out, JOB_DETAILS) == masked(reference("job-info-error"), JOB_DETAILS)
    assert "  Status: error" in out.splitlines()
    assert "          - wrong_state" in out.splitlines()
