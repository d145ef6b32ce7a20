"""Instance policies as an admin meets them: bounds set with gnt-cluster modify and shown
by gnt-cluster info, an instance modify beyond them refused (and let through with
--ignore-ipolicy), a group overriding the cluster's policy and handing it back with
``default``, bad values refused with nothing changed, and verify naming the instance that
is outside its policy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from integration_kit import Gnt, VCluster, os_cluster

OS = ["-o", "dummy+default"]
MIN = "min:memory-size=128,cpu-count=1,disk-count=1,disk-size=1024,nic-count=1,spindle-use=1"
MAX = "max:memory-size={mem},cpu-count=4,disk-count=16,disk-size=1048576,nic-count=8," \
      "spindle-use=12"


def bounds(max_memory: str) -> str:
    return f"{MIN},/{MAX.format(mem=max_memory)}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VCluster]:
    with os_cluster(tmp_path_factory.mktemp("ipolicy"), {"vm1": "127.0.9.101"}) as vc:
        yield vc


def policy_section(text: str, title: str) -> list[str]:
    """The lines of an info document's policy, from its title to the next top-level key."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(title))
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = next((i for i in range(start + 1, len(lines))
                if len(lines[i]) - len(lines[i].lstrip()) <= indent), len(lines))
    return [line.rstrip() for line in lines[start:end]]


def refused(gnt: Gnt, cluster: VCluster, *args: str) -> str:
    """A command that must fail with one line and change nothing; returns that line."""
    before = cluster.snapshot()
    rc, out, err = gnt(*args, check=False)
    assert rc != 0, f"{' '.join(args)} succeeded:\n{out}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert cluster.snapshot() == before
    return lines[0]


def maxmem(gnt: Gnt) -> str:
    return gnt("gnt-instance", "list", "--no-headers", "-o", "be/maxmem", "vm1")[1].strip()


def verify(gnt: Gnt) -> list[str]:
    rc, out, _ = gnt("gnt-cluster", "verify", check=False)
    return [line.split(" - ", 1)[1] for line in out.splitlines() if " - " in line]


def test_bounds_show_in_cluster_info(gnt: Gnt) -> None:
    gnt("gnt-cluster", "modify", "--ipolicy-bounds-specs", bounds("512"),
        "--ipolicy-vcpu-ratio", "2")
    section = policy_section(gnt("gnt-cluster", "info")[1],
                             "Instance policy - limits for instances")
    assert section[:3] == ["Instance policy - limits for instances:", "  bounds specs:",
                           "    - min/0:"]
    assert "      max/0:" in section
    at = section.index("      max/0:")
    assert section[at + 4] == "        memory-size: 512"
    assert "  vcpu-ratio: 2" in section and "  spindle-ratio: 32" in section
    assert "  std:" in section and "    memory-size: 128" in section


def test_modify_beyond_the_bounds_is_refused(cluster: VCluster, gnt: Gnt) -> None:
    gnt("gnt-instance", "add", "-t", "diskless", *OS, "-B", "memory=128", "--no-start",
        "-n", "node1", "vm1")
    line = refused(gnt, cluster, "gnt-instance", "modify", "-B", "maxmem=1024", "vm1")
    assert line.startswith("Failure: wrong_input: Instance allocation to group "), line
    assert "(default) violates policy: memory-size value 1024 is not in range [128, 512]" \
        in line, line
    assert maxmem(gnt) == "128M"
    line = refused(gnt, cluster, "gnt-instance", "modify", "-B", "vcpus=6", "vm1")
    assert "cpu-count value 6 is not in range [1, 4]" in line

    out = gnt("gnt-instance", "modify", "--ignore-ipolicy", "-B", "maxmem=1024", "vm1")[1]
    assert " - be/maxmem -> 1024" in out
    assert maxmem(gnt) == "1.0G"
    assert "WARNING: instance vm1: memory-size value 1024 is not in range [128, 512]" \
        in verify(gnt)


def test_a_group_overrides_the_cluster_then_inherits_again(gnt: Gnt) -> None:
    gnt("gnt-group", "modify", "--ipolicy-bounds-specs", bounds("2g"),
        "--ipolicy-disk-templates", "diskless,file", "default")
    section = policy_section(gnt("gnt-group", "info", "default")[1], "Instance policy")
    assert "          memory-size: 2048" in section
    assert "    allowed disk templates: diskless, file" in section
    assert "    vcpu-ratio: default (2)" in section
    assert not [line for line in verify(gnt) if "vm1" in line]
    gnt("gnt-instance", "modify", "-B", "maxmem=1536", "vm1")  # within the group's bounds
    assert maxmem(gnt) == "1.5G"

    _, _, err = gnt("gnt-group", "modify", "--ipolicy-bounds-specs", "default",
                    "--ipolicy-disk-templates", "default", "default")
    assert "After the ipolicy change the following instances violate them: vm1" in err + _
    section = policy_section(gnt("gnt-group", "info", "default")[1], "Instance policy")
    assert "          memory-size: default (512)" in section
    assert "    allowed disk templates: default (" in "\n".join(section)
    assert "WARNING: instance vm1: memory-size value 1536 is not in range [128, 512]" \
        in verify(gnt)
    gnt("gnt-instance", "modify", "-B", "maxmem=256", "vm1")
    assert not [line for line in verify(gnt) if "vm1" in line]


@pytest.mark.parametrize(("args", "expected"), [
    (["gnt-cluster", "modify", "--ipolicy-bounds-specs",
      f"{MIN.replace('memory-size=128', 'memory-size=1024')},/{MAX.format(mem='512')}"],
     "min 1024 is above max 512"),
    (["gnt-cluster", "modify", "--ipolicy-std-specs", "memory-size=4096"],
     "invalid std specs: not within the bounds specs (memory-size value 4096 is not in "
     "range [128, 512])"),
    (["gnt-cluster", "modify", "--ipolicy-std-specs", "colour=1"], "unknown spec 'colour'"),
    (["gnt-cluster", "modify", "--ipolicy-disk-templates", "floppy"],
     "invalid disk template(s) floppy"),
    (["gnt-cluster", "modify", "--ipolicy-disk-templates", "blockdev"],
     "not enabled on the cluster: blockdev"),
    (["gnt-cluster", "modify", "--ipolicy-vcpu-ratio", "lots"],
     "invalid --ipolicy-vcpu-ratio 'lots': expected a number above 0"),
    (["gnt-cluster", "modify", "--ipolicy-vcpu-ratio", "default"],
     "can't unset instance policy key 'vcpu-ratio' on the cluster"),
    (["gnt-group", "modify", "--ipolicy-bounds-specs", MIN, "default"],
     "missing max specs"),
])
def test_bad_values_are_refused_and_change_nothing(cluster: VCluster, gnt: Gnt,
                                                   args: list[str], expected: str) -> None:
    line = refused(gnt, cluster, *args)
    assert line.startswith("Failure: wrong_input: ") and expected in line, line


def test_a_group_is_added_with_its_own_policy(gnt: Gnt) -> None:
    gnt("gnt-group", "add", "--ipolicy-vcpu-ratio", "3", "--ipolicy-disk-templates", "file",
        "g2")
    section = policy_section(gnt("gnt-group", "info", "g2")[1], "Instance policy")
    assert "    vcpu-ratio: 3" in section and "    allowed disk templates: file" in section
    assert "    spindle-ratio: default (32)" in section
    assert "          memory-size: default (128)" in section
    gnt("gnt-group", "remove", "g2")
