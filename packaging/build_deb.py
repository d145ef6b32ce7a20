#!/usr/bin/env python3
"""Build cardume's Debian package with dpkg-deb: ``dist/cardume_VERSION_all.deb``.

Run by ``./dev package``. Everything the package holds comes from the repository at build
time: the version and the commands from pyproject.toml (a new ``[project.scripts]`` entry
is packaged without a change here), the Python code from src/cardume, the units and the
maintainer scripts from packaging/, and the man pages and the bash completion generated
from the commands' parsers (cardume.cli.docgen). Standard library only.

Where the files go (the FHS layout of a real node, see cardume.paths):
  /usr/lib/python3/dist-packages/cardume   the code (Debian's python3 has it on sys.path)
  /usr/bin/gnt-*, /usr/bin/cardume          the commands
  /usr/sbin/cardume-*                       the daemons and the watcher
  /usr/lib/ganeti/iallocators/              cardume-iallocator, where Ganeti's are
  /lib/systemd/system/                      the units
  /etc/cardume/daemons.env                  the daemons' extra arguments (a conffile)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PY_SITE = "usr/lib/python3/dist-packages"
UNIT_DIR = "lib/systemd/system"
ALLOCATOR_DIR = "usr/lib/ganeti/iallocators"
MAN_DIR = "usr/share/man/man8"
COMPLETION_DIR = "usr/share/bash-completion/completions"
MAINTAINER = "cardume maintainers <maintainers@users.noreply.r-seed-f19401d7.example>"
HOMEPAGE = "https://github.com/cardume/cardume"
SCRIPT_NAME = re.compile(r"[a-z][a-z0-9-]*")
ENTRY_POINT = re.compile(r"([A-Za-z_][\w.]*):([A-Za-z_]\w*)")
MAINTAINER_SCRIPTS = ("postinst", "prerm", "postrm")


def log(msg: str) -> None:
    print(f"[package] {msg}", file=sys.stderr, flush=True)


def project() -> dict:
    with open(REPO / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["project"]


def script_dir(name: str) -> str:
    """Where a command goes: admins' commands in /usr/bin, daemons in /usr/sbin, the
    allocator where Ganeti looks for allocators."""
    if name == "cardume-iallocator":
        return ALLOCATOR_DIR
    if name.startswith("cardume-"):
        return "usr/sbin"
    return "usr/bin"


def script_text(entry: str) -> str:
    match = ENTRY_POINT.fullmatch(entry.strip())
    if match is None:
        raise SystemExit(f"pyproject.toml: entry point {entry!r}: expected module:function")
    module, func = match.groups()
    return (f"#!/usr/bin/python3\n# cardume's {func} ({module}); made by packaging/build_deb.py\n"
            f"import sys\n\nfrom {module} import {func}\n\n"
            f"if __name__ == \"__main__\":\n    sys.exit({func}())\n")


def install_file(src: Path | str, dest: Path, mode: int) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    dest.chmod(mode)


def write_file(dest: Path, text: str | bytes, mode: int) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(text.encode() if isinstance(text, str) else text)
    dest.chmod(mode)


def gzip_file(src: Path, dest: Path) -> None:
    """gzip -9n: no name or time inside, so the same page gives the same bytes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as raw, open(dest, "wb") as out, \
            gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9,
                          mtime=0) as packed:
        shutil.copyfileobj(raw, packed)
    dest.chmod(0o644)


def stage(root: Path, proj: dict, build: Path) -> None:
    # the code
    shutil.copytree(REPO / "src" / "cardume", root / PY_SITE / "cardume",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))
    for path in (root / PY_SITE).rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    # the commands
    for name, entry in sorted(proj.get("scripts", {}).items()):
        if not SCRIPT_NAME.fullmatch(name):
            raise SystemExit(f"pyproject.toml: script name {name!r}: expected [a-z0-9-]")
        write_file(root / script_dir(name) / name, script_text(entry), 0o755)
    # the units, the settings
    for unit in sorted((HERE / "systemd").iterdir()):
        install_file(unit, root / UNIT_DIR / unit.name, 0o644)
    (root / "etc/cardume").mkdir(parents=True)
    (root / "etc/cardume").chmod(0o700)
    install_file(HERE / "etc" / "daemons.env", root / "etc/cardume/daemons.env", 0o600)
    # man pages and completion, from the parsers of the code being packaged
    gen = build / "generated"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    for var in ("CARDUME_ROOT", "CARDUME_NODE"):
        env.pop(var, None)
    subprocess.run([sys.executable, "-m", "cardume.cli.docgen", "--man-dir", str(gen / "man"),
                    "--completion", str(gen / "cardume")], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    for page in sorted((gen / "man").iterdir()):
        gzip_file(page, root / MAN_DIR / f"{page.name}.gz")
    completions = root / COMPLETION_DIR
    install_file(gen / "cardume", completions / "cardume", 0o644)
    # bash-completion loads a command's completion by its name
    for name in sorted(proj.get("scripts", {})):
        if name.startswith("gnt-"):
            (completions / name).symlink_to("cardume")
    # documentation
    doc = root / "usr/share/doc/cardume"
    gzip_file(REPO / "README.md", doc / "README.md.gz")
    write_file(doc / "copyright",
               "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
               "Upstream-Name: cardume\n"
               "Comment: built from the cardume repository by packaging/build_deb.py\n",
               0o644)


def installed_size(root: Path) -> int:
    """Installed-Size in KiB, as dpkg-gencontrol counts it (files rounded up to 1 KiB)."""
    total = 0
    for path in root.rglob("*"):
        if path.is_symlink() or path.is_dir():
            total += 1
        elif path.is_file():
            total += (path.stat().st_size + 1023) // 1024
    return total


def control(root: Path, proj: dict) -> None:
    debian = root / "DEBIAN"
    debian.mkdir()
    text = (HERE / "debian" / "control.in").read_text()
    fields = {"VERSION": proj["version"], "MAINTAINER": MAINTAINER, "HOMEPAGE": HOMEPAGE,
              "INSTALLED_SIZE": str(installed_size(root))}
    for key, value in fields.items():
        text = text.replace(f"@{key}@", value)
    if "@" in re.sub(r"<[^>]*>", "", text):
        raise SystemExit("packaging/debian/control.in: a @FIELD@ was left unfilled")
    write_file(debian / "control", text, 0o644)
    sums = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        if not rel.startswith("DEBIAN/"):
            sums.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {rel}\n")
    write_file(debian / "md5sums", "".join(sums), 0o644)
    install_file(HERE / "debian" / "conffiles", debian / "conffiles", 0o644)
    for script in MAINTAINER_SCRIPTS:
        install_file(HERE / "debian" / script, debian / script, 0o755)


def build(out_dir: Path) -> Path:
    proj = project()
    version = proj["version"]
    if not re.fullmatch(r"[0-9][A-Za-z0-9.+~-]*", version):
        raise SystemExit(f"pyproject.toml: version {version!r} is not a Debian version")
    work = REPO / "build" / "deb"
    shutil.rmtree(work, ignore_errors=True)
    root = work / "root"
    root.mkdir(parents=True)
    root.chmod(0o755)
    stage(root, proj, work)
    control(root, proj)
    for path in root.rglob("*"):  # a umask of 077 here must not make the files private
        if path.is_dir() and not path.is_symlink() and path != root / "etc/cardume":
            path.chmod(path.stat().st_mode | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH
                       | stat.S_IXOTH)
    out_dir.mkdir(parents=True, exist_ok=True)
    deb = out_dir / f"cardume_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(deb)],
                   check=True, stdout=subprocess.DEVNULL)
    return deb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="build dist/cardume_VERSION_all.deb")
    parser.add_argument("--out", default=str(REPO / "dist"), help="where the .deb goes")
    args = parser.parse_args(argv)
    if shutil.which("dpkg-deb") is None:
        log("dpkg-deb is missing: apt-get install dpkg")
        return 1
    deb = build(Path(args.out))
    log(f"built {deb}")
    print(deb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
