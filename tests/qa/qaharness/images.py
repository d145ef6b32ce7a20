"""Build the QA nodes' boot artefacts from Debian packages, cached by a hash of their inputs.

Three artefacts make a QA node: Debian's cloud kernel (``vmlinuz``; it has ext4 built in
and dm-mod and DRBD 8.4 as modules), a tiny initramfs (Debian's busybox-static plus the
virtio modules, enough to find and mount the root image) and ``rootfs.ext4``, a Debian
minbase image with python3, python3-cryptography, lvm2, drbd-utils, qemu-system-x86, the
kernel's storage and network modules, the command agent and cardume itself. Nodes boot the
root image with ``snapshot=on``, so all of them share it read-only.

The build has two cached layers under the cache directory:

* ``base-HASH/``: the debootstrap tree (about a minute), keyed by suite, mirror and packages;
* ``image-HASH/``: the bootable artefacts (a few seconds), keyed also by the kernel version,
  the guest files and cardume's source, so that editing cardume rebuilds only this layer.

Everything comes from the archive apt uses (``apt-get download`` and debootstrap); the host
needs debootstrap, e2fsprogs (``mkfs.ext4 -d``) and dpkg.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
GUEST = HERE / "guest"
REPO = HERE.parents[2]
CARDUME_SRC = REPO / "src" / "cardume"

SUITE = "bookworm"
KERNEL_META = "linux-image-cloud-amd64"
ROOT_PACKAGES = (
    # debootstrap does not resolve virtual packages: python3-cffi-backend provides the
    # python3-cffi-backend-api-* that python3-cryptography depends on.
    "python3", "python3-cryptography", "python3-cffi-backend", "lvm2", "drbd-utils", "kmod",
    "iproute2", "busybox", "udev", "procps",
    # the kvm hypervisor's tests start guests inside the nodes (nested software emulation)
    "qemu-system-x86",
)
# Modules (and, through modules.dep, their dependencies) copied into the root image.
ROOT_MODULES = (
    "virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "dm-mod", "dm-snapshot",
    "dm-mirror", "drbd", "loop",
)
# Modules the initramfs loads, in order, to reach the root image.
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk")
ROOT_IMAGE_MB = 1024
PY_SITE = "usr/lib/python3/dist-packages"


def log(msg: str) -> None:
    print(f"[qa-images] {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    env = os.environ.get("CARDUME_QA_CACHE")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/cardume-qa")
    return Path.home() / ".cache" / "cardume-qa"


def apt_mirror() -> str:
    """The Debian archive apt uses here (deb.debian.org unless configured otherwise)."""
    pattern = re.compile(r"(?:^deb\s+(?:\[[^]]*\]\s+)?|^URIs:\s*)(\S+/debian)/?\s", re.M)
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        try:
            text = path.read_text()
        except OSError:
            continue
        for url in pattern.findall(text + "\n"):
            return url
    return "http://deb.debian.org/debian"


def run(cmd: list[str], **kw: object) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return str(proc.stdout)


def digest(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def tree_digest(root: Path, suffixes: tuple[str, ...] = ()) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            if suffixes and path.suffix not in suffixes and path.name not in suffixes:
                continue
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def candidate(package: str) -> str:
    out = run(["apt-cache", "policy", package])
    m = re.search(r"Candidate:\s*(\S+)", out)
    if not m or m.group(1) == "(none)":
        raise RuntimeError(f"apt knows no {package}; run apt-get update")
    return m.group(1)


def kernel_package() -> str:
    out = run(["apt-cache", "depends", KERNEL_META])
    m = re.search(r"Depends:\s*(linux-image-\S+)", out)
    if not m:
        raise RuntimeError(f"cannot resolve {KERNEL_META}")
    return m.group(1)


def download(package: str, dest: Path) -> Path:
    """``apt-get download`` one package into ``dest`` (reused if already there)."""
    dest.mkdir(parents=True, exist_ok=True)
    version = candidate(package)
    epochless = version.split(":", 1)[-1]
    found = list(dest.glob(f"{package}_{epochless.replace('+', '?')}_*.deb"))
    if found:
        return found[0]
    run(["apt-get", "download", f"{package}={version}"], cwd=dest)
    found = list(dest.glob(f"{package}_*.deb"))
    if not found:
        raise RuntimeError(f"apt-get download {package} left no .deb")
    return found[0]


def build_base(cache: Path, mirror: str,
               packages: tuple[str, ...] = ROOT_PACKAGES) -> Path:
    key = digest(SUITE, mirror, packages, "v1")
    base = cache / f"base-{key}"
    done = base / ".complete"
    if done.exists():
        return base / "root"
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    log(f"debootstrap {SUITE} from {mirror} (about a minute)")
    root = base / "root"
    try:
        run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}",
             SUITE, str(root), mirror])
    except RuntimeError as exc:
        logfile = root / "debootstrap" / "debootstrap.log"
        tail = logfile.read_text(errors="replace")[-1500:] if logfile.exists() else ""
        raise RuntimeError(f"{exc}\n{tail}") from None
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc",
                 "usr/share/man", "usr/share/locale", "usr/share/info"):
        for child in (root / junk).glob("*"):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    done.touch()
    return root


def modules_closure(moddir: Path, wanted: tuple[str, ...]) -> list[str]:
    """Module files (relative to ``moddir``) for ``wanted``, dependencies first."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        by_name[Path(path).name.split(".ko")[0].replace("-", "_")] = path
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps[path]:
            visit(dep)
        order.append(path)

    for name in wanted:
        visit(by_name[name.replace("-", "_")])
    return order


def write_cpio(out: Path, files: dict[str, tuple[int, bytes]], dirs: list[str]) -> None:
    """An uncompressed "newc" cpio archive: ``files`` maps path to (mode, data)."""
    ino = 1
    with out.open("wb") as f:

        def entry(name: str, mode: int, data: bytes) -> None:
            nonlocal ino
            namez = name.encode() + b"\0"
            fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(namez), 0]
            header = b"070701" + b"".join(b"%08X" % v for v in fields)
            f.write(header + namez)
            f.write(b"\0" * (-(len(header) + len(namez)) % 4))
            f.write(data)
            f.write(b"\0" * (-len(data) % 4))
            ino += 1

        for d in dirs:
            entry(d, 0o040755, b"")
        for name, (mode, data) in files.items():
            entry(name, mode, data)
        entry("TRAILER!!!", 0, b"")


def console_scripts() -> dict[str, str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return dict(data["project"].get("scripts", {}))


@dataclass(frozen=True)
class Images:
    kernel: Path
    initramfs: Path
    rootfs: Path
    kernel_version: str
    key: str


def build(cache: Path | None = None) -> Images:
    """Build (or reuse) the QA artefacts and return their paths."""
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    mirror = apt_mirror()
    kpkg = kernel_package()
    kver = candidate(kpkg)
    busybox_ver = candidate("busybox-static")
    base_root = build_base(cache, mirror)
    key = digest(
        base_root, kpkg, kver, busybox_ver, ROOT_MODULES, INITRAMFS_MODULES, ROOT_IMAGE_MB,
        tree_digest(GUEST), tree_digest(CARDUME_SRC), console_scripts(), "v1",
    )
    out = cache / f"image-{key}"
    images = Images(out / "vmlinuz", out / "initramfs.cpio", out / "rootfs.ext4",
                    kpkg.removeprefix("linux-image-"), key)
    if (out / ".complete").exists():
        return images
    t0 = time.monotonic()
    if out.exists():
        shutil.rmtree(out)
    work = out / "work"
    work.mkdir(parents=True)
    debs = cache / "debs"
    kdeb = download(kpkg, debs)
    bdeb = download("busybox-static", debs)
    kroot = work / "kernel"
    run(["dpkg-deb", "-x", str(kdeb), str(kroot)])
    kv = images.kernel_version
    shutil.copy(kroot / "boot" / f"vmlinuz-{kv}", images.kernel)

    # Root image: the base tree plus modules, guest files and cardume.
    root = work / "root"
    run(["cp", "-a", str(base_root), str(root)])
    src_mods = kroot / "lib" / "modules" / kv
    dst_mods = root / "lib" / "modules" / kv
    dst_mods.mkdir(parents=True)
    for meta in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        shutil.copy(src_mods / meta, dst_mods / meta)
    # depmod from the image's own kmod, on the whole tree, to learn the dependencies.
    shutil.copytree(src_mods / "kernel", dst_mods / "kernel")
    run(["chroot", str(root), "depmod", kv])
    keep = modules_closure(dst_mods, ROOT_MODULES)
    init_mods = modules_closure(dst_mods, INITRAMFS_MODULES)
    shutil.rmtree(dst_mods / "kernel")
    for rel in keep:
        (dst_mods / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src_mods / rel, dst_mods / rel)
    run(["chroot", str(root), "depmod", kv])

    def install(src: Path, dest: str, mode: int) -> None:
        target = root / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, target)
        target.chmod(mode)

    install(GUEST / "rootfs-init", "sbin/cardume-qa-init", 0o755)
    install(GUEST / "agent.py", "usr/local/sbin/cardume-qa-agent", 0o755)
    install(GUEST / "lvm.conf", "etc/lvm/lvm.conf", 0o644)
    shutil.copytree(CARDUME_SRC, root / PY_SITE / "cardume",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name, target in console_scripts().items():
        module, _, func = target.partition(":")
        script = root / "usr/local/bin" / name
        script.write_text(
            f"#!/usr/bin/python3\nimport sys\nfrom {module} import {func}\n"
            f"sys.exit({func}())\n"
        )
        script.chmod(0o755)
    run(["chroot", str(root), "python3", "-m", "compileall", "-q", f"/{PY_SITE}/cardume"])
    (root / "etc/hostname").write_text("qanode\n")
    tmp = images.rootfs.with_suffix(".tmp")
    run(["mkfs.ext4", "-q", "-F", "-L", "qaroot", "-d", str(root), str(tmp), f"{ROOT_IMAGE_MB}M"])
    tmp.rename(images.rootfs)

    # Initramfs: busybox-static, the virtio block modules and the init script.
    bbroot = work / "busybox"
    run(["dpkg-deb", "-x", str(bdeb), str(bbroot)])
    files: dict[str, tuple[int, bytes]] = {
        "bin/busybox": (0o100755, (bbroot / "bin" / "busybox").read_bytes()),
        "init": (0o100755, (GUEST / "initramfs-init").read_bytes()),
        "modules/order": (0o100644, "".join(Path(m).name + "\n" for m in init_mods).encode()),
    }
    for rel in init_mods:
        files[f"modules/{Path(rel).name}"] = (0o100644, (src_mods / rel).read_bytes())
    write_cpio(images.initramfs, files, ["bin", "modules", "dev", "proc", "sys", "newroot"])

    shutil.rmtree(work)
    (out / ".complete").touch()
    log(f"built image {key} in {time.monotonic() - t0:.1f}s")
    # Older image layers are superseded; keep the cache small.
    for old in cache.glob("image-*"):
        if old != out:
            shutil.rmtree(old, ignore_errors=True)
    return images


if __name__ == "__main__":
    t = time.monotonic()
    print(build())
    print(f"{time.monotonic() - t:.1f}s")
