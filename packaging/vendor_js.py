#!/usr/bin/env python3
"""Vendor the web console's front-end libraries (xterm.js, noVNC) from their npm packages.

For each package pinned in packaging/vendor_js.json: ``npm pack NAME@VERSION`` into a
temporary directory, check the tarball against the pinned integrity (sha512, as npm
records it), and copy only the listed files (with their licences) into
src/cardume/rapi/ui/static/vendor/DEST/. ``VERSIONS.json`` there records each package's
version, integrity and the sha256 of every copied file. Nothing is done when that record
already matches the pins and the files are intact (so ``./dev install`` runs it cheaply;
``--force`` fetches again). ``--check`` only verifies, exit 1 when something is off.

The vendored files are not in git: they are reproducible from the pins, and keeping
~1 MiB of third-party minified code out of the history keeps reviews about our code.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PINS = ROOT / "packaging" / "vendor_js.json"
VENDOR = ROOT / "src" / "cardume" / "rapi" / "ui" / "static" / "vendor"
RECORD = "VERSIONS.json"


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wanted(member: str, files: list[str]) -> bool:
    return any(member.startswith(f) if f.endswith("/") else member == f for f in files)


def _pack(name: str, version: str, workdir: Path) -> Path:
    proc = subprocess.run(["npm", "pack", "--json", "--silent", "--pack-destination",
                           str(workdir), f"{name}@{version}"],
                          capture_output=True, text=True, check=False, timeout=300)
    if proc.returncode != 0:
        raise SystemExit(f"vendor_js: npm pack {name}@{version} failed: "
                         f"{proc.stderr.strip()[:300]}")
    filename = json.loads(proc.stdout)[0]["filename"]
    return workdir / filename.replace("@", "").replace("/", "-")


def _extract(tarball: Path, files: list[str], dest: Path) -> dict[str, str]:
    """The wanted regular files of the tarball into dest; their sha256 by path."""
    copied: dict[str, str] = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.startswith("package/"):
                continue
            rel = member.name[len("package/"):]
            parts = rel.split("/")
            if any(p in ("", ".", "..") for p in parts) or not _wanted(rel, files):
                continue
            if rel.endswith(".map"):
                continue
            source = tar.extractfile(member)
            assert source is not None
            data = source.read()
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            copied[rel] = hashlib.sha256(data).hexdigest()
    missing = [f for f in files if not any(_wanted(c, [f]) for c in copied)]
    if missing:
        raise SystemExit(f"vendor_js: {tarball.name} lacks {', '.join(missing)}")
    return copied


def _intact(pins: list[dict[str, object]]) -> bool:
    try:
        record = json.loads((VENDOR / RECORD).read_text())
    except (OSError, ValueError):
        return False
    by_name = {p["name"]: p for p in record.get("packages", [])}
    for pin in pins:
        got = by_name.get(pin["name"])
        if not got or got.get("version") != pin["version"] or \
                got.get("integrity") != pin["integrity"]:
            return False
        for rel, digest in got.get("files", {}).items():
            path = VENDOR / str(pin["dest"]) / rel
            if not path.is_file() or _sha256(path) != digest:
                return False
    return True


def vendor(force: bool = False) -> int:
    pins = json.loads(PINS.read_text())["packages"]
    if not force and _intact(pins):
        print(f"vendor_js: {VENDOR.relative_to(ROOT)} is up to date", file=sys.stderr)
        return 0
    if shutil.which("npm") is None:
        raise SystemExit("vendor_js: npm is needed to fetch the console's libraries "
                         "(apt-get install npm)")
    record = []
    with tempfile.TemporaryDirectory(prefix="cardume-vendor-") as tmp:
        staging = Path(tmp) / "vendor"
        for pin in pins:
            tarball = _pack(pin["name"], pin["version"], Path(tmp))
            got = _integrity(tarball.read_bytes())
            if got != pin["integrity"]:
                raise SystemExit(f"vendor_js: {pin['name']}@{pin['version']} tarball has "
                                 f"integrity {got}, expected {pin['integrity']}")
            copied = _extract(tarball, pin["files"], staging / pin["dest"])
            record.append({"name": pin["name"], "version": pin["version"],
                           "integrity": pin["integrity"], "dest": pin["dest"],
                           "files": copied})
            print(f"vendor_js: {pin['name']}@{pin['version']}: {len(copied)} files",
                  file=sys.stderr)
        (staging / RECORD).write_text(json.dumps({"packages": record}, indent=1) + "\n")
        if VENDOR.exists():
            shutil.rmtree(VENDOR)
        shutil.copytree(staging, VENDOR)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="fetch even when up to date")
    parser.add_argument("--check", action="store_true", help="only verify what is there")
    args = parser.parse_args(argv)
    if args.check:
        ok = _intact(json.loads(PINS.read_text())["packages"])
        print(f"vendor_js: {'intact' if ok else 'missing or not matching the pins'}")
        return 0 if ok else 1
    return vendor(args.force)


if __name__ == "__main__":
    sys.exit(main())
