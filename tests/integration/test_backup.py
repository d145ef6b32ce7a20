"""gnt-backup on a local cluster: export an instance with file disks (the tests' OS has
real export and import scripts, which dd the disk), list, import under a new name on
another node (the same bytes), a failed export (nothing left, the instance running), remove,
bad input, another cluster (the export directory copied to it), and the REST API's export."""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from integration_kit import VCluster, os_cluster, start_cluster, stop_cluster, wait_for

from cardume import paths
from cardume.paths import NodePaths

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
OS = ["-o", "dummy+default"]
MARK_OFFSET = 3 * MIB  # after what the dummy OS's create script writes at the start
NAMES = {f"bk{index}": f"127.0.9.{200 + index}" for index in range(1, 20)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    with os_cluster(tmp_path_factory.mktemp("backup"), NAMES) as vc:
        yield vc


def gnt(cluster: VCluster, *args: str) -> str:
    return cluster.gnt(*args)[1]


def refused(cluster: VCluster, *args: str) -> str:
    rc, out, err = cluster.gnt(*args, check=False)
    assert rc != 0, f"{' '.join(args)} succeeded:\n{out}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def disk_image(cluster: VCluster, node: str, name: str) -> Path:
    found = sorted((cluster.node_dir(node) / "disk").rglob(f"{name}/*file.disk*"))
    assert len(found) == 1, found
    return found[0]


def export_dir(cluster: VCluster, node: str, name: str = "") -> Path:
    return cluster.node_dir(node) / "export" / name


def add_file(cluster: VCluster, name: str, node: str, *args: str) -> None:
    gnt(cluster, "gnt-instance", "add", "-t", "file", "--disk", "0:size=8m", *OS, *args,
        "-n", node, name)


def write_mark(cluster: VCluster, node: str, name: str, mark: bytes) -> None:
    with open(disk_image(cluster, node, name), "r+b") as image:
        image.seek(MARK_OFFSET)
        image.write(mark)


def read_mark(cluster: VCluster, node: str, name: str, length: int) -> bytes:
    with open(disk_image(cluster, node, name), "rb") as image:
        image.seek(MARK_OFFSET)
        return image.read(length)


def status(cluster: VCluster, name: str) -> str:
    out = gnt(cluster, "gnt-instance", "list", "--no-headers", "-o", "status", name)
    return out.strip()


def exports(cluster: VCluster) -> list[tuple[str, str]]:
    out = gnt(cluster, "gnt-backup", "list", "--no-headers")
    return [(line.split()[0], line.split()[1]) for line in out.splitlines()]


def no_staging(cluster: VCluster) -> bool:
    return not list(cluster.root.glob("nodes/*/export/.tmp-*"))


def test_export_list_import_round_trip(cluster: VCluster) -> None:
    add_file(cluster, "bk1", "node1", "--no-start")
    mark = b"cardume backup round trip " * 100
    write_mark(cluster, "node1", "bk1", mark)
    gnt(cluster, "gnt-backup", "export", "-n", "node2", "bk1")
    # Ganeti's layout: EXPORT_DIR/<instance>/config.ini and one dump per disk
    folder = export_dir(cluster, "node2", "bk1")
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(folder / "config.ini")
    assert ini["export"]["os"] == "dummy+default"
    assert ini["instance"]["name"] == "bk1"
    assert ini["instance"]["disk_template"] == "file"
    assert ini["instance"]["disk_count"] == "1"
    assert ini["instance"]["disk0_size"] == "8"
    dump = folder / ini["instance"]["disk0_dump"]
    assert dump.stat().st_size == 8 * MIB
    assert ("node2", "bk1") in exports(cluster)
    assert [node for node, _ in exports(cluster)] == ["node2"]  # no export: no row
    assert status(cluster, "bk1") == "ADMIN_down"
    assert no_staging(cluster)

    gnt(cluster, "gnt-backup", "import", "-n", "node3", "--src-node", "node2",
        "--src-dir", "bk1", "bk2")
    assert read_mark(cluster, "node3", "bk2", len(mark)) == mark
    out = gnt(cluster, "gnt-instance", "list", "--no-headers", "-o",
              "pnode,disk_template,disk.sizes,os,status", "bk2")
    assert out.split() == ["node3", "file", "8", "dummy+default", "running"]
    assert no_staging(cluster)
    gnt(cluster, "gnt-instance", "remove", "-f", "bk2")

    gnt(cluster, "gnt-backup", "remove", "bk1")
    assert not folder.exists()
    assert ("node2", "bk1") not in exports(cluster)
    gnt(cluster, "gnt-instance", "remove", "-f", "bk1")


def by_index(images: Iterable[Path]) -> list[Path]:
    """Disk images in disk order (their names end in .file.diskN)."""
    return sorted(images, key=lambda p: int(p.name.rsplit("disk", 1)[1]))


def test_each_disk_comes_back_in_its_place(cluster: VCluster) -> None:
    gnt(cluster, "gnt-instance", "add", "-t", "file", "--disk", "0:size=8m", "--disk",
        "1:size=4m", *OS, "--no-start", "-n", "node1", "bk11")
    images = by_index((cluster.node_dir("node1") / "disk").rglob("bk11/*file.disk*"))
    for index, image in enumerate(images):
        with open(image, "r+b") as handle:
            handle.seek(2 * MIB)
            handle.write(f"disk {index} of bk11".encode())
    gnt(cluster, "gnt-backup", "export", "-n", "node3", "bk11")
    gnt(cluster, "gnt-backup", "import", "-n", "node2", "--src-node", "node3",
        "--src-dir", "bk11", "--no-start", "bk12")
    copies = by_index((cluster.node_dir("node2") / "disk").rglob("bk12/*file.disk*"))
    assert [p.stat().st_size for p in copies] == [8 * MIB, 4 * MIB]
    for index, image in enumerate(copies):
        with open(image, "rb") as handle:
            handle.seek(2 * MIB)
            assert handle.read(14) == f"disk {index} of bk11".encode()
    gnt(cluster, "gnt-instance", "remove", "-f", "bk12")
    gnt(cluster, "gnt-backup", "remove", "bk11")
    gnt(cluster, "gnt-instance", "remove", "-f", "bk11")


def test_a_running_instance_runs_after_its_export(cluster: VCluster) -> None:
    add_file(cluster, "bk3", "node1")
    assert status(cluster, "bk3") == "running"
    gnt(cluster, "gnt-backup", "export", "-n", "node1", "bk3")
    assert status(cluster, "bk3") == "running"
    assert (export_dir(cluster, "node1", "bk3") / "config.ini").is_file()
    # a new export of the same instance on another node replaces the old one
    gnt(cluster, "gnt-backup", "export", "-n", "node3", "bk3")
    assert not export_dir(cluster, "node1", "bk3").exists()
    assert ("node3", "bk3") in exports(cluster)
    gnt(cluster, "gnt-backup", "remove", "bk3")
    gnt(cluster, "gnt-instance", "remove", "-f", "bk3")


def test_a_failed_export_leaves_nothing_and_the_instance_running(cluster: VCluster) -> None:
    add_file(cluster, "bk4", "node1")
    gnt(cluster, "gnt-instance", "modify", "-O", "flavour=fail", "bk4")
    rc, _, err = cluster.gnt("gnt-backup", "export", "-n", "node2", "bk4", check=False)
    assert rc != 0
    assert "OS export script" in err and "failed (exited with exit code 3)" in err
    assert status(cluster, "bk4") == "running"
    assert not export_dir(cluster, "node2", "bk4").exists()
    assert not export_dir(cluster, "node1", "bk4").exists()
    assert no_staging(cluster)
    gnt(cluster, "gnt-instance", "remove", "-f", "bk4")


def test_a_failed_import_leaves_no_instance_and_no_disk(cluster: VCluster) -> None:
    add_file(cluster, "bk13", "node1", "--no-start")
    gnt(cluster, "gnt-backup", "export", "-n", "node2", "bk13")
    rc, _, err = cluster.gnt("gnt-backup", "import", "-n", "node3", "--src-node", "node2",
                             "--src-dir", "bk13", "-O", "flavour=fail", "bk14", check=False)
    assert rc != 0
    assert "OS import script" in err and "failed (exited with exit code 3)" in err
    assert "bk14" not in gnt(cluster, "gnt-instance", "list", "--no-headers", "-o", "name")
    assert not list((cluster.node_dir("node3") / "disk").rglob("bk14"))
    assert no_staging(cluster)
    gnt(cluster, "gnt-backup", "remove", "bk13")
    gnt(cluster, "gnt-instance", "remove", "-f", "bk13")


def test_export_with_remove_instance(cluster: VCluster) -> None:
    add_file(cluster, "bk5", "node2")
    gnt(cluster, "gnt-backup", "export", "-n", "node3", "--remove-instance", "bk5")
    assert "bk5" not in gnt(cluster, "gnt-instance", "list", "--no-headers", "-o", "name")
    assert ("node3", "bk5") in exports(cluster)
    gnt(cluster, "gnt-backup", "remove", "bk5")


def test_bad_input_is_one_line_and_makes_nothing(cluster: VCluster) -> None:
    assert "nosuch" in refused(cluster, "gnt-backup", "export", "-n", "node2", "nosuch")
    add_file(cluster, "bk6", "node1", "--no-start")
    assert "node9" in refused(cluster, "gnt-backup", "export", "-n", "node9", "bk6")
    assert "-n" in refused(cluster, "gnt-backup", "export", "bk6")
    assert not export_dir(cluster, "node2", "bk6").exists()
    err = refused(cluster, "gnt-backup", "import", "-n", "node2", "--src-node", "node1",
                  "--src-dir", "nosuch", "bk7")
    assert "nosuch" in err
    err = refused(cluster, "gnt-backup", "import", "-n", "node2", "bk8")
    assert "bk8" in err
    assert "bk7" not in gnt(cluster, "gnt-instance", "list", "--no-headers", "-o", "name")
    assert "nosuch" in refused(cluster, "gnt-backup", "remove", "nosuch")
    assert no_staging(cluster)
    gnt(cluster, "gnt-instance", "remove", "-f", "bk6")


def test_the_rest_api_exports(cluster: VCluster) -> None:
    add_file(cluster, "bk9", "node1", "--no-start")
    master = NodePaths(str(cluster.node_dir(cluster.master())))
    where: Any = wait_for(lambda: paths.read_json(master.rapi_address), 30,
                          "the REST daemon's address")
    base = f"https://{where['address']}:{where['port']}"
    login = (cluster.root / "rapi-credentials").read_text().strip()
    code, job = _curl(base, login, "PUT", "/2/instances/bk9/prepare-export?mode=local")
    assert code == 200, job
    gnt(cluster, "gnt-job", "wait", str(job))
    body = {"mode": "local", "destination": "node2", "shutdown": False}
    code, job = _curl(base, login, "PUT", "/2/instances/bk9/export", body)
    assert code == 200, job
    gnt(cluster, "gnt-job", "wait", str(job))
    assert (export_dir(cluster, "node2", "bk9") / "config.ini").is_file()
    code, reply = _curl(base, login, "PUT", "/2/instances/bk9/export",
                        {"mode": "remote", "destination": "x"})
    assert code == 400, reply
    gnt(cluster, "gnt-backup", "remove", "bk9")
    gnt(cluster, "gnt-instance", "remove", "-f", "bk9")


def _curl(base: str, login: str, method: str, path: str,
          body: object = None) -> tuple[int, Any]:
    argv = ["curl", "-sk", "--max-time", "60", "-u", login, "-X", method, "-o", "-",
            "-w", "\n%{http_code}", base + path]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=90).stdout
    text, _, code = out.rpartition("\n")
    return int(code), json.loads(text) if text.strip() else None


def test_import_into_another_cluster(cluster: VCluster,
                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    add_file(cluster, "bk10", "node1", "--no-start")
    mark = b"to the other cluster " * 50
    write_mark(cluster, "node1", "bk10", mark)
    gnt(cluster, "gnt-backup", "export", "-n", "node2", "bk10")
    other = start_cluster(tmp_path_factory.mktemp("backup-other"), nodes=1)
    try:
        shutil.copytree(cluster.root / "os" / "dummy", other.root / "os" / "dummy")
        with open(other.root / "hosts", "a", encoding="ascii") as hosts:
            hosts.write(f"{NAMES['bk10']} bk10\n")
        target = export_dir(other, "node1")
        target.mkdir(parents=True, exist_ok=True)
        shutil.copytree(export_dir(cluster, "node2", "bk10"), target / "bk10")
        other.gnt("gnt-backup", "import", "-n", "node1", "--src-node", "node1",
                  "--no-start", "bk10")
        assert read_mark(other, "node1", "bk10", len(mark)) == mark
    finally:
        stop_cluster(other)
    gnt(cluster, "gnt-backup", "remove", "bk10")
    gnt(cluster, "gnt-instance", "remove", "-f", "bk10")
