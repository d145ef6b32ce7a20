"""Everything an admin does with instances beyond the first steps of test_instances.py: the
options of gnt-instance add, list and info as Ganeti shows them, the whole lifecycle (stop,
start, reboot, remove, reinstall, rename, modify, grow-disk, disks, move, failover, migrate),
multi-instance selectors, tags, every derived status, and gnt-os with a broken OS definition.

The cluster is this module's own; every test removes the instances it made, so that the
selector test (which acts on every instance) sees only its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from integration_kit import (
    FIXTURE_OS,
    PORT,
    Gnt,
    VCluster,
    job_id_of,
    os_cluster,
    pid_alive,
    wait_for,
)

MIB = 1024 * 1024
FILE_STORAGE = "srv/ganeti/file-storage"  # the cluster's file storage dir, below a node's disk
MAC_RE = re.compile(r"^aa:00:00(:[0-9a-f]{2}){3}$")
OS = ["-o", "dummy+default"]


def host_ip(index: int) -> str:
    """vmN resolves to 127.0.9.(100+N): addresses nobody listens on."""
    return f"127.0.9.{100 + index}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    names = {f"vm{index}": host_ip(index) for index in range(1, 80)}
    with os_cluster(tmp_path_factory.mktemp("instops"), names) as vc:
        yield vc


# --- what an admin looks at -----------------------------------------------------------------


def listing(gnt: Gnt, fields: str, *names: str) -> dict[str, list[str]]:
    """``gnt-instance list -o name,FIELDS``: name -> the other columns."""
    out = gnt("gnt-instance", "list", "--no-headers", "--separator=|", "-o", f"name,{fields}",
              *names)[1]
    return {cols[0]: cols[1:] for cols in (line.split("|") for line in out.splitlines())}


def value(gnt: Gnt, name: str, field: str) -> str:
    return listing(gnt, field, name)[name][0]


def status(gnt: Gnt, name: str) -> str:
    return value(gnt, name, "status")


def names(gnt: Gnt) -> list[str]:
    return gnt("gnt-instance", "list", "--no-headers", "-o", "name")[1].split()


def info(gnt: Gnt, name: str) -> str:
    return gnt("gnt-instance", "info", name)[1]


def info_lines(gnt: Gnt, name: str) -> list[str]:
    return [line.strip() for line in info(gnt, name).splitlines()]


def add(gnt: Gnt, name: str, *args: str, node: str = "node1") -> None:
    gnt("gnt-instance", "add", *args, "-n", node, name)


def add_file(gnt: Gnt, name: str, *args: str, node: str = "node1", size: str = "16m") -> None:
    add(gnt, name, "-t", "file", "--disk", f"0:size={size}", *OS, *args, node=node)


def add_diskless(gnt: Gnt, name: str, *args: str, node: str = "node1") -> None:
    add(gnt, name, "-t", "diskless", *OS, *args, node=node)


def remove(gnt: Gnt, *instances: str) -> None:
    for name in instances:
        gnt("gnt-instance", "remove", "-f", name)


def refused(gnt: Gnt, *args: str) -> str:
    """Run a command that must fail with a one-line error; returns that line."""
    rc, out, err = gnt(*args, check=False)
    assert rc != 0, f"{' '.join(args)} succeeded:\n{out}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def images(cluster: VCluster, name: str) -> list[Path]:
    """The disk images in any directory named after the instance, on every node."""
    return sorted(cluster.root.rglob(f"{name}/*file.disk*"))  # .file. and .sharedfile.


def node_images(cluster: VCluster, node: str, name: str) -> list[Path]:
    return [p for p in images(cluster, name) if cluster.node_dir(node) in p.parents]


def fake_state(cluster: VCluster, node: str, name: str) -> Path:
    return cluster.node_dir(node) / "hv" / "fake" / f"{name}.json"


def running_on(cluster: VCluster, name: str) -> list[str]:
    return [n for n in ("node1", "node2", "node3") if fake_state(cluster, n, name).exists()]


def record(image: Path, offset: int = 0) -> dict[str, str]:
    """The environment the dummy OS recorded at offset of the image (see common.sh)."""
    with open(image, "rb") as handle:
        handle.seek(offset)
        text = handle.read(65536).split(b"\0", 1)[0].decode()
    lines = text.splitlines()
    env = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    env["_header"] = lines[0] if lines else ""
    return env


def read_at(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(length)


def write_at(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)


def kill_noded(cluster: VCluster, node: str) -> None:
    pid = cluster.pid(node, "noded")
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), 10, f"the node daemon of {node} to stop")


# --- gnt-instance add -----------------------------------------------------------------------


def test_add_single_disk_and_routed_nic(cluster: VCluster, gnt: Gnt) -> None:
    add(gnt, "vm1", "-t", "file", "-s", "300m", *OS,
        "--net", "0:mac=aa:00:00:12:34:56,ip=10.9.8.7,mode=routed,link=rt0")
    fields = "disk.count,disk.sizes,nic.count,nic.macs,nic.ips,nic.modes,nic.links"
    assert listing(gnt, fields, "vm1")["vm1"] == [
        "1", "300", "1", "aa:00:00:12:34:56", "10.9.8.7", "routed", "rt0"]
    [image] = images(cluster, "vm1")
    assert image.stat().st_size == 300 * MIB
    env = record(image)  # what the OS create script saw
    assert (env["NIC_COUNT"], env["NIC_0_MAC"], env["NIC_0_IP"], env["NIC_0_MODE"],
            env["NIC_0_LINK"]) == ("1", "aa:00:00:12:34:56", "10.9.8.7", "routed", "rt0")
    # the same MAC (in capitals) on a new instance is refused, and nothing is left behind
    err = refused(gnt, "gnt-instance", "add", "-t", "diskless", *OS, "-n", "node2",
                  "--net", "0:mac=AA:00:00:12:34:56", "vm2")
    assert "aa:00:00:12:34:56" in err and "already in use" in err
    assert "vm2" not in names(gnt) and not running_on(cluster, "vm2")
    remove(gnt, "vm1")
    assert not images(cluster, "vm1")


def test_generated_macs_and_no_nics(cluster: VCluster, gnt: Gnt) -> None:
    add_diskless(gnt, "vm3", "--net", "0", "--net", "1:link=br9", "--net", "2", node="node2")
    add_diskless(gnt, "vm4", node="node2")
    add_diskless(gnt, "vm5", "--no-nics", node="node2")
    rows = listing(gnt, "nic.count,nic.macs,nic.links", "vm3", "vm4", "vm5")
    assert rows["vm3"][0] == "3" and rows["vm3"][2] == "br0,br9,br0"  # the cluster's link
    macs = rows["vm3"][1].split(",") + rows["vm4"][1].split(",")
    assert len(macs) == 4 and len(set(macs)) == 4
    assert all(MAC_RE.match(mac) for mac in macs), macs  # under the cluster's MAC prefix
    assert rows["vm5"] == ["0", "", ""]
    lines = info_lines(gnt, "vm5")
    assert lines[lines.index("NICs:") + 1] == "Disk template: diskless"
    remove(gnt, "vm3", "vm4", "vm5")


def test_tags_at_creation_and_tag_commands(cluster: VCluster, gnt: Gnt) -> None:
    add_diskless(gnt, "vm6", "--tags", "web,prod")
    assert value(gnt, "vm6", "tags") == "prod,web"
    assert gnt("gnt-instance", "list-tags", "vm6")[1].split() == ["prod", "web"]
    gnt("gnt-instance", "add-tags", "vm6", "db", "rack:r1")
    gnt("gnt-instance", "remove-tags", "vm6", "web")
    assert gnt("gnt-instance", "list-tags", "vm6")[1].split() == ["db", "prod", "rack:r1"]
    assert "nosuch" in refused(gnt, "gnt-instance", "remove-tags", "vm6", "nosuch")
    assert value(gnt, "vm6", "tags") == "db,prod,rack:r1"
    assert "'bad tag'" in refused(gnt, "gnt-instance", "add-tags", "vm6", "bad tag")
    remove(gnt, "vm6")
    # a bad tag is refused at creation too, and nothing is created
    err = refused(gnt, "gnt-instance", "add", "-t", "diskless", *OS, "-n", "node1",
                  "--tags", "ok,bad tag", "vm6")
    assert "'bad tag'" in err
    assert "vm6" not in names(gnt) and not running_on(cluster, "vm6")


def test_file_storage_dir(cluster: VCluster, gnt: Gnt) -> None:
    """As Ganeti: the disks go to FILE_STORAGE_DIR/SUBDIR/INSTANCE/."""
    add_file(gnt, "vm7", "--file-storage-dir", "custom/place", "--no-start")
    base = cluster.node_dir("node1") / "disk" / FILE_STORAGE
    [image] = images(cluster, "vm7")
    assert image.parent == base / "custom" / "place" / "vm7"
    assert f"/{FILE_STORAGE}/custom/place/vm7/" in info(gnt, "vm7")
    err = refused(gnt, "gnt-instance", "add", "-t", "file", "--disk", "0:size=1m", *OS,
                  "-n", "node1", "--file-storage-dir", "../escape", "vm8")
    assert "'../escape'" in err
    remove(gnt, "vm7")
    assert not (base / "custom" / "place" / "vm7").exists()


def test_no_start_and_no_install(cluster: VCluster, gnt: Gnt) -> None:
    add_file(gnt, "vm8", "--no-start", "--no-install")
    assert listing(gnt, "status,admin_state,oper_state", "vm8")["vm8"] == [
        "ADMIN_down", "down", "N"]
    [image] = images(cluster, "vm8")
    assert read_at(image, 0, 128 * 1024) == bytes(128 * 1024)  # no OS script wrote to it
    assert not list((cluster.node_dir("node1") / "log").rglob("*vm8*"))
    assert not running_on(cluster, "vm8")
    remove(gnt, "vm8")


def test_dry_run_creates_nothing(cluster: VCluster, gnt: Gnt) -> None:
    before = gnt("gnt-instance", "list")[1]
    rc, out, err = gnt("gnt-instance", "add", "--dry-run", "-t", "file", "--disk",
                       "0:size=16m", *OS, "-n", "node1", "vm9")
    assert rc == 0
    assert gnt("gnt-instance", "list")[1] == before
    assert not images(cluster, "vm9") and not running_on(cluster, "vm9")
    assert not list(cluster.root.rglob("*vm9*"))
    # a dry run still checks everything
    err = refused(gnt, "gnt-instance", "add", "--dry-run", "-t", "diskless", "-o",
                  "nosuchos+default", "-n", "node1", "vm9")
    assert "nosuchos" in err


def test_submit_prints_the_job_id(cluster: VCluster, gnt: Gnt) -> None:
    rc, out, err = gnt("gnt-instance", "add", "--submit", "-t", "diskless", *OS, "-n",
                       "node3", "vm10")
    job = job_id_of(err)
    gnt("gnt-job", "wait", str(job))
    assert gnt("gnt-job", "list", "--no-headers", "-o", "status", str(job))[1].strip() == \
        "success"
    assert status(gnt, "vm10") == "running"
    remove(gnt, "vm10")


def test_disk_count_limit(cluster: VCluster, gnt: Gnt) -> None:
    disks = [arg for i in range(17) for arg in ("--disk", f"{i}:size=1m")]
    err = refused(gnt, "gnt-instance", "add", "-t", "file", *disks, *OS, "-n", "node1", "vm11")
    assert "16" in err and "at most 16 disks" in err
    assert "vm11" not in names(gnt) and not images(cluster, "vm11")
    add(gnt, "vm11", "-t", "file", *disks[:32], *OS, "--no-install", "--no-start")
    assert value(gnt, "vm11", "disk.count") == "16"
    assert len(images(cluster, "vm11")) == 16
    remove(gnt, "vm11")
    assert not images(cluster, "vm11")


def test_name_check_and_ip_check(cluster: VCluster, gnt: Gnt) -> None:
    err = refused(gnt, "gnt-instance", "add", "-t", "diskless", *OS, "-n", "node1",
                  "--no-name-check", "vm12")
    assert "--no-ip-check" in err
    # something answers on the address the name resolves to: the address is in use
    for last in range(200, 255):
        address = f"127.0.9.{last}"
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind((address, PORT))
            break
        except OSError:
            listener.close()
    else:
        pytest.skip("no free loopback address for the IP check")
    with listener, open(cluster.root / "hosts", "a", encoding="ascii") as hosts:
        hosts.write(f"{address} busyvm\n")
        hosts.flush()
        listener.listen()
        err = refused(gnt, "gnt-instance", "add", "-t", "diskless", *OS, "-n", "node1",
                      "busyvm")
        assert address in err and "already in use" in err and "--no-ip-check" in err
        assert "busyvm" not in names(gnt)
        add_diskless(gnt, "busyvm", "--no-ip-check")
        assert status(gnt, "busyvm") == "running"
    remove(gnt, "busyvm")


def test_hypervisor_globals_stay_cluster_wide(cluster: VCluster, gnt: Gnt) -> None:
    """The fake hypervisor's only parameter, migration_mode, is global: as in Ganeti, an
    instance can't have its own."""
    err = refused(gnt, "gnt-instance", "add", "-t", "diskless", *OS, "-n", "node1",
                  "-H", "fake:migration_mode=non-live", "vm13")
    assert "migration_mode" in err and "cluster" in err
    assert "vm13" not in names(gnt)
    add_diskless(gnt, "vm13")
    err = refused(gnt, "gnt-instance", "modify", "-H", "migration_mode=non-live", "vm13")
    assert "migration_mode" in err and "cluster" in err
    remove(gnt, "vm13")


# --- list and info --------------------------------------------------------------------------


def test_list_columns_and_titles(cluster: VCluster, gnt: Gnt) -> None:
    add(gnt, "vm14", "-t", "file", "--disk", "0:size=32m", "--disk", "1:size=16m", *OS,
        "-B", "memory=192,vcpus=2", "--tags", "t1")
    header, *rows = gnt("gnt-instance", "list")[1].splitlines()
    assert header.split() == ["Instance", "Hypervisor", "OS", "Primary_node", "Status",
                              "Memory"]
    assert [row.split() for row in rows if row.startswith("vm14 ")] == [
        ["vm14", "fake", "dummy+default", "node1", "running", "192M"]]
    fields = ("name,be/maxmem,be/memory,be/minmem,be/vcpus,be/auto_balance,admin_state,"
              "oper_state,disk_template,disk.sizes,nic.macs,snodes,tags")
    header, row = gnt("gnt-instance", "list", "--separator=|", "-o", fields, "vm14")[1] \
        .splitlines()
    assert header.split("|") == [
        "Instance", "ConfigMaxMem", "ConfigMaxMem", "ConfigMinMem", "ConfigVCPUs",
        "Auto_balance", "InstanceState", "Running", "Disk_template", "Disk_sizes",
        "NIC_MACs", "Secondary_Nodes", "Tags"]
    cols = row.split("|")
    # with a separator sizes are plain MiB, as in Ganeti
    assert cols[:10] == ["vm14", "192", "192", "192", "2", "Y", "up", "Y", "file", "32,16"]
    assert MAC_RE.match(cols[10]) and cols[11:] == ["", "t1"]
    # hypervisor parameter fields: the fake hypervisor has none of the KVM ones
    header, row = gnt("gnt-instance", "list", "-o", "name,hv/kernel_path,hv/acpi",
                      "vm14")[1].splitlines()
    assert header.split() == ["Instance", "Kernel_path", "ACPI"]
    assert row.split() == ["vm14", "-", "-"]
    err = refused(gnt, "gnt-instance", "list", "-o", "name,hv/migration_mode")
    assert "hv/migration_mode" in err  # a global parameter is no instance field (Ganeti)
    remove(gnt, "vm14")


def test_info_shows_parameters_and_disks(cluster: VCluster, gnt: Gnt) -> None:
    add(gnt, "vm15", "-t", "file", "--disk", "0:size=32m", "--disk", "1:size=16m", *OS,
        "-B", "vcpus=2", "-O", "flavour=vanilla")
    lines = info_lines(gnt, "vm15")
    for expected in ["- Instance name: vm15", "State: configured to be up, actual state is up",
                     "- primary: node1", "Operating system: dummy+default", "Hypervisor: fake",
                     "flavour: vanilla", "vcpus: 2", "maxmem: default (128)",
                     "memory: default (128)", "minmem: default (128)",
                     "auto_balance: default (True)", "Disk template: file",
                     "- disk/0: file, size 32M", "- disk/1: file, size 16M"]:
        assert expected in lines, expected
    paths = [line.split(": ", 1)[1].split(" (")[0] for line in lines
             if line.startswith("on primary: ")]
    node_base = cluster.node_dir("node1") / "disk"
    assert [(node_base / p.lstrip("/")).stat().st_size for p in paths] == [32 * MIB, 16 * MIB]
    assert all(f"/{FILE_STORAGE}/vm15/" in p for p in paths)

    gnt("gnt-instance", "modify", "-B", "maxmem=256,minmem=64", "-O", "flavour=chocolate",
        "vm15")
    lines = info_lines(gnt, "vm15")
    # Ganeti shows the old name "memory" as inherited, whatever maxmem is
    for expected in ["maxmem: 256", "memory: default (256)", "minmem: 64",
                     "flavour: chocolate"]:
        assert expected in lines, expected
    assert not [line for line in lines if line.startswith(("maxmem: default",
                                                           "minmem: default"))]
    assert listing(gnt, "be/maxmem,be/minmem", "vm15")["vm15"] == ["256", "64"]
    err = refused(gnt, "gnt-instance", "modify", "-B", "minmem=300", "vm15")
    assert "minmem (300)" in err and "maxmem (256)" in err
    # the old memory= sets both
    gnt("gnt-instance", "modify", "-B", "memory=512", "vm15")
    assert listing(gnt, "be/maxmem,be/minmem", "vm15")["vm15"] == ["512", "512"]
    # back to the inherited value
    gnt("gnt-instance", "modify", "-B", "maxmem=default,minmem=default", "vm15")
    assert "maxmem: default (128)" in info_lines(gnt, "vm15")

    gnt("gnt-instance", "shutdown", "vm15")
    assert "State: configured to be down, actual state is down" in info_lines(gnt, "vm15")
    remove(gnt, "vm15")


# --- lifecycle ------------------------------------------------------------------------------


def test_stop_timeout_and_no_remember(cluster: VCluster, gnt: Gnt) -> None:
    add_diskless(gnt, "vm16")
    gnt("gnt-instance", "shutdown", "--timeout", "5", "vm16")
    assert listing(gnt, "status,admin_state", "vm16")["vm16"] == ["ADMIN_down", "down"]
    assert "'x'" in refused(gnt, "gnt-instance", "shutdown", "--timeout", "x", "vm16")
    gnt("gnt-instance", "startup", "vm16")
    assert status(gnt, "vm16") == "running"
    # stopped without recording it: still meant to run, so an error
    gnt("gnt-instance", "stop", "--no-remember", "vm16")
    assert listing(gnt, "status,admin_state,oper_state", "vm16")["vm16"] == [
        "ERROR_down", "up", "N"]
    gnt("gnt-instance", "start", "vm16")
    assert status(gnt, "vm16") == "running"
    # started without recording it: running while meant to be down
    gnt("gnt-instance", "stop", "vm16")
    gnt("gnt-instance", "start", "--no-remember", "vm16")
    assert listing(gnt, "status,admin_state,oper_state", "vm16")["vm16"] == [
        "ERROR_up", "down", "Y"]
    gnt("gnt-instance", "stop", "vm16")
    assert status(gnt, "vm16") == "ADMIN_down"
    # backend parameters for this start only (the old memory= included)
    gnt("gnt-instance", "start", "-B", "memory=256", "vm16")
    assert listing(gnt, "status,oper_ram,be/maxmem", "vm16")["vm16"] == [
        "running", "256", "128"]
    remove(gnt, "vm16")


def test_reboot_types(cluster: VCluster, gnt: Gnt) -> None:
    add_diskless(gnt, "vm17", node="node2")
    state = fake_state(cluster, "node2", "vm17")

    def started() -> float:
        return float(json.loads(state.read_text())["started"])

    for kind in ("soft", "hard", "full"):
        before = started()
        gnt("gnt-instance", "reboot", "-t", kind, "vm17")
        assert status(gnt, "vm17") == "running"
        assert started() > before, kind
    assert "'bogus'" in refused(gnt, "gnt-instance", "reboot", "-t", "bogus", "vm17")
    # as in Ganeti, rebooting a stopped instance starts it and records it as up
    gnt("gnt-instance", "shutdown", "vm17")
    gnt("gnt-instance", "reboot", "vm17")
    assert listing(gnt, "status,admin_state", "vm17")["vm17"] == ["running", "up"]
    remove(gnt, "vm17")


def test_node_daemon_down_remove_and_restart(cluster: VCluster, gnt: Gnt) -> None:
    """ERROR_nodedown; remove needs --ignore-failures; the fake hypervisor's instances
    outlive a node daemon restart."""
    add_diskless(gnt, "vm18", node="node3")
    add_file(gnt, "vm19", node="node3")
    kill_noded(cluster, "node3")
    try:
        rows = listing(gnt, "status,oper_state,oper_ram", "vm18", "vm19")
        assert rows == {"vm18": ["ERROR_nodedown", "?", "?"],
                        "vm19": ["ERROR_nodedown", "?", "?"]}
        err = refused(gnt, "gnt-instance", "remove", "-f", "vm19")
        assert "node3" in err and "--ignore-failures" in err
        assert "vm19" in names(gnt)
        gnt("gnt-instance", "remove", "-f", "--ignore-failures", "vm19")
        assert "vm19" not in names(gnt)
    finally:
        cluster.up()  # starts the node daemon again
    wait_for(lambda: status(gnt, "vm18") == "running", 10, "node3 to answer again")
    assert fake_state(cluster, "node3", "vm18").exists()
    # instance names still resolve after the restart (the hosts file kept its entries)
    gnt("gnt-instance", "stop", "vm18")
    gnt("gnt-instance", "rename", "vm18", "vm20")
    assert status(gnt, "vm20") == "ADMIN_down"
    remove(gnt, "vm20")
    # what the unreachable node kept of vm19 is debris only that node can clear
    assert running_on(cluster, "vm19") == ["node3"]
    fake_state(cluster, "node3", "vm19").unlink()
    for image in images(cluster, "vm19"):
        image.unlink()


def test_reinstall(cluster: VCluster, gnt: Gnt) -> None:
    add_file(gnt, "vm21")
    [image] = images(cluster, "vm21")
    assert record(image)["OS_VARIANT"] == "default"
    err = refused(gnt, "gnt-instance", "reinstall", "-f", "-o", "dummy+other", "vm21")
    assert "running" in err
    gnt("gnt-instance", "shutdown", "vm21")
    err = refused(gnt, "gnt-instance", "reinstall", "vm21")  # no terminal to confirm on
    assert "-f" in err
    write_at(image, 0, bytes(4096))
    gnt("gnt-instance", "reinstall", "-f", "-o", "dummy+other", "vm21")
    env = record(image)
    assert env["_header"] == "dummy-os create vm21"
    assert (env["OS_VARIANT"], env["INSTANCE_OS"], env["INSTANCE_REINSTALL"]) == (
        "other", "dummy+other", "1")
    assert listing(gnt, "os,status", "vm21")["vm21"] == ["dummy+other", "ADMIN_down"]
    remove(gnt, "vm21")


def test_rename_moves_the_disks(cluster: VCluster, gnt: Gnt) -> None:
    add_file(gnt, "vm22", "--disk", "1:size=8m")
    base = cluster.node_dir("node1") / "disk" / FILE_STORAGE
    assert "running" in refused(gnt, "gnt-instance", "rename", "vm22", "vm23")
    gnt("gnt-instance", "shutdown", "vm22")
    rc, out, err = gnt("gnt-instance", "rename", "vm22", "vm23")
    assert "renamed to 'vm23'" in out
    assert "vm22" not in names(gnt) and status(gnt, "vm23") == "ADMIN_down"
    assert not (base / "vm22").exists()
    new = images(cluster, "vm23")
    assert len(new) == 2 and all(p.parent == base / "vm23" for p in new)
    assert f"/{FILE_STORAGE}/vm23/" in info(gnt, "vm23")
    # the OS rename script ran and left its mark at 64 KiB of the first disk
    first = [p for p in new if p.name.endswith(".disk0")][0]
    env = record(first, 65536)
    assert env["_header"] == "dummy-os rename vm23"
    assert env["OLD_INSTANCE_NAME"] == "vm22"
    assert record(first)["_header"] == "dummy-os create vm22"  # the data came along
    gnt("gnt-instance", "startup", "vm23")
    assert status(gnt, "vm23") == "running"
    gnt("gnt-instance", "shutdown", "vm23")
    # a name that does not resolve is refused, and so is an existing one
    assert "does not resolve" in refused(gnt, "gnt-instance", "rename", "vm23", "nosuchvm")
    add_diskless(gnt, "vm24", "--no-start")
    assert "already exists" in refused(gnt, "gnt-instance", "rename", "vm23", "vm24")
    remove(gnt, "vm23", "vm24")


def test_rename_keeps_the_file_storage_dir(cluster: VCluster, gnt: Gnt) -> None:
    add_file(gnt, "vm25", "--file-storage-dir", "team", "--no-start")
    gnt("gnt-instance", "rename", "vm25", "vm26")
    base = cluster.node_dir("node1") / "disk" / FILE_STORAGE / "team"
    [image] = images(cluster, "vm26")
    assert image.parent == base / "vm26" and not (base / "vm25").exists()
    remove(gnt, "vm26")


def test_modify_disks(cluster: VCluster, gnt: Gnt) -> None:
    add_file(gnt, "vm27")
    # as in Ganeti, a running instance gets new disks (used from its next start)...
    gnt("gnt-instance", "modify", "--disk", "add:size=8m", "vm27")
    assert listing(gnt, "disk.sizes,status", "vm27")["vm27"] == ["16,8", "running"]
    sizes = sorted(p.stat().st_size for p in images(cluster, "vm27"))
    assert sizes == [8 * MIB, 16 * MIB]
    gnt("gnt-instance", "modify", "--disk", "0:modify,mode=ro", "vm27")
    lines = info_lines(gnt, "vm27")
    disk0 = lines.index("- disk/0: file, size 16M")
    assert lines[disk0 + 1] == "access mode: ro"
    # ... but loses none
    err = refused(gnt, "gnt-instance", "modify", "--disk", "1:remove", "vm27")
    assert "running" in err
    gnt("gnt-instance", "shutdown", "vm27")
    first = images(cluster, "vm27")
    gnt("gnt-instance", "modify", "--disk", "1:remove", "vm27")
    assert value(gnt, "vm27", "disk.sizes") == "16"
    left = images(cluster, "vm27")
    assert len(left) == 1 and left[0].stat().st_size == 16 * MIB and left[0] in first
    assert "last disk" in refused(gnt, "gnt-instance", "modify", "--disk", "0:remove", "vm27")
    assert "index 3" in refused(gnt, "gnt-instance", "modify", "--disk", "3:remove", "vm27")
    gnt("gnt-instance", "startup", "vm27")
    assert status(gnt, "vm27") == "running"
    remove(gnt, "vm27")


def test_modify_nics(cluster: VCluster, gnt: Gnt) -> None:
    add_diskless(gnt, "vm28")
    first = value(gnt, "vm28", "nic.macs")
    gnt("gnt-instance", "modify", "--net", "add:link=br7", "vm28")
    macs = value(gnt, "vm28", "nic.macs").split(",")
    assert len(macs) == 2 and macs[0] == first and MAC_RE.match(macs[1]) and macs[1] != first
    assert value(gnt, "vm28", "nic.links") == "br0,br7"
    gnt("gnt-instance", "modify", "--net", "1:modify,ip=10.3.3.3,mode=routed", "vm28")
    assert listing(gnt, "nic.ips,nic.modes", "vm28")["vm28"] == ["None,10.3.3.3",
                                                                  "bridged,routed"]
    # a MAC or an IP of another NIC is refused, and nothing changes
    add_diskless(gnt, "vm41", "--no-start")
    other = value(gnt, "vm41", "nic.macs")
    for change in (f"add:mac={other}", f"0:modify,mac={other}"):
        err = refused(gnt, "gnt-instance", "modify", "--net", change, "vm28")
        assert other in err and "vm41" in err
    err = refused(gnt, "gnt-instance", "modify", "--net", "0:modify,ip=10.3.3.3", "vm41")
    assert "10.3.3.3" in err and "vm28" in err
    assert value(gnt, "vm28", "nic.macs").split(",") == macs
    gnt("gnt-instance", "modify", "--net", "1:modify,mac=generate", "vm28")
    new = value(gnt, "vm28", "nic.macs").split(",")[1]
    assert MAC_RE.match(new) and new not in (macs[1], other)
    gnt("gnt-instance", "modify", "--net", "0:remove", "vm28")
    assert listing(gnt, "nic.count,nic.macs", "vm28")["vm28"] == ["1", new]
    remove(gnt, "vm28", "vm41")


def test_offline_and_online(cluster: VCluster, gnt: Gnt) -> None:
    add_diskless(gnt, "vm29")
    assert "down" in refused(gnt, "gnt-instance", "modify", "--offline", "vm29")
    gnt("gnt-instance", "shutdown", "vm29")
    gnt("gnt-instance", "startup", "--no-remember", "vm29")  # down, but running: ERROR_up
    assert "running" in refused(gnt, "gnt-instance", "modify", "--offline", "vm29")
    gnt("gnt-instance", "shutdown", "vm29")
    gnt("gnt-instance", "modify", "--offline", "vm29")
    assert listing(gnt, "status,admin_state", "vm29")["vm29"] == ["ADMIN_offline", "offline"]
    rc, out, err = gnt("gnt-instance", "startup", "vm29", check=False)
    assert rc != 0 and "offline" in err
    assert status(gnt, "vm29") == "ADMIN_offline" and not running_on(cluster, "vm29")
    gnt("gnt-instance", "modify", "--online", "vm29")
    assert status(gnt, "vm29") == "ADMIN_down"
    gnt("gnt-instance", "startup", "vm29")
    assert status(gnt, "vm29") == "running"
    remove(gnt, "vm29")


def test_grow_disk(cluster: VCluster, gnt: Gnt) -> None:
    add_file(gnt, "vm30")
    gnt("gnt-instance", "grow-disk", "vm30", "0", "16m")
    [image] = images(cluster, "vm30")
    assert value(gnt, "vm30", "disk.sizes") == "32" and image.stat().st_size == 32 * MIB
    gnt("gnt-instance", "grow-disk", "--absolute", "vm30", "0", "64m")
    assert value(gnt, "vm30", "disk.sizes") == "64" and image.stat().st_size == 64 * MIB
    err = refused(gnt, "gnt-instance", "grow-disk", "--absolute", "vm30", "0", "32m")
    assert "shrink" in err
    assert "disk 2" in refused(gnt, "gnt-instance", "grow-disk", "vm30", "2", "1m")
    assert value(gnt, "vm30", "disk.sizes") == "64" and image.stat().st_size == 64 * MIB
    assert record(image)["_header"] == "dummy-os create vm30"  # the data stays
    remove(gnt, "vm30")


def test_activate_and_deactivate_disks(cluster: VCluster, gnt: Gnt) -> None:
    add_file(gnt, "vm31", "--disk", "1:size=8m")
    assert "running" in refused(gnt, "gnt-instance", "deactivate-disks", "vm31")
    gnt("gnt-instance", "shutdown", "vm31")
    out = gnt("gnt-instance", "activate-disks", "vm31")[1]
    lines = out.splitlines()
    assert [line.rsplit(":", 1)[0] for line in lines] == ["node1:disk/0", "node1:disk/1"]
    assert sorted(Path(line.rsplit(":", 1)[1]) for line in lines) == images(cluster, "vm31")
    gnt("gnt-instance", "deactivate-disks", "vm31")
    remove(gnt, "vm31")


def test_move_copies_a_file_instance(cluster: VCluster, gnt: Gnt) -> None:
    add_file(gnt, "vm32", size="64m")
    [source] = images(cluster, "vm32")
    marker = b"cardume move marker"
    write_at(source, 40 * MIB, marker)
    assert "-f" in refused(gnt, "gnt-instance", "move", "-n", "node2", "vm32")
    assert "node1" in refused(gnt, "gnt-instance", "move", "-f", "-n", "node1", "vm32")
    gnt("gnt-instance", "move", "-f", "-n", "node2", "vm32")
    assert listing(gnt, "pnode,status", "vm32")["vm32"] == ["node2", "running"]
    assert running_on(cluster, "vm32") == ["node2"]
    assert not node_images(cluster, "node1", "vm32")
    [target] = node_images(cluster, "node2", "vm32")
    assert target.stat().st_size == 64 * MIB
    assert read_at(target, 40 * MIB, len(marker)) == marker
    assert record(target)["_header"] == "dummy-os create vm32"
    assert target.stat().st_blocks * 512 <= 32 * MIB  # what was never written stays a hole
    # failover and migrate can't move a disk that lives on one node
    for command in ("failover", "migrate"):
        err = refused(gnt, "gnt-instance", command, "-f", "vm32")
        assert "file" in err and "gnt-instance move" in err
    assert listing(gnt, "pnode,status", "vm32")["vm32"] == ["node2", "running"]
    # a stopped instance moves and stays stopped
    gnt("gnt-instance", "shutdown", "vm32")
    gnt("gnt-instance", "move", "-f", "-n", "node3", "vm32")
    assert listing(gnt, "pnode,status", "vm32")["vm32"] == ["node3", "ADMIN_down"]
    assert not running_on(cluster, "vm32")
    [moved] = images(cluster, "vm32")
    assert cluster.node_dir("node3") in moved.parents
    assert read_at(moved, 40 * MIB, len(marker)) == marker
    remove(gnt, "vm32")
    assert not images(cluster, "vm32")


def test_sharedfile_stopped_instance(cluster: VCluster, gnt: Gnt) -> None:
    add(gnt, "vm33", "-t", "sharedfile", "--disk", "0:size=16m", *OS, "--no-start")
    err = refused(gnt, "gnt-instance", "migrate", "-f", "vm33")
    assert "not running" in err and "failover" in err
    gnt("gnt-instance", "failover", "-f", "-n", "node3", "vm33")
    assert listing(gnt, "pnode,status", "vm33")["vm33"] == ["node3", "ADMIN_down"]
    assert not running_on(cluster, "vm33")
    # --allow-failover lets the migration of a stopped instance become a failover
    gnt("gnt-instance", "migrate", "-f", "--allow-failover", "-n", "node2", "vm33")
    assert listing(gnt, "pnode,status", "vm33")["vm33"] == ["node2", "ADMIN_down"]
    gnt("gnt-instance", "startup", "vm33")
    assert running_on(cluster, "vm33") == ["node2"]
    # always_failover turns a live migration into stop, move, start
    gnt("gnt-instance", "modify", "-B", "always_failover=true", "vm33")
    gnt("gnt-instance", "migrate", "-f", "-n", "node3", "vm33")
    assert listing(gnt, "pnode,status", "vm33")["vm33"] == ["node3", "running"]
    assert running_on(cluster, "vm33") == ["node3"]
    remove(gnt, "vm33")
    assert not images(cluster, "vm33")


# --- several instances at once ---------------------------------------------------------------


def test_multi_instance_selectors(cluster: VCluster, gnt: Gnt) -> None:
    assert names(gnt) == [], "an earlier test left instances behind"
    add_diskless(gnt, "vm34", node="node2")
    add_diskless(gnt, "vm35", node="node2")
    add_diskless(gnt, "vm36", node="node3")
    err = refused(gnt, "gnt-instance", "shutdown", "--node", "node2")
    assert "2 instances" in err and "--force-multiple" in err
    assert {n: status(gnt, n) for n in ("vm34", "vm35", "vm36")} == {
        "vm34": "running", "vm35": "running", "vm36": "running"}
    gnt("gnt-instance", "shutdown", "--node", "node2", "--force-multiple")
    assert listing(gnt, "status") == {"vm34": ["ADMIN_down"], "vm35": ["ADMIN_down"],
                                      "vm36": ["running"]}
    gnt("gnt-instance", "shutdown", "--primary", "node3", "--force-multiple")
    assert status(gnt, "vm36") == "ADMIN_down"
    assert "--force-multiple" in refused(gnt, "gnt-instance", "startup", "--all")
    gnt("gnt-instance", "startup", "--all", "--force-multiple")
    assert listing(gnt, "status") == {"vm34": ["running"], "vm35": ["running"],
                                      "vm36": ["running"]}
    gnt("gnt-instance", "add-tags", "vm35", "group-b")
    gnt("gnt-instance", "shutdown", "--tags", "group-b", "--force-multiple")
    assert listing(gnt, "status")["vm35"] == ["ADMIN_down"]
    remove(gnt, "vm34", "vm35", "vm36")


# --- the derived status ---------------------------------------------------------------------


def test_status_node_offline(cluster: VCluster, gnt: Gnt) -> None:
    add_diskless(gnt, "vm37", node="node3")
    gnt("gnt-node", "modify", "-O", "yes", "node3")
    try:
        assert listing(gnt, "status,oper_state,admin_state", "vm37")["vm37"] == [
            "ERROR_nodeoffline", "*", "up"]
    finally:
        gnt("gnt-node", "modify", "-O", "no", "node3")
    assert status(gnt, "vm37") == "running"
    remove(gnt, "vm37")


def test_status_wrong_node(cluster: VCluster, gnt: Gnt) -> None:
    add_diskless(gnt, "vm38", node="node1")
    state = fake_state(cluster, "node1", "vm38")
    elsewhere = fake_state(cluster, "node2", "vm38")
    elsewhere.parent.mkdir(parents=True, exist_ok=True)  # node2 may never have run one
    os.replace(state, elsewhere)  # the hypervisor of node2 runs it now
    # as Ganeti: running, but not on its primary node
    assert listing(gnt, "status,oper_state,oper_ram", "vm38")["vm38"] == [
        "ERROR_wrongnode", "Y", "128"]
    # cluster verify says so, both ways, and how it may have come about
    assert verify_errors(gnt) == [
        "ERROR: instance vm38: runs on node2, not on its primary node node1 (after an "
        "interrupted migration: gnt-instance migrate --cleanup -n node2 vm38)",
        "ERROR: instance vm38: not running on its primary node node1 "
        "(gnt-instance migrate --cleanup -n node2 vm38)"]  # a start would be refused
    # and something unknown to the configuration running on a node
    orphan = fake_state(cluster, "node3", "ghost")
    orphan.write_text(json.dumps({"name": "ghost", "uuid": None, "memory": 64, "vcpus": 1,
                                  "disks": [], "started": 0.0}))
    try:
        assert "ERROR: node node3: instance ghost runs here but is not in the " \
            "configuration" in verify_errors(gnt)
    finally:
        orphan.unlink()
    os.replace(elsewhere, state)
    assert status(gnt, "vm38") == "running"
    assert verify_errors(gnt) == []
    remove(gnt, "vm38")


def verify_errors(gnt: Gnt) -> list[str]:
    """The problems gnt-cluster verify reports (exit 1 when there are any)."""
    rc, out, _ = gnt("gnt-cluster", "verify", check=False)
    found = [line.split(" - ", 1)[1] for line in out.splitlines() if " - ERROR" in line]
    assert rc == (1 if found else 0), out
    return found


def test_status_error_up_from_the_hypervisor(cluster: VCluster, gnt: Gnt) -> None:
    """The status comes from what the hypervisor runs, whatever the cluster did."""
    add_diskless(gnt, "vm40", "--no-start", node="node2")
    state = fake_state(cluster, "node2", "vm40")
    state.write_text(json.dumps({"name": "vm40", "uuid": None, "memory": 64, "vcpus": 1,
                                 "disks": [], "started": 0.0}))
    assert listing(gnt, "status,admin_state,oper_state,oper_ram", "vm40")["vm40"] == [
        "ERROR_up", "down", "Y", "64"]
    assert verify_errors(gnt) == ["ERROR: instance vm40: runs on node2 but is marked "
                                  "stopped (gnt-instance shutdown vm40)"]
    gnt("gnt-instance", "shutdown", "vm40")  # stops what runs, though it is already "down"
    assert not state.exists() and status(gnt, "vm40") == "ADMIN_down"
    remove(gnt, "vm40")


# --- gnt-os ---------------------------------------------------------------------------------


def test_os_commands_with_a_broken_os(cluster: VCluster, gnt: Gnt) -> None:
    broken = cluster.root / "os" / "broken"
    shutil.copytree(FIXTURE_OS, broken)
    (broken / "rename").unlink()
    try:
        out = gnt("gnt-os", "list")[1].splitlines()
        assert out[0] == "Name"
        assert "dummy+default" in out and "dummy+other" in out
        assert not [line for line in out if line.startswith("broken")]
        rc, out, err = gnt("gnt-os", "diagnose", check=False)
        assert rc == 1  # some OS is invalid somewhere
        lines = out.splitlines()
        assert "OS: broken [global status: invalid]" in lines
        assert "OS: dummy [global status: valid]" in lines
        assert "  Variants: [default, other]" in lines
        for node in ("node1", "node2", "node3"):
            assert (f"  Node: {node}, status: invalid - missing script 'rename' (path: "
                    f"{broken}) [no API versions declared] [trusted]") in lines
            assert (f"  Node: {node}, status: valid (path: {cluster.root / 'os' / 'dummy'}) "
                    "[API versions: 20] [variants: default, other] "
                    "[parameters: flavour, record] [trusted]") in lines
        out = gnt("gnt-os", "info", "broken", "dummy")[1]
        assert "broken:\n  - valid: False\n" in out
        assert ("dummy:\n  - valid: True\n  - hidden: False\n  - blacklisted: False\n"
                "  - API versions:\n    - 20\n  - variants:\n    - default\n    - other\n"
                "  - parameters:\n    - flavour: ") in out
        err = refused(gnt, "gnt-instance", "add", "-t", "diskless", "-o", "broken", "-n",
                      "node1", "vm39")
        assert "broken" in err and "rename" in err
        assert "vm39" not in names(gnt)
    finally:
        shutil.rmtree(broken)
    assert "OS: broken" not in gnt("gnt-os", "diagnose", check=False)[1]
