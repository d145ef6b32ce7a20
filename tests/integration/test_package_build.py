"""``./dev package`` builds a Debian package that installs and runs.

What an admin checks: ``dpkg-deb -I`` (the dependencies on Debian's packages), ``dpkg-deb -c``
(the commands, daemons, units, man pages, completion), ``systemd-analyze verify`` on the
units, the packaged commands run with Debian's own python3, the packaged node daemon tells
systemd it is ready, and ``dpkg -i`` / ``dpkg --purge`` for real in a throw-away root (an
overlay over this machine's root in a private mount namespace, so nothing here changes).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

from cardume.cli.docgen import commands, family_parser
from cardume.cli.main import FAMILIES

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
UNITS = ("cardume-noded.service", "cardume-masterd.service", "cardume-watcher.service",
         "cardume-watcher.timer")


def _scripts() -> dict[str, str]:
    with open(REPO / "pyproject.toml", "rb") as handle:
        return dict(tomllib.load(handle)["project"]["scripts"])


def _version() -> str:
    with open(REPO / "pyproject.toml", "rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("CARDUME_ROOT", "CARDUME_NODE", "PYTHONPATH", "NOTIFY_SOCKET"):
        env.pop(var, None)
    return env


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([str(REPO / "dev"), "package", "--out", str(out)], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    path = out / f"cardume_{_version()}_all.deb"
    assert path.is_file()
    assert done.stdout.strip() == str(path)
    return path


@pytest.fixture(scope="module")
def tree(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    subprocess.run(["dpkg-deb", "-e", str(deb), str(root / "DEBIAN")], check=True)
    return root


def _field(info: str, name: str) -> str:
    match = re.search(rf"^ {name}: (.*)$", info, re.M)
    assert match, f"no {name} in the control file"
    return match.group(1)


def test_control_names_debian_dependencies(deb: Path) -> None:
    info = subprocess.run(["dpkg-deb", "-I", str(deb)], capture_output=True, text=True,
                          check=True).stdout
    assert _field(info, "Package") == "cardume"
    assert _field(info, "Version") == _version()
    assert _field(info, "Architecture") == "all"
    depends = _field(info, "Depends")
    assert "python3 (>= 3.11)" in depends and "python3-cryptography" in depends
    recommends = _field(info, "Recommends")
    for package in ("qemu-system-x86", "lvm2", "drbd-utils", "socat"):
        assert package in recommends
    assert "ganeti" in _field(info, "Conflicts")  # the same command names


def _listing(deb: Path) -> dict[str, tuple[str, str]]:
    """path -> (mode string, owner) from ``dpkg-deb -c``."""
    out = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                         check=True).stdout
    found = {}
    for line in out.splitlines():
        parts = line.split()
        found[parts[5].removeprefix(".").rstrip("/") or "/"] = (parts[0], parts[1])
    return found


def test_contents(deb: Path) -> None:
    files = _listing(deb)
    for name in _scripts():
        where = "/usr/bin" if not name.startswith("cardume-") else "/usr/sbin"
        if name == "cardume-iallocator":
            where = "/usr/lib/ganeti/iallocators"
        assert files[f"{where}/{name}"] == ("-rwxr-xr-x", "root/root"), name
    assert "/usr/lib/python3/dist-packages/cardume/paths.py" in files
    assert not any("__pycache__" in path for path in files)
    for unit in UNITS:
        assert files[f"/lib/systemd/system/{unit}"][0] == "-rw-r--r--"
    for prog in FAMILIES:
        assert f"/usr/share/man/man8/{prog}.8.gz" in files
    assert "/usr/share/bash-completion/completions/cardume" in files
    assert files["/usr/share/bash-completion/completions/gnt-instance"][0].startswith("l")
    assert files["/etc/cardume"] == ("drwx------", "root/root")
    assert files["/etc/cardume/daemons.env"] == ("-rw-------", "root/root")


def test_maintainer_scripts(tree: Path) -> None:
    control = tree / "DEBIAN"
    for script in ("postinst", "prerm", "postrm"):
        mode = stat.S_IMODE((control / script).stat().st_mode)
        assert mode == 0o755, script
        subprocess.run(["sh", "-n", str(control / script)], check=True)
    assert (control / "conffiles").read_text().split() == ["/etc/cardume/daemons.env"]


def test_units(tree: Path) -> None:
    units = tree / "lib/systemd/system"
    noded = (units / "cardume-noded.service").read_text()
    for line in ("Type=notify", "Restart=on-failure", "KillMode=process",
                 "ExecStart=/usr/sbin/cardume-noded $NODED_ARGS", "WantedBy=multi-user.target"):
        assert line in noded.splitlines()
    masterd = (units / "cardume-masterd.service").read_text().splitlines()
    assert "Type=notify" in masterd
    assert "ExecCondition=/usr/bin/python3 -m cardume.daemons is-master" in masterd
    timer = (units / "cardume-watcher.timer").read_text().splitlines()
    assert "OnCalendar=*:0/5" in timer and "Persistent=true" in timer
    assert "Type=oneshot" in (units / "cardume-watcher.service").read_text().splitlines()
    for unit in units.iterdir():  # every program a unit runs is in the package
        for match in re.finditer(r"^Exec\w+=(\S+)", unit.read_text(), re.M):
            assert match.group(1) == SYSTEM_PYTHON or (tree / match.group(1)[1:]).is_file()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify(tree: Path, tmp_path: Path) -> None:
    """Verified in a root holding this machine's units (the targets ours name), the
    packaged programs, and a stand-in for /usr/bin/python3."""
    root = tmp_path / "root"
    (root / "usr/lib/systemd").mkdir(parents=True)
    (root / "lib").symlink_to("usr/lib")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    shutil.copytree(tree / "usr/sbin", root / "usr/sbin")
    (root / "usr/bin").mkdir()
    (root / "usr/bin/python3").write_text("#!/bin/sh\n")
    (root / "usr/bin/python3").chmod(0o755)
    ours = []
    for unit in UNITS:
        shutil.copy(tree / "lib/systemd/system" / unit, root / "usr/lib/systemd/system")
        ours.append(str(root / "usr/lib/systemd/system" / unit))
    done = subprocess.run(["systemd-analyze", "verify", f"--root={root}", *ours],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""


def _system_python_ok() -> bool:
    return subprocess.run([SYSTEM_PYTHON, "-c", "import cryptography"], capture_output=True,
                          check=False).returncode == 0


def _packaged_env(tree: Path) -> dict[str, str]:
    return dict(_env(), PYTHONPATH=str(tree / "usr/lib/python3/dist-packages"))


def test_packaged_commands_run_with_debians_python(tree: Path) -> None:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip("no /usr/bin/python3")
    done = subprocess.run([str(tree / "usr/bin/gnt-cluster"), "--help"],
                          env=_packaged_env(tree), capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "master-failover" in done.stdout
    assert (tree / "usr/bin/gnt-cluster").read_text().startswith("#!/usr/bin/python3\n")


def test_packaged_node_daemon_reports_ready(tree: Path, tmp_path: Path) -> None:
    if not _system_python_ok():
        pytest.skip("Debian's python3-cryptography is not installed")
    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(60)
        env = dict(_packaged_env(tree), NOTIFY_SOCKET=address)
        proc = subprocess.Popen(
            [str(tree / "usr/sbin/cardume-noded"), "--root", str(tmp_path / "node"),
             "--name", "node1.example.com", "--bind", "127.0.0.1", "--port", "0"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            message = sock.recv(200).decode()
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
    assert message.startswith("READY=1"), err
    assert proc.returncode == 0, err
    condition = subprocess.run([SYSTEM_PYTHON, "-m", "cardume.daemons", "is-master", "--root",
                                str(tmp_path / "node")], env=_packaged_env(tree),
                               capture_output=True, text=True, timeout=60, check=False)
    assert condition.returncode == 1  # no cluster yet: systemd skips the master unit
    assert "not part of a cluster" in condition.stdout


def test_packaged_man_pages_and_completion(tree: Path, tmp_path: Path) -> None:
    for prog in ("gnt-instance", "gnt-cluster"):
        page = tmp_path / f"{prog}.8"
        page.write_bytes(gzip.decompress((tree / f"usr/share/man/man8/{prog}.8.gz")
                                         .read_bytes()))
        if shutil.which("groff"):
            done = subprocess.run(["groff", "-man", "-Tutf8", "-ww", str(page)],
                                  capture_output=True, text=True, timeout=60, check=False)
            assert done.returncode == 0 and done.stderr == ""
            text = re.sub(".\b", "", done.stdout).replace("\u2010", "-")
            for cmd in commands(family_parser(prog)):
                assert " ".join(cmd.words) in text
    script = tree / "usr/share/bash-completion/completions/gnt-instance"
    probe = (f'source "{script}"; COMP_WORDS=(gnt-instance add --disk-t); COMP_CWORD=2; '
             '_cardume; echo "${COMPREPLY[*]}"')
    done = subprocess.run(["bash", "--norc", "-c", probe], capture_output=True, text=True,
                          timeout=30, check=True)
    assert done.stdout.strip() == "--disk-template"


INSTALL_SCRIPT = r"""
set -eu
deb=$1 base=$2
mount -t tmpfs tmpfs "$base"
mkdir "$base/upper" "$base/work" "$base/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" "$base/root"
mount -t proc proc "$base/root/proc"
r=$base/root
run() { chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
cp "$deb" "$r/tmp/cardume.deb"
# this machine may have Ganeti's package (the peer): cardume replaces its commands
if run dpkg -s ganeti >/dev/null 2>&1; then
  run dpkg --remove --force-depends ganeti >/dev/null 2>&1
fi
run dpkg -i /tmp/cardume.deb >/dev/null
for d in /var/lib/cardume /var/log/cardume /etc/cardume; do
  echo "dir $d $(stat -c %a:%U "$r$d")"
done
for l in multi-user.target.wants/cardume-noded.service \
         multi-user.target.wants/cardume-masterd.service \
         timers.target.wants/cardume-watcher.timer; do
  [ -L "$r/etc/systemd/system/$l" ] && echo "enabled $l"
done
[ -d "$r/usr/lib/python3/dist-packages/cardume/__pycache__" ] && echo "compiled"
echo "help $(run gnt-node --help | head -1)"
# the master unit's ExecCondition, as the unit runs it
cond=$(sed -n 's/^ExecCondition=//p' "$r/lib/systemd/system/cardume-masterd.service")
if said=$(run $cond 2>&1); then rc=0; else rc=$?; fi
echo "is-master $said rc=$rc"
touch "$r/var/lib/cardume/state-kept"
run dpkg --remove cardume >/dev/null
[ -e "$r/var/lib/cardume/state-kept" ] && echo "removed: state kept"
[ -e "$r/usr/bin/gnt-node" ] || echo "removed: commands gone"
run dpkg --purge cardume >/dev/null
[ -e "$r/var/lib/cardume" ] || echo "purged: state gone"
[ -e "$r/etc/cardume" ] || echo "purged: settings gone"
[ -e "$r/usr/lib/python3/dist-packages/cardume" ] || echo "purged: code gone"
"""


def _can_overlay() -> bool:
    return os.geteuid() == 0 and shutil.which("unshare") is not None and \
        "overlay" in Path("/proc/filesystems").read_text()


def test_install_remove_purge_in_a_throwaway_root(deb: Path, tmp_path: Path) -> None:
    if not _can_overlay():
        pytest.skip("needs root, unshare and overlayfs")
    base = tmp_path / "overlay"
    base.mkdir()
    script = tmp_path / "install.sh"
    script.write_text(INSTALL_SCRIPT)
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh",
                           str(script), str(deb), str(base)], env=_env(), capture_output=True,
                          text=True, timeout=600, check=False)
    if done.returncode != 0 and "dependency problems" in done.stderr:
        pytest.skip(f"this machine lacks the package's dependencies: {done.stderr[-300:]}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for directory in ("/var/lib/cardume", "/var/log/cardume", "/etc/cardume"):
        assert f"dir {directory} 700:root" in lines
    for unit in ("cardume-noded.service", "cardume-masterd.service", "cardume-watcher.timer"):
        assert any(line.startswith("enabled ") and line.endswith(unit) for line in lines)
    assert "compiled" in lines
    assert "help usage: gnt-node [-h] COMMAND ..." in lines
    assert "is-master this node is not part of a cluster rc=1" in lines, done.stdout
    for line in ("removed: state kept", "removed: commands gone", "purged: state gone",
                 "purged: settings gone", "purged: code gone"):
        assert line in lines, done.stdout


REAL_NODE_SCRIPT = r"""
set -eu
# as the install test, and in a network namespace of its own (127.0.0.1, ports 1811/5080)
deb=$1 base=$2
mount -t tmpfs tmpfs "$base"
mkdir "$base/upper" "$base/work" "$base/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" "$base/root"
mount -t proc proc "$base/root/proc"
mount -t tmpfs tmpfs "$base/root/run"
ip link set lo up
r=$base/root
run() { chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
stop_all() {
  for d in masterd rapi noded; do
    pid=$(cat "$r/run/cardume/$d.pid" 2>/dev/null) && kill "$pid" 2>/dev/null || true
  done
}
trap stop_all EXIT
cp "$deb" "$r/tmp/cardume.deb"
if run dpkg -s ganeti >/dev/null 2>&1; then
  run dpkg --remove --force-depends ganeti >/dev/null 2>&1
fi
run dpkg -i /tmp/cardume.deb >/dev/null 2>&1
run setsid /usr/sbin/cardume-noded --bind 127.0.0.1 --name node1.example.com \
  </dev/null >"$base/noded.out" 2>&1 &
i=0
until [ -f "$r/run/cardume/noded.pid" ]; do
  i=$((i + 1)); [ $i -lt 300 ] || { echo "noded did not start"; cat "$base/noded.out"; exit 1; }
  sleep 0.1
done
run gnt-cluster init --enabled-hypervisors fake --enabled-disk-templates diskless \
  --master-netdev lo cluster.example.com
echo "run $(ls "$r/run/cardume" | tr '\n' ' ')"
echo "state $(ls "$r/var/lib/cardume" | tr '\n' ' ')"
echo "log $(ls "$r/var/log/cardume" | tr '\n' ' ')"
echo "nodes $(run gnt-node list --no-headers -o name)"
echo "master $(run gnt-cluster getmaster)"
if said=$(run python3 -m cardume.daemons is-master); then rc=0; else rc=$?; fi
echo "is-master $said rc=$rc"
run gnt-cluster destroy --yes-do-it >/dev/null
echo "destroyed"
"""


def test_a_real_layout_node_runs_from_the_package(deb: Path, tmp_path: Path) -> None:
    """The installed package on a node without systemd (the daemons spawned as in a local
    cluster): a node daemon, gnt-cluster init and the commands, in the FHS places."""
    if not _can_overlay() or shutil.which("ip") is None:
        pytest.skip("needs root, unshare, overlayfs and ip")
    base = tmp_path / "overlay"
    base.mkdir()
    script = tmp_path / "node.sh"
    script.write_text(REAL_NODE_SCRIPT)
    done = subprocess.run(["unshare", "--mount", "--net", "--propagation", "private", "sh",
                           str(script), str(deb), str(base)], env=_env(), capture_output=True,
                          text=True, timeout=600, check=False)
    if done.returncode != 0 and "dependency problems" in done.stderr:
        pytest.skip(f"this machine lacks the package's dependencies: {done.stderr[-300:]}")
    assert done.returncode == 0, done.stdout + done.stderr
    said = {line.split(" ", 1)[0]: line.split(" ", 1)[1:] for line in done.stdout.splitlines()}
    runtime = said["run"][0].split()
    for name in ("master.sock", "masterd.pid", "noded.pid"):
        assert name in runtime
    state = said["state"][0].split()
    for name in ("config.db", "queue.db", "ssconf.json", "node.json", "certs"):
        assert name in state
    assert "run" not in state and "log" not in state  # not under the state directory
    assert "masterd.log" in said["log"][0].split()
    assert said["nodes"] == ["node1.example.com"]
    assert said["master"] == ["node1.example.com"]
    assert said["is-master"] == ["this node (node1.example.com) is the master rc=0"]
    assert "destroyed" in said
