"""packaging/vendor_js.py: only the pinned files come out of an npm tarball (nothing outside
the package directory, no source maps), a tarball that does not match its pinned integrity
is refused, and the files vendored in this checkout match their record."""

from __future__ import annotations

import importlib.util
import io
import json
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def vendor_js() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vendor_js", ROOT / "packaging" / "vendor_js.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_only_the_listed_files_are_extracted(tmp_path: Path) -> None:
    vj = vendor_js()
    tgz = tarball(tmp_path / "p.tgz", {
        "package/lib/x.mjs": b"export {}", "package/lib/x.mjs.map": b"{}",
        "package/core/a.js": b"a", "package/core/sub/b.js": b"b", "package/src/c.ts": b"c",
        "package/../evil.js": b"evil", "other/lib/x.mjs": b"no", "package/LICENSE": b"MIT"})
    dest = tmp_path / "out"
    copied = vj._extract(tgz, ["lib/x.mjs", "core/", "LICENSE"], dest)
    assert sorted(copied) == ["LICENSE", "core/a.js", "core/sub/b.js", "lib/x.mjs"]
    assert not (tmp_path / "evil.js").exists() and not (dest / "src").exists()
    with pytest.raises(SystemExit, match="lacks README"):
        vj._extract(tgz, ["README"], tmp_path / "out2")


def test_integrity_is_npms_sha512() -> None:
    # npm's integrity of an empty body, as `npm view` would print it
    assert vendor_js()._integrity(b"") == (
        "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ"
        "6+SfaPg==")


def test_the_pins_name_versions_and_integrities() -> None:
    pins = json.loads((ROOT / "packaging" / "vendor_js.json").read_text())["packages"]
    assert {p["name"] for p in pins} == {"@xterm/xterm", "@novnc/novnc"}
    for pin in pins:
        assert pin["integrity"].startswith("sha512-") and pin["version"][0].isdigit()
        assert any("LICENSE" in f for f in pin["files"])


def test_this_checkout_is_vendored_as_pinned() -> None:
    assert vendor_js().main(["--check"]) == 0, \
        "the console's libraries are missing or changed: run ./dev install"
